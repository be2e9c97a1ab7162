"""The TUI on a store made by a REAL tiny study (`tunetui run`, 2 trials of 2 epochs on digits)."""

from __future__ import annotations

import pytest

from tests.tui.conftest import copy_store, wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.curves import SeriesPlot
from tui.widgets.histogram import GradientPanel
from tui.widgets.trial_table import TrialTable

pytestmark = pytest.mark.slow


@pytest.fixture
def real_store(real_store_file, tmp_path) -> str:
    return copy_store(real_store_file, tmp_path / "real.db")


async def test_a_real_study_shows_its_trials_curves_detail_gradients_and_log(real_store, make_app):
    app = make_app(real_store, open_study="digits_mlp")
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.screen.query_one(TrialTable)
        await wait_for(pilot, lambda: len(table.rows) == 2, what="two trials")
        assert all(r.state == "COMPLETE" and r.epochs == 2 for r in table.rows.values())
        assert "digits_mlp · finished" in screen_text(app)
        loss = lambda: app.screen.query_one("#plot-loss", SeriesPlot).chart  # noqa: E731
        await wait_for(pilot, lambda: loss().series and list(loss().series[1].xs) == [1, 2], what="val loss")
        assert app.screen.query_one("#plot-grad", SeriesPlot).chart.hline == 5.0  # the spec's clip_norm
        await pilot.press("4")
        await wait_for(pilot, lambda: "attributes" in screen_text(app))
        assert "seed" in screen_text(app) and "device" in screen_text(app)
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.query(GradientPanel), what="the grads tab")
        grads = app.screen.query_one(GradientPanel)
        await wait_for(pilot, lambda: grads.rows, what="real layer histograms")
        assert grads.layers and all(r["hist"]["counts"] for r in grads.rows)
        await pilot.press("6")
        await wait_for(pilot, lambda: "epoch 2: train_loss=" in screen_text(app), what="the worker's log")
