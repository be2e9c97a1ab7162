"""`s` restarts a study only from a spec file the user picks on this machine: a store whose spec_path points
at someone else's folder (with a task module that would leave a marker when imported) never runs it."""

from __future__ import annotations

import optuna

from engine.store import Store
from tests.conftest import run_cli
from tests.helpers_run import write_spec
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.restart import RestartScreen
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable

EVIL_TASK = """
from pathlib import Path
Path({marker!r}).write_text("imported")  # what a hostile module would do: run on import


def boom(params, device):
    raise RuntimeError("ran")
"""


def hostile_store(tmp_path, studies_dir):
    """A finished study `victim` run from the user's own spec; then someone with write access to the store
    points its spec_path and spec_toml at their own spec and task module."""
    own = write_spec(studies_dir, "victim", n_trials=1)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    result = run_cli("run", str(own), "--storage", url, "--quiet", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    evil_dir = tmp_path / "elsewhere"
    marker = tmp_path / "IMPORTED"
    evil = write_spec(evil_dir, "victim", n_trials=1)
    evil.write_text(evil.read_text().replace("helpers_tasks:tiny", "evil_task:boom"))
    (evil_dir / "evil_task.py").write_text(EVIL_TASK.format(marker=str(marker)))
    study = optuna.load_study(study_name="victim", storage=url)
    study.set_user_attr("spec_path", str(evil))
    study.set_user_attr("spec_toml", evil.read_text())
    return url, own.resolve(), evil, marker


def trials_of(url: str) -> int:
    store = Store(url, read_only=True)
    try:
        return len(store.trials(store.study_id("victim")))
    finally:
        store.close()


async def test_s_lists_own_specs_and_the_store_path_only_as_a_choice_then_runs_the_chosen_one(
    tmp_path, studies_dir, make_app, no_stray_processes
):
    url, own, evil, marker = hostile_store(tmp_path, studies_dir)
    app = make_app(url, open_study="victim")
    async with app.run_test(size=(200, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.query(TrialTable) and len(app.screen.query_one(TrialTable).rows) == 1,
                       what="the trial")  # fmt: skip
        await pilot.press("s")
        await wait_for(pilot, lambda: "recorded in the store" in screen_text(app), what="the restart choice")
        text = screen_text(app)
        assert str(own) in text  # the user's own spec, first, by its full path
        assert f"{evil}  (path recorded in the store: read it before you run it)" in text
        assert app.screen.choices == [own, evil] and not marker.exists()
        await pilot.press("enter")  # the highlighted, first choice: the own spec
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), what="back on the study")
        await wait_for(pilot, lambda: any(n.message == "started victim" for n in app._notifications), timeout=90,
                       what="the launch")  # fmt: skip
        await wait_for(pilot, lambda: trials_of(url) == 2, timeout=120, what="the second trial")
    assert not marker.exists()
    store = Store(url, read_only=True)
    attrs = store.study_attrs(store.study_id("victim"))
    store.close()
    assert attrs["spec_path"] == str(own)  # the coordinator ran the chosen spec (it records its own path)


async def test_escape_starts_nothing_and_opening_the_study_imports_nothing(tmp_path, studies_dir, make_app):
    url, own, evil, marker = hostile_store(tmp_path, studies_dir)
    (studies_dir / "victim.toml").unlink()  # no own spec left: the store's path is the only line, not chosen
    app = make_app(url, open_study="victim")
    async with app.run_test(size=(200, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.query(TrialTable) and len(app.screen.query_one(TrialTable).rows) == 1,
                       what="the trial")  # fmt: skip
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RestartScreen), what="the restart choice")
        assert app.screen.choices == [evil]
        await pilot.press("escape")
        assert isinstance(app.screen, StudyScreen) and not app._notifications
    assert trials_of(url) == 1 and not marker.exists()
