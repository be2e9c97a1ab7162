"""The TUI's exports are private too: 0600 files in 0700 folders it creates, under the common umask 022."""

from __future__ import annotations

import os

import pytest

from tests.test_file_modes import USUAL_UMASK, wrong_modes
from tests.tui.conftest import wait_for
from tui.screens.export import ExportScreen
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable


@pytest.fixture
def usual_umask():
    old = os.umask(USUAL_UMASK)
    yield
    os.umask(old)


@pytest.mark.parametrize("kind", ["csv", "json", "spec"])
async def test_tui_export_writes_private_files_in_private_folders(small_store, make_app, tmp_path, kind,
                                                                  usual_umask):  # fmt: skip
    work = tmp_path / "fresh"
    work.mkdir(mode=0o700)
    target = work / "exports" / "deeper" / {"csv": "out.csv", "json": "out.json", "spec": "best.toml"}[kind]
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 12, what="12 trials")
        await pilot.press("e")
        assert isinstance(app.screen, ExportScreen)
        await pilot.press(*{"csv": [], "json": ["down", "space"], "spec": ["down", "down", "space"]}[kind])
        app.screen.query_one("#export-path").value = str(target)
        app.screen.query_one("#export-path").focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists() and isinstance(app.screen, StudyScreen), what="export")
    assert target.read_text().startswith({"csv": "number,", "json": "[", "spec": "# Written by"}[kind])
    assert wrong_modes(work) == []
