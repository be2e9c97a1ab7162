"""Axes of trial numbers, epochs and reported steps are labelled with whole numbers, never plotext's 0.0 or 5.8:
the History tab, the Curves tab and the analysis views whose x axis is a trial or a step."""

from __future__ import annotations

import re

import plotext
import pytest

from engine import analysis
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.analysis_views import (
    compare_draw,
    hypervolume_draw,
    intermediate_draw,
    objective_history_draw,
)
from tui.widgets.curves import whole_ticks
from tui.widgets.history_plot import HistoryPlot
from tui.widgets.trial_table import TrialTable


def x_labels(chart_text: str) -> list[str]:
    """The tick labels under a chart's x axis (the line below its `└` corner)."""
    lines = chart_text.splitlines()
    below = lines[next(i for i, line in enumerate(lines) if "└" in line) + 1]
    return re.sub(r"\x1b\[[0-9;]*m", "", below).split()


def test_whole_ticks_step_by_1_2_or_5_times_a_power_of_ten():
    assert whole_ticks(4, 4) == [4]
    assert whole_ticks(0, 2) == [0, 1, 2]
    assert whole_ticks(0, 11) == [0, 2, 4, 6, 8, 10]
    assert whole_ticks(5, 123) == [20, 40, 60, 80, 100, 120]
    assert whole_ticks(0, 9_999) == [0, 2_000, 4_000, 6_000, 8_000]


@pytest.mark.parametrize("trials", [1, 3, 10_000])
def test_the_analysis_views_label_trial_and_step_axes_with_whole_numbers(trials):
    numbers = tuple(range(trials))
    values = tuple(float(n % 7) for n in numbers)
    history = analysis.ObjectiveHistory(numbers, values, tuple(max(values[: n + 1]) for n in numbers))
    views = {
        "optimization history": objective_history_draw(history, 0, "MAXIMIZE"),
        "hypervolume": hypervolume_draw(analysis.HypervolumeHistory((0.0, 0.0), numbers, values)),
        "compare": compare_draw([("a", history), ("b", history)]),
        "intermediate values": intermediate_draw([("#0", list(numbers), list(values))], "value"),
    }
    for name, draw in views.items():
        plotext.clear_figure()
        draw(plotext)
        plotext.plotsize(80, 20)
        labels = x_labels(plotext.build())
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), (name, labels)
        assert int(labels[-1]) <= trials - 1 and (trials == 1 or len(labels) >= 2), (name, labels)


async def test_the_history_tab_labels_trial_numbers_with_whole_numbers(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 12, what="12 trials")
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.query(HistoryPlot) and app.screen.query_one(HistoryPlot).numbers,
                       what="the history")  # fmt: skip
        await wait_for(pilot, lambda: "optimization history" in screen_text(app), what="the painted history")
        labels = x_labels(screen_text(app))
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
        # the Curves tab's epochs too
        await pilot.press("1")
        await wait_for(pilot, lambda: "epoch" in screen_text(app), what="the painted curves")
        labels = x_labels(screen_text(app))
        assert labels and all(re.fullmatch(r"\d+", label) for label in labels), labels
