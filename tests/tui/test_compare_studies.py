"""Compare two studies from the Studies screen: `m` marks one, `c` on another opens both histories overlaid
(a marker and a legend entry per study) above the diff of their search spaces."""

from __future__ import annotations

import optuna
from textual.widgets import DataTable

from tests.tui.builders import build_study
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text

FLOAT = optuna.distributions.FloatDistribution


def add_plain_study(url: str, name: str, directions: list[str]) -> None:
    """A study Optuna alone made (no recorded spec): three complete trials of lr and width."""
    study = optuna.create_study(study_name=name, storage=url, directions=directions)
    for i, lr in enumerate((1e-3, 3e-3, 1e-2)):
        values = [0.5 + 0.1 * i] * len(directions)
        study.add_trial(optuna.trial.create_trial(values=values, params={"lr": lr, "width": 64.0},
                                                  distributions={"lr": FLOAT(1e-4, 1e-1, log=True),
                                                                 "width": FLOAT(16, 128)}))  # fmt: skip


async def select(pilot, app, name: str) -> None:
    table = app.screen.query_one(DataTable)
    await wait_for(pilot, lambda: name in [k.value for k in table.rows], what=name)
    table.move_cursor(row=table.get_row_index(name), animate=False)
    await pilot.pause()


async def test_mark_one_study_and_compare_it_with_another(small_store, make_app):
    build_study(small_store, name="second", n_trials=3, seed=4)  # another digits_mlp: the same spec
    add_plain_study(small_store, "plain", ["maximize"])
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await select(pilot, app, "digits_mlp")
        await pilot.press("c")  # nothing marked: it says how
        await wait_for(pilot, lambda: type(app.screen).__name__ == "StudiesScreen")
        await pilot.press("m")
        await wait_for(pilot, lambda: "◆ digits_mlp" in screen_text(app), what="the mark")
        await select(pilot, app, "plain")
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen" and app.screen.loaded)
        text = screen_text(app)
        for mark in ("compare digits_mlp with plain", "optimization history of both studies", "oo digits_mlp",
                     "xx plain", "++ plain best", "the parameters the trials drew", "-dropout = 0.0365..0.3855"):
            assert mark in text, text
        diff = str(app.screen.query_one("#compare-text").content)  # the rest scrolls
        # at 80x24 the chart takes two thirds: its four legend lines leave most of its rows to the points
        assert app.screen.query_one("#compare-plot").size.height >= 13
        assert "+lr = 0.001..0.01" in diff and "+width = 64..64" in diff and "-layers = 1..3" in diff, diff
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "StudiesScreen")
        await select(pilot, app, "second")  # the mark stays: compare with a study of the same spec
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen" and app.screen.loaded)
        assert "search space: the same (the [space] of the specs the studies recorded)" in screen_text(app), \
            screen_text(app)


async def test_compare_with_a_two_objective_study_shows_the_space_diff_and_says_why_no_overlay(optuna_store, make_app):
    app = make_app(optuna_store)  # made by Optuna alone: SQLite, a journal file, PostgreSQL
    async with app.run_test(size=(80, 24)) as pilot:
        await select(pilot, app, "plain")
        await pilot.press("m")
        await select(pilot, app, "pareto")
        await pilot.press("c")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CompareScreen" and app.screen.loaded)
        text = screen_text(app)
        assert "history: pareto has several objectives; the overlay needs one each" in text, text
        assert "the parameters the trials drew" in text, text
        diff = str(app.screen.query_one("#compare-text").content)
        assert "-kind = one of " in diff and "-x = " in diff and "+lr = " in diff, diff  # values drawn at random
