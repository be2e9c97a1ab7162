"""The TUI on a PostgreSQL store: the same reads, the Study screen (its trial filter too), importances, the
Analysis views, Compare and deletion."""

from __future__ import annotations

import pytest

from engine.store import Store, with_driver
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tests.tui.test_compare_studies import add_plain_study, select
from tui.data import StudyWatcher, Want, delete_study, list_studies, open_store
from tui.widgets.curves import SeriesPlot
from tui.widgets.history_plot import ImportancePlot
from tui.widgets.trial_table import TrialTable

pytestmark = pytest.mark.postgres


def test_watcher_and_studies_list_read_postgres_like_sqlite(pg_small_store):
    watcher = StudyWatcher(pg_small_store, "digits_mlp")
    first = watcher.poll(Want(curves=(1,), steps=1, detail=1))
    assert first.first and len(first.trials) == 12 and first.status == "finished"
    assert len(first.epochs[1]) == 6 and len(first.steps[1]) == 60 and first.layers[1]
    assert first.details[0].findings[0]["kind"] == "overfitting"
    assert [r.metrics for r in first.trials if r.number == 1] == [{k: first.epochs[1][-1][k] for k in
                                                                   ("train_loss", "train_acc", "val_loss", "val_acc")}]  # fmt: skip
    assert watcher.poll(Want(curves=(1,), steps=1, detail=1)).empty
    [study] = list_studies(open_store(pg_small_store))
    assert study["counts"] == {"COMPLETE": 10, "PRUNED": 1, "FAIL": 1} and study["device"] == "cpu"


async def test_study_screen_on_postgres_shows_trials_curves_and_importance(pg_small_store, make_app):
    app = make_app(pg_small_store, open_study="digits_mlp")
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one(TrialTable)
        await wait_for(pilot, lambda: len(table.rows) == 12)
        loss = lambda: app.screen.query_one("#plot-loss", SeriesPlot).chart  # noqa: E731
        await wait_for(pilot, lambda: loss().series and list(loss().series[0].xs) == [1, 2, 3, 4, 5, 6])
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query(ImportancePlot) and app.screen.query_one(ImportancePlot).importances,
                       timeout=30, what="importances from a read-only Optuna load")  # fmt: skip
        assert "parameter importance (fANOVA)" in screen_text(app)
        await pilot.press("slash", *"state=complete", "space", *"lr", "less_than_sign", *"1e-2", "enter")
        assert table.order == [2, 4, 8, 11] and "filter state=complete lr<1e-2 · 4 of 12 trials" in screen_text(app)
        low = sorted(n for n, r in table.rows.items() if r.metrics["val_loss"] < 0.35)  # a metric column's filter
        await pilot.press("slash", *["backspace"] * 25, *"val_loss", "less_than_sign", *"0.35", "enter")
        assert table.order == low and 0 < len(low) < 12 and "metric:val_loss" in [c.key for c in table.columns]


def test_delete_study_on_postgres(pg_small_store):
    delete_study(pg_small_store, "digits_mlp")
    store = Store(pg_small_store)
    assert store.studies() == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM tt_epoch").scalar_one() == 0
    store.close()


async def test_analysis_views_and_compare_on_postgres(pg_small_store, make_app):
    add_plain_study(with_driver(pg_small_store), "plain", ["maximize"])
    app = make_app(pg_small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "study_name", None) == "digits_mlp", what="the Study screen")
        await pilot.press("a")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "AnalysisScreen" and app.screen.loaded)
        views = {"1": "parallel coordinates (10 complete trials)", "2": "page 1/", "3": "mean value per cell",
                 "4": "empirical distribution of the value", "5": "trials ranked by value",
                 "6": "legend: █ complete", "7": "val_acc per epoch"}  # fmt: skip
        for key, mark in views.items():
            await pilot.press(key)
            await wait_for(pilot, lambda mark=mark: mark in screen_text(app), what=f"view {key}")
        await pilot.press("escape", "escape")
        await select(pilot, app, "plain")
        await pilot.press("m")
        await select(pilot, app, "digits_mlp")
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen" and app.screen.loaded)
        text = screen_text(app)
        assert "compare plain with digits_mlp" in text and "xx digits_mlp" in text, text
        assert "-lr = 0.001..0.01" in str(app.screen.query_one("#compare-text").content)
