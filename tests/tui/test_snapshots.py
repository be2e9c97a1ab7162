"""Snapshots of the Studies, Study, Analysis and Editor screens at 80x24 (and 160x48), from fixed data (no
clock)."""

from __future__ import annotations

import pytest
from textual.widgets import TextArea

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.editor import EditorScreen
from tui.widgets.curves import SeriesPlot
from tui.widgets.trial_table import TrialTable

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@pytest.fixture
def here(tmp_path, monkeypatch, small_store):
    """Run from the store's folder, so titles show the same short paths on every machine."""
    monkeypatch.chdir(tmp_path)
    return small_store


@pytest.mark.parametrize("size", SIZES)
def test_studies_screen(here, make_app, snap_compare, size):
    app = make_app(here)

    async def loaded(pilot):
        await wait_for(pilot, lambda: app.screen.shown, what="the studies list")

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_study_screen_with_curves_of_the_second_trial(here, make_app, snap_compare, size):
    app = make_app(here, open_study="digits_mlp")

    async def loaded(pilot):
        table = lambda: app.screen.query_one(TrialTable)  # noqa: E731
        await wait_for(pilot, lambda: len(table().rows) == 12)
        await pilot.press("down")
        plots = lambda: list(app.screen.query(SeriesPlot))  # noqa: E731
        await wait_for(pilot, lambda: all(p.chart.series for p in plots()) and app.screen.model.layer_rows_for == 1,
                       what="every chart drawn")  # fmt: skip
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=loaded)


@pytest.mark.parametrize("size", SIZES)
def test_editor_with_an_error_listed(here, make_app, snap_compare, size, studies_dir):
    app = make_app(here)

    async def broken(pilot):
        app.push_screen(EditorScreen(studies_dir / "digits_mlp.toml"))
        await pilot.pause(0.1)
        area = app.screen.query_one(TextArea)
        area.cursor_blink = False
        area.load_text(area.text.replace("n_trials = 30", "n_trials = 0"))
        await wait_for(pilot, lambda: app.screen.issues, what="the error")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=size, run_before=broken)


# the Analysis screen's views of the 12 fixed trials, each known by a line it draws once it is drawn
VIEWS = {"1": "parallel coordinates (", "3": "mean value per cell", "6": "legend: █ complete", "7": "per epoch"}


@pytest.mark.parametrize("view", list(VIEWS))
def test_analysis_view(here, make_app, snap_compare, view):
    app = make_app(here, open_study="digits_mlp")

    async def drawn(pilot):
        await wait_for(pilot, lambda: getattr(app.screen, "study_name", None) == "digits_mlp", what="the Study screen")
        await pilot.press("a")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "AnalysisScreen" and app.screen.loaded,
                       what="the Analysis screen")  # fmt: skip
        await pilot.press(view)
        await wait_for(pilot, lambda: VIEWS[view] in screen_text(app), what=f"view {view}")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=drawn)
