"""10,000 trials (made with Optuna's API, 2 epochs of metrics each): the Study screen opens, scrolls, sorts
(by a metric column too) and plots.
How fast is benchmarks/bench_tui.py's job, not a test's on a shared machine."""

from __future__ import annotations

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.history_plot import HistoryPlot
from tui.widgets.trial_table import TrialTable


async def test_ten_thousand_trials_open_scroll_and_sort(big_store, make_app):
    app = make_app(big_store, open_study="big")
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(TrialTable)
        await wait_for(pilot, lambda: len(table.rows) == 10_000, timeout=30, what="10,000 rows")
        # the second read (params, metrics) relays the columns out: the keys below meet a settled table
        await wait_for(pilot, lambda: all(r.metrics for r in table.rows.values()), what="the metrics (second read)")
        await pilot.pause()
        assert "9999" not in screen_text(app)
        await pilot.press("end")
        assert table.current == 9999 and "9999" in screen_text(app)
        await pilot.press("pageup", "pageup")
        assert table.current < 9999 - 2 * 30
        await pilot.press("home")
        assert table.current == 0
        await pilot.press("o", "o")  # by value: best first (a maximized study)
        best = max(r.value for r in table.rows.values() if r.value is not None)
        assert table.rows[table.order[0]].value == best
        assert table.current == 0  # the cursor stayed on trial #0 wherever it went
        await pilot.press("o", "o", "o", "o")  # ep, time, !, then the first metric column: val_acc, highest first
        assert table.sort_key == "metric:val_acc" and table.sort_reverse
        assert table.rows[table.order[0]].metrics["val_acc"] == max(r.metrics["val_acc"] for r in table.rows.values())
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.query(HistoryPlot), what="the history tab")
        history = app.screen.query_one(HistoryPlot)
        await wait_for(pilot, lambda: history.draws and len(history.numbers) > 7000, what="the history plot")
        assert "optimization history" in screen_text(app)
