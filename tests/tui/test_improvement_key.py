"""The Study screen's `T`: Optuna's terminator estimate of the improvement left, asked for now (a child
process, from a worker thread), lands in the header."""

from __future__ import annotations

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.trial_table import TrialTable


async def test_T_estimates_the_improvement_left_and_the_header_shows_it(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 12, what="12 trials")
        assert "gain left" not in app.screen._title_text  # no run recorded an estimate
        await pilot.press("T")
        await wait_for(pilot, lambda: app.screen.model.estimate is not None, timeout=120, what="the estimate")
        estimate = app.screen.model.estimate
        assert estimate.error is None and estimate.complete == 10  # the study's complete trials
        shown = f"· gain left ≤ {estimate.improvement:.3g} ·"
        await wait_for(pilot, lambda: shown in screen_text(app).splitlines()[0], what="the estimate on screen at 80 columns")
