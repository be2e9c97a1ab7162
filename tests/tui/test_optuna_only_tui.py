"""The workbench on a store made by Optuna alone: every trial state and several objectives render, read-only."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.test_optuna_only_store import file_bytes, tables
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.study import StudyScreen
from tui.widgets.curves import SeriesPlot
from tui.widgets.trial_table import TrialTable


async def test_studies_and_study_screens_show_every_state_and_every_objective(optuna_store, make_app):
    url = optuna_store
    before_tables, before_bytes = tables(url), file_bytes(url)
    app = make_app(url)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2, what="two studies")
        # the rows are in the table before they are painted: wait for the painted screen
        await wait_for(pilot, lambda: "2 obj, 2 Pareto" in screen_text(app), what="the painted rows")
        text = screen_text(app)
        assert "plain" in text and "inf" in text
        plain_row = next(line for line in text.splitlines() if " plain " in line)
        assert "unfinished" in plain_row, plain_row  # a RUNNING trial, no tunetui coordinator: never "finished"

        await pilot.press("enter")  # plain: complete, pruned, fail, running and waiting trials
        assert isinstance(app.screen, StudyScreen)
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 6, what="six trials")
        await pilot.pause(0.1)
        text = screen_text(app)
        for state in ("complete", "pruned", "fail", "running", "waiting"):
            assert state in text, text
        assert not [c for c in app.screen.query_one(TrialTable).all_columns() if c.key.startswith("metric:")]
        # no epochs without telemetry: the table and Detail count the steps trial.report wrote, headed as such
        table = app.screen.query_one(TrialTable)
        assert {c.key: c.label for c in table.all_columns()}["epochs"] == "rep" and " rep " in text
        assert [(table.rows[n].epochs, table.rows[n].reported) for n in range(6)] == [(0, 3)] * 4 + [(0, 1), (0, 0)]
        await pilot.press("4")  # Detail of trial #0
        await wait_for(pilot, lambda: "reported steps 3 " in screen_text(app), what="the count")
        assert "epochs 0" not in screen_text(app)
        await pilot.press("1")
        # no telemetry: the curves are what trial.report wrote (steps 0-2 of trial #0), named as such
        await wait_for(pilot, lambda: "intermediate values #0" in screen_text(app), what="the reported curve")
        assert "no tunetui telemetry" in screen_text(app)
        shown = app.screen.model.epochs[0]
        x = shown[1]["intermediate"]  # the trial's x: it reported x * step
        assert [(r["epoch"], r["intermediate"]) for r in shown] == [(0, 0.0), (1, x), (2, 2 * x)] and x > 0
        trials = app.screen.query_one(TrialTable)
        trials.move_to(4)  # the running trial: ctrl+k asks, y sends a kill that has no coordinator to go to
        await pilot.press("ctrl+k", "y")
        refusals = lambda: [n for n in app._notifications if "no tunetui coordinator" in n.message]  # noqa: E731
        await wait_for(pilot, lambda: len(refusals()) == 1, what="the refusal")
        await pilot.press("p", "x", "X")  # the study's controls say the same, not "finished: nothing to pause"
        await wait_for(pilot, lambda: len(refusals()) == 4, what="pause, stop and stop now refused")
        assert not [n for n in app._notifications if "nothing to" in n.message]
        for key in ("o", "o", "r", "x", "p", "f", "2", "3", "4", "1"):  # sort by state, every tab
            await pilot.press(key)
        await pilot.pause(0.1)
        assert isinstance(app.screen, StudyScreen)
        await pilot.press("6")  # the Log tab: no worker log (no tunetui telemetry), said once read
        await wait_for(pilot, lambda: "no log lines for trial #" in screen_text(app), what="the empty log")
        await pilot.press("1")
        await pilot.press("slash", *"state!=complete", "enter")  # the trial filter reads these stores too
        assert "filter state!=complete · 4 of 6 trials" in screen_text(app)
        assert sorted(trials.rows[n].state for n in trials.order) == ["FAIL", "PRUNED", "RUNNING", "WAITING"]
        await pilot.press("escape")  # clears the filter
        await pilot.press("slash", *"rep<3", "enter")  # the column's heading filters it too
        assert "filter rep<3 · 2 of 6 trials" in screen_text(app)
        assert sorted(trials.rows[n].state for n in trials.order) == ["RUNNING", "WAITING"]
        await pilot.press("escape")

        await pilot.press("escape", "down", "enter")  # pareto: both values of each trial
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 3, what="three trials")
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "values" in text and "0.9, 0.3" in text and "0.8, 0.1" in text and "0.7, 0.5" in text, text
        # its trials reported nothing (Optuna cannot with several objectives): said so, never "loss: no data yet"
        curve = app.screen.query_one("#plot-loss", SeriesPlot)
        await wait_for(pilot, lambda: curve.chart.title == "intermediate values #0"
                       and "intermediate values #0: nothing" in screen_text(app), what="the reported curve")  # fmt: skip
        assert "loss" not in screen_text(app)
    assert tables(url) == before_tables and file_bytes(url) == before_bytes
