"""The trial table's own keys on the Study screen, on real stores: `/` filters (the filter and its count in
the header, escape clears), `C` picks columns (kept for the app session), `o` sorts the value best first
for the study's direction, and the sorted column stays marked when scrolled out of view; every reported
metric is a column these keys reach."""

from __future__ import annotations

import optuna
import pytest
from textual.widgets import Input, SelectionList

from engine.store import Store
from tests.tui.builders import DISTRIBUTIONS, build_study
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.columns import ColumnPicker
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable


def table(app) -> TrialTable:
    return app.screen.query_one(TrialTable)


def header(app) -> str:
    """The table's header line as on screen (the line API's line 0; the vertical scrollbar not included)."""
    t = table(app)
    return t.render_line(0).crop(0, t.scrollable_content_region.width).text


async def opened(pilot, trials: int) -> None:
    await wait_for(pilot, lambda: len(table(pilot.app).rows) == trials, what=f"{trials} trials")
    await pilot.pause(0.1)


async def type_filter(pilot, text: str) -> None:
    """`/`, then the text (set at once: it may hold bytes no key makes), then enter."""
    await pilot.press("slash")
    pilot.app.screen.query_one("#filter-input", Input).value = text
    await pilot.press("enter")
    await pilot.pause(0.05)


async def test_slash_filters_the_table_and_the_header_shows_the_filter_and_its_count(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("slash", *"state=complete", "space", *"lr", "less_than_sign", *"1e-2", "enter")
        t = table(app)
        assert t.order == [2, 4, 8, 11]
        assert all(t.rows[n].state == "COMPLETE" and t.rows[n].params["lr"] < 1e-2 for n in t.order)
        assert "filter state=complete lr<1e-2 · 4 of 12 trials" in screen_text(app)
        assert t.has_focus and t.current == 2  # the cursor moved to a trial the filter lets through
        await pilot.press("slash")  # `/` again edits the filter on
        assert app.screen.query_one("#filter-input", Input).value == "state=complete lr<1e-2"
        await pilot.press("escape")  # cancels the edit: the filter stays
        assert t.order == [2, 4, 8, 11] and "4 of 12 trials" in screen_text(app)
        await type_filter(pilot, "state=complete layers>=2")
        assert t.order == [0, 1, 4, 6, 7, 10, 11] and "filter state=complete layers>=2 · 7 of 12" in screen_text(app)
        await pilot.press("escape")  # clears the filter
        assert len(t.order) == 12 and "filter " not in screen_text(app)
        await pilot.press("escape")  # no filter on: back to the Studies screen
        assert isinstance(app.screen, StudiesScreen)


async def test_bad_filters_get_a_message_on_the_line_and_leave_the_table_as_it_was(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        for text, message in (
            ("los<1", "error: unknown column 'los'"),
            ("lr<abc", "error: 'lr<abc': < compares numbers and 'abc' is not a number"),
            ("[b]lr[/b]<1", "error: unknown column '[b]lr[/b]'"),  # markup is shown as typed
            ("state=complete\x1b[31m", "error: the filter has control characters"),
        ):
            await type_filter(pilot, text)
            assert message in screen_text(app), text
            assert len(table(app).order) == 12 and isinstance(app.screen, StudyScreen)
            await pilot.press("escape")  # cancels the typing
            assert table(app).has_focus and "error:" not in screen_text(app)
        await type_filter(pilot, "optimizer=[red]adam")  # a text value: no trial has it, nothing rendered
        assert "filter optimizer=[red]adam · 0 of 12 trials" in screen_text(app)
        assert table(app).order == [] and table(app).current is None


async def test_the_count_follows_trials_that_arrive_while_a_filter_is_on(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await type_filter(pilot, "state=running")
        assert table(app).order == [4, 5] and "2 of 6 trials" in screen_text(app)
        store = Store(running_store)
        study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
        study.tell(4, 0.97)
        study.add_trial(optuna.trial.create_trial(value=0.5, params={"lr": 0.01},
                                                  distributions={"lr": DISTRIBUTIONS["lr"]}))  # fmt: skip
        store.close()
        await wait_for(pilot, lambda: "1 of 7 trials" in screen_text(app), what="the count after the change")
        assert table(app).order == [5]


def keys(app) -> list[str]:
    """The keys of the columns shown (at 80 columns the parameters are right of the screen's edge)."""
    return [c.key for c in table(app).columns]


async def test_capital_c_hides_columns_for_the_rest_of_the_session(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        assert "param:optimizer" in keys(app) and "param:dropout" in keys(app)
        await pilot.press("C")
        assert isinstance(app.screen, ColumnPicker)
        picker = app.screen.query_one(SelectionList)
        labels = [str(picker.get_option_at_index(i).prompt) for i in range(picker.option_count)]
        assert labels[:3] == ["#: trial number", "state", "value"] and "optimizer (parameter)" in labels
        picker.highlighted = labels.index("dropout (parameter)") - 1
        await pilot.press("j", "space")  # j/k move, space toggles
        assert picker.highlighted == labels.index("dropout (parameter)")
        picker.highlighted = labels.index("optimizer (parameter)") + 1
        await pilot.press("k", "enter", "escape")  # enter toggles too; escape closes
        assert isinstance(app.screen, StudyScreen)
        assert {"param:dropout", "param:optimizer"}.isdisjoint(keys(app)) and "param:layers" in keys(app)
        await pilot.press("escape", "enter")  # the study again, on a new Study screen: still hidden
        await opened(pilot, 12)
        assert {"param:dropout", "param:optimizer"}.isdisjoint(keys(app))
        await pilot.press("C")
        app.screen.query_one(SelectionList).highlighted = labels.index("dropout (parameter)")
        await pilot.press("space", "escape")  # dropout back
        assert "param:dropout" in keys(app) and "param:optimizer" not in keys(app)


async def test_value_sorts_best_first_r_reverses_and_the_sorted_column_stays_marked_when_scrolled(any_store,
                                                                                                 make_app):  # fmt: skip
    app = make_app(any_store, open_study="digits_mlp")
    async with app.run_test(size=(50, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("down", "down", "o", "o")  # state, then value: a maximized study, highest first
        t = table(app)
        values = [t.rows[n].value for n in t.order if t.rows[n].value is not None]
        assert t.sort_key == "value" and t.order[0] == 3 and values == sorted(values, reverse=True)
        assert t.rows[t.order[-1]].value is None and t.current == 2 and "value▼" in header(app)
        assert "◂" not in header(app)
        await pilot.press("right", "right", "right")  # 24 columns right: the value column is past the left edge
        assert t.scroll_x > 0 and header(app).lstrip().startswith("◂value▼")
        await pilot.press("r")
        values = [t.rows[n].value for n in t.order if t.rows[n].value is not None]
        assert values == sorted(values) and t.rows[t.order[-1]].value is None and "◂value▲" in header(app)
        await pilot.press("o")  # the next column starts ascending
        assert t.sort_key == "epochs" and not t.sort_reverse
        # back, then sort by width (the last column: after time, !, 3 metrics and 4 other parameters)
        await pilot.press("left", "left", "left", *["o"] * 10)
        assert t.sort_key == "param:width" and header(app).rstrip().endswith("width▲▸")
        await pilot.press(*["right"] * 8)  # to the right end
        assert header(app).rstrip().endswith("widt▲") and "◂" not in header(app)  # the arrow in its header


async def test_a_minimized_study_sorts_its_value_lowest_first(tmp_path, make_app):
    url = f"sqlite:///{tmp_path}/min.db"
    build_study(url, name="loss", n_trials=6, direction="minimize", telemetry=False)
    app = make_app(url, open_study="loss")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("r", "o", "o")  # a reversed order before does not carry over to the value column
        t = table(app)
        values = [t.rows[n].value for n in t.order if t.rows[n].value is not None]
        assert values == sorted(values) and t.order[0] == t.best and "value▲" in header(app)


async def test_every_reported_metric_is_a_column_to_filter_sort_and_hide(tmp_path, make_app):
    url = f"sqlite:///{tmp_path}/own.db"
    build_study(url, n_trials=14, extra_metrics=True)  # epochs report val_f1 and latency_ms beyond the columns
    app = make_app(url, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 14)
        t = table(app)
        # the last epoch's metrics, after the fixed columns; val_acc, the study's metric, is the value column
        assert keys(app)[5:11] == ["flags", "metric:val_f1", "metric:val_loss", "metric:latency_ms", "metric:train_acc",
                                   "metric:train_loss"] and keys(app)[11].startswith("param:")  # fmt: skip
        assert all(t.rows[n].metrics["val_f1"] == pytest.approx(t.rows[n].value - 0.03) for n in (0, 3, 13))
        assert header(app).split()[:8] == ["#▲", "state", "value", "ep", "time", "!", "val_f1", "val_loss"]
        cursor_line = t.render_line(1).text  # at 80x24: the value and the cursor's row on screen
        assert cursor_line.startswith("›   0 complete") and "0.903" in cursor_line  # 0.933 - 0.03
        await type_filter(pilot, "val_f1>0.9")
        high = sorted(n for n, r in t.rows.items() if r.metrics["val_f1"] > 0.9)
        assert t.order == high and 0 < len(high) < 14 and f"val_f1>0.9 · {len(high)} of 14 trials" in screen_text(app)
        await pilot.press("escape", "end")  # every trial again; the cursor on the last one
        await pilot.press(*["o"] * 6)  # #, state, value, ep, time, !, then val_f1: highest first
        f1 = [t.rows[n].metrics["val_f1"] for n in t.order]
        assert t.sort_key == "metric:val_f1" and t.sort_reverse and f1 == sorted(f1, reverse=True)
        top = int(t.scroll_y)
        assert t.current == 13 and top <= t.cursor < top + t.visible_rows  # the cursor's row stays in view
        await pilot.press("o", "o")  # val_loss, then latency_ms: lowest first
        latency = [t.rows[n].metrics["latency_ms"] for n in t.order]
        assert t.sort_key == "metric:latency_ms" and not t.sort_reverse and latency == sorted(latency)
        await pilot.press("C")
        picker = app.screen.query_one(SelectionList)
        labels = [str(picker.get_option_at_index(i).prompt) for i in range(picker.option_count)]
        assert "val_f1 (last epoch)" in labels and "val_acc (last epoch)" not in labels
        picker.highlighted = labels.index("latency_ms (last epoch)")
        await pilot.press("space", "escape")
        assert "metric:latency_ms" not in keys(app) and "latency_ms" not in header(app)
        assert t.sort_key == "number"  # the sorted column was hidden
