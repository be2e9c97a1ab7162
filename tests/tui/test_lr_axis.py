"""Learning-rate charts label their log axis in short scientific form (1e-3), never plotext's 0.001000."""

from __future__ import annotations

import re

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.curves import SeriesPlot, sci_ticks, short_sci
from tui.widgets.trial_table import TrialTable


def test_ticks_are_powers_of_ten_and_their_multiples_in_short_form():
    assert short_sci(0.001) == "1e-3" and short_sci(0.0015) == "1.5e-3" and short_sci(1.0) == "1e0"
    assert sci_ticks(1e-5, 2e-1) == ([1e-5, 1e-4, 1e-3, 1e-2, 1e-1], ["1e-5", "1e-4", "1e-3", "1e-2", "1e-1"])
    assert sci_ticks(1.5e-3, 6e-3)[1] == ["2e-3", "5e-3"]
    assert sci_ticks(1.1e-3, 1.2e-3)[1] == ["1.1e-3", "1.2e-3"]  # no round value inside: the ends
    # a narrow range (a schedule's first epochs): as many digits as it takes to tell the ticks apart
    assert sci_ticks(1.96e-3, 2.04e-3) == ([1.96e-3, 2e-3, 2.04e-3], ["1.96e-3", "2e-3", "2.04e-3"])
    assert sci_ticks(1.9996e-3, 2.0004e-3)[1] == ["1.9996e-3", "2e-3", "2.0004e-3"]


async def test_the_learning_rate_chart_labels_its_axis_1e_minus_n(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 12, what="12 trials")
        await pilot.press("m", "m")  # loss -> accuracy -> learning rate
        plot = app.screen.query_one("#plot-lr", SeriesPlot)
        await wait_for(pilot, lambda: plot.display and any(s.xs for s in plot.chart.series)
                       and "learning rate" in screen_text(app), what="the lr chart")  # fmt: skip
        await pilot.pause(0.2)
        text = screen_text(app)
        ticks = re.findall(r"(\S+)┤", text)
        assert ticks and all(re.fullmatch(r"\d(\.\d)?e-\d", t) for t in ticks), ticks
