"""The Study screen, driven by keys on real stores: table, live updates, views, tabs, control rows, export."""

from __future__ import annotations

import csv
import re
import threading

import optuna
import pytest
import sqlalchemy as sa
from textual import events

from engine import control
from engine.store import Store
from tests.tui.builders import DISTRIBUTIONS
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.export import ExportScreen
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.widgets.curves import CurvesPanel, SeriesPlot
from tui.widgets.histogram import GradientPanel
from tui.widgets.history_plot import HistoryPlot, ImportancePlot
from tui.widgets.trial_table import TrialTable


def table(app) -> TrialTable:
    return app.screen.query_one(TrialTable)


def chart(app, name: str):
    return app.screen.query_one(f"#plot-{name}", SeriesPlot).chart


def controls(url: str) -> list[tuple[str, str | None]]:
    store = Store(url, read_only=True)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT action, arg FROM tt_control ORDER BY id")).all()
    store.close()
    return [tuple(r) for r in rows]


async def opened(pilot, trials: int) -> None:
    await wait_for(pilot, lambda: len(table(pilot.app).rows) == trials, what=f"{trials} trials")
    await pilot.pause(0.1)


async def test_table_shows_every_trial_with_state_value_epochs_and_flags(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        text = screen_text(app)
        assert "complete" in text and "pruned" in text and "0.963★" in text and "!1" in text
        assert "digits_mlp · finished · best 0.963 #3 · trials 12: 10c 1p 1f · view selected" in text
        assert table(app).current == 0
        await pilot.press("end")
        assert table(app).current == 11 and "fail" in screen_text(app)


async def test_o_sorts_by_the_next_column_and_r_reverses(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("down", "down")  # cursor on #2
        await pilot.press("o")  # state
        assert table(app).sort_key == "state"
        await pilot.press("o")  # value, best first: a maximized study's highest value
        t = table(app)
        assert t.sort_key == "value" and t.sort_reverse
        assert t.order[0] == 3  # the best value first
        assert t.rows[t.order[-1]].value is None  # trials without a value last
        assert t.current == 2  # the cursor stayed on its trial
        assert "value▼" in screen_text(app)


async def test_new_trials_and_state_changes_appear_without_losing_the_cursor(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("down", "down")
        assert table(app).current == 2
        store = Store(running_store)
        study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
        study.tell(4, 0.97)
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5, params={"lr": 0.01}, distributions={"lr": DISTRIBUTIONS["lr"]}
            )
        )
        store.close()
        await wait_for(pilot, lambda: len(table(app).rows) == 7 and table(app).rows[4].state == "COMPLETE",
                       what="trial 6 and trial 4 complete")  # fmt: skip
        assert table(app).current == 2
        assert table(app).best == 4 and "best 0.97 #4" in screen_text(app)


async def test_f_follows_the_newest_trial(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("f")
        assert table(app).current == 5 and "follow" in screen_text(app)
        store = Store(running_store)
        study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5, params={"lr": 0.01}, distributions={"lr": DISTRIBUTIONS["lr"]}
            )
        )
        store.close()
        await wait_for(pilot, lambda: table(app).current == 6, what="the cursor on the new trial")
        await pilot.press("f")
        assert not app.screen.model.follow


def add_trial(url: str) -> None:
    store = Store(url)
    study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
    study.add_trial(optuna.trial.create_trial(value=0.5, params={"lr": 0.01}, distributions={"lr": DISTRIBUTIONS["lr"]}))
    store.close()


@pytest.mark.parametrize("keys", [("k",), ("up",), ("pageup",), ("home",), ("j", "k")])
async def test_moving_the_cursor_by_hand_turns_follow_off_and_f_turns_it_on(running_store, make_app, keys):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("f")
        assert "+follow" in screen_text(app).splitlines()[0]
        await pilot.press(*keys)
        here = table(app).current
        assert here != 5 and not app.screen.model.follow
        assert "+follow" not in screen_text(app).splitlines()[0]
        add_trial(running_store)
        await wait_for(pilot, lambda: len(table(app).rows) == 7, what="the new trial")
        await pilot.pause(0.2)
        assert table(app).current == here  # no snap back to the newest trial
        await pilot.press("f")
        assert table(app).current == 6 and "+follow" in screen_text(app).splitlines()[0]


async def test_clicking_a_row_turns_follow_off(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("f")
        await pilot.click(TrialTable, offset=(4, 3))  # the header, then rows 0, 1, 2
        assert table(app).current == 2 and not app.screen.model.follow


async def test_the_mouse_wheel_turns_follow_off(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await pilot.press("f")
        table(app).post_message(events.MouseScrollUp(table(app), 4, 3, 0, -1, 0, False, False, False))
        await wait_for(pilot, lambda: not app.screen.model.follow, what="follow off")


async def test_curves_of_the_selected_trial_with_clip_line_then_best_then_all(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(160, 48)) as pilot:
        await opened(pilot, 12)
        await wait_for(pilot, lambda: chart(app, "loss").series and chart(app, "loss").series[0].xs)
        loss = chart(app, "loss")
        assert loss.title == "loss #0" and [s.label for s in loss.series] == ["train", "val"]
        assert list(loss.series[0].xs) == [1, 2, 3, 4, 5, 6]
        grad = chart(app, "grad")
        assert grad.hline == 5.0 and grad.xlabel.startswith(
            "step"
        )  # per-step grad norm, clip_norm from user attrs
        await wait_for(pilot, lambda: chart(app, "layers").series, what="per-layer norms")
        assert [s.label for s in chart(app, "layers").series] == ["net.0", "net.2", "net.4"]
        await pilot.press("v")
        await wait_for(pilot, lambda: chart(app, "loss").title == "loss #3", what="the best trial's curves")
        await pilot.press("v")
        await wait_for(pilot, lambda: len(chart(app, "loss").series) == 12, what="all trials overlaid")
        assert chart(app, "loss").title == "loss 12 trials"
        await pilot.press("v")
        assert app.screen.model.view == "selected"


async def test_c_compares_two_trials(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("c")
        assert table(app).pinned == 0
        await pilot.press("down", "c")
        await wait_for(pilot, lambda: chart(app, "loss").title == "loss #0 vs #1", what="compare curves")
        labels = [s.label for s in chart(app, "loss").series]
        assert labels == ["#0 val", "#0 train", "#1 val", "#1 train"]
        assert "compare #0" in screen_text(app)
        await pilot.press("c")
        assert app.screen.model.view == "selected" and table(app).pinned is None


async def test_m_cycles_the_chart_on_a_narrow_terminal(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        panel = app.screen.query_one(CurvesPanel)
        visible = lambda: [p.id for p in panel.query(SeriesPlot) if p.display and "-hidden" not in p.classes]  # noqa: E731
        assert visible() == ["plot-loss"]
        await pilot.press("m")
        assert visible() == ["plot-acc"]


async def test_tabs_show_history_importance_detail_gradients_and_log(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 32)) as pilot:
        await opened(pilot, 12)
        await pilot.press("down")  # trial 1: a finding, 6 epochs of layer telemetry
        await pilot.press("2")
        await wait_for(pilot, lambda: app.screen.query(HistoryPlot), what="the history tab")
        history = app.screen.query_one(HistoryPlot)
        await wait_for(pilot, lambda: len(history.numbers) == 10)
        assert "optimization history (10 complete, best 0.963)" in screen_text(app)
        await pilot.press("3")
        await wait_for(pilot, lambda: app.screen.query(ImportancePlot), what="the importance tab")
        plot = app.screen.query_one(ImportancePlot)
        await wait_for(pilot, lambda: plot.importances, timeout=30, what="importances")
        assert set(plot.importances) == {"lr", "layers", "width", "dropout", "optimizer"}
        assert "parameter importance (fANOVA)" in screen_text(app)
        await wait_for(pilot, lambda: all(f"{n} {v:.2f}" in screen_text(app) for n, v in plot.importances.items()),
                       what="each bar's number")  # fmt: skip
        await pilot.press("4")
        await wait_for(pilot, lambda: "overfitting" in screen_text(app), what="the finding")
        text = screen_text(app)
        assert "trial #1" in text and "remedy: raise dropout" in text
        await pilot.press("5")
        await wait_for(pilot, lambda: app.screen.query(GradientPanel), what="the grads tab")
        grads = app.screen.query_one(GradientPanel)
        await wait_for(pilot, lambda: grads.rows, what="layer rows")
        assert "layer net.0 (1/3)" in screen_text(app) and "epoch 6/6" in screen_text(app)
        await pilot.press("right_square_bracket", "comma")
        text = screen_text(app)
        assert "layer net.2 (2/3)" in text and "epoch 5/6" in text
        await pilot.press("6")
        await wait_for(pilot, lambda: "trial 1 epoch 6/6" in screen_text(app), what="log lines")


async def test_detail_of_a_failed_trial_says_why(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 32)) as pilot:
        await opened(pilot, 12)
        table(app).move_to(9)
        await pilot.press("4")
        await wait_for(pilot, lambda: "failed: nan_loss" in screen_text(app), what="the failure reason")


async def test_j_and_k_move_the_cursor_and_never_kill(running_store, make_app):
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        table(app).move_to(4)  # a running trial: `k` must not offer to kill it
        await pilot.press("j")
        assert table(app).current == 5
        await pilot.press("k", "k")
        assert table(app).current == 3 and isinstance(app.screen, StudyScreen)
        await pilot.press("y")
        await pilot.pause(0.2)
    assert controls(running_store) == []


async def test_ctrl_k_kills_a_running_trial_after_y(any_running_store, make_app):
    app = make_app(any_running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        table(app).move_to(4)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, ConfirmScreen) and "Kill trial #4?" in screen_text(app)
        assert "recorded as killed" in screen_text(app)
        await pilot.press("n")
        assert controls(any_running_store) == []
        await pilot.press("ctrl+k")
        await pilot.press("escape")
        assert controls(any_running_store) == []
        await pilot.press("ctrl+k", "y")
        assert isinstance(app.screen, StudyScreen)
        await wait_for(pilot, lambda: controls(any_running_store) == [("kill", "4")], what="the kill row")


async def test_ctrl_k_on_a_finished_trial_only_warns(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("ctrl+k")
        assert isinstance(app.screen, StudyScreen)
        assert any("only a running trial" in n.message for n in app._notifications)
    assert controls(small_store) == []


async def test_p_x_and_capital_x_write_control_rows_in_order_from_a_worker_thread(running_store, make_app,
                                                                                 monkeypatch):  # fmt: skip
    threads = []
    real_send = control.send

    def send(*args):  # the real request, noting the thread it runs on
        threads.append(threading.current_thread())
        return real_send(*args)

    monkeypatch.setattr(control, "send", send)
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        await pilot.press("p", "x")
        await pilot.press("X")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        sent = [("pause", None), ("stop", None), ("stop_now", None)]
        await wait_for(pilot, lambda: controls(running_store) == sent, what="three control rows")
        await wait_for(pilot, lambda: any("stop requested: running trials are killed" in n.message
                                          for n in app._notifications), what="the answer")  # fmt: skip
    assert len(threads) == 3 and threading.main_thread() not in threads  # the UI thread never waits on the store


async def test_the_coordinators_answer_is_shown(running_store, make_app):
    """As `tunetui pause` prints it: the TUI waits (in its worker) for the coordinator's answer."""
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await wait_for(pilot, lambda: app.screen.model.status == "running")
        await pilot.press("p")
        await wait_for(pilot, lambda: controls(running_store) == [("pause", None)], what="the pause row")
        store = Store(running_store)  # the coordinator's side (the fixture's heartbeat has none behind it)
        (row,) = store.control_rows(store.study_id("digits_mlp"))
        store.answer_request(row["id"], "host-a", "error: [red]not now[/]")
        store.close()
        await wait_for(pilot, lambda: any(n.message == "error: [red]not now[/]" and n.severity == "error"
                                          for n in app._notifications), what="the answer")  # fmt: skip


def answer_controls(url: str, stop: threading.Event) -> None:
    """A coordinator's side of tt_control: it answers every request (its heartbeat stays as it was)."""
    import time

    store = Store(url)
    with store.engine.connect() as conn:
        seen = 0
        while not stop.is_set():
            rows = conn.execute(sa.text("SELECT id, action FROM tt_control WHERE id > :s ORDER BY id"),
                                {"s": seen}).all()  # fmt: skip
            conn.commit()
            for request_id, action in rows:
                seen = request_id
                store.answer_request(request_id, "host-a", f"{action}: done")
            time.sleep(0.05)
    store.close()


async def test_the_header_and_the_footer_show_paused_running_and_stopping_once_answered(any_running_store, make_app):
    stop = threading.Event()
    answerer = threading.Thread(target=answer_controls, args=(any_running_store, stop), daemon=True)
    answerer.start()
    app = make_app(any_running_store, open_study="digits_mlp")
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await opened(pilot, 6)
            footer = lambda: screen_text(app).splitlines()[-1]  # noqa: E731
            title = lambda: screen_text(app).splitlines()[0]  # noqa: E731
            await wait_for(pilot, lambda: "p Pause" in footer(), what="p Pause")
            await pilot.press("p")
            await wait_for(pilot, lambda: "· paused ·" in title(), what="paused in the header")
            await wait_for(pilot, lambda: "p Resume" in footer(), what="p Resume")
            await pilot.press("p")
            await wait_for(pilot, lambda: "· running ·" in title() and "p Pause" in footer(), what="running again")
            await pilot.press("x")
            await wait_for(pilot, lambda: "· stopping ·" in title(), what="stopping in the header")
            assert controls(any_running_store) == [("pause", None), ("resume", None), ("stop", None)]
    finally:
        stop.set()
        answerer.join(5)


async def test_s_and_p_resume_a_paused_study(running_store, make_app):
    store = Store(running_store)
    store.beat(store.study_id("digits_mlp"), "host-a", state="paused")
    store.close()
    app = make_app(running_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 6)
        await wait_for(pilot, lambda: app.screen.model.status == "paused")
        await pilot.press("s", "p")
        await wait_for(pilot, lambda: controls(running_store) == [("resume", None), ("resume", None)])


async def test_pausing_a_finished_study_only_warns(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("p", "x")
        await pilot.pause(0.1)
        messages = [n.message for n in app._notifications]
        assert any("nothing to pause" in m for m in messages) and any(
            "nothing to stop" in m for m in messages
        )
    assert controls(small_store) == []


async def test_s_with_no_spec_naming_the_study_explains_and_starts_nothing(small_store, make_app, studies_dir):
    (studies_dir / "digits_mlp.toml").unlink()  # the only spec here that names the study
    store = Store(small_store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM study_user_attributes"))
    store.close()
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("s")
        await wait_for(pilot, lambda: '[study] name = "digits_mlp"; add one' in screen_text(app), what="the reason")
        await pilot.press("escape")
        assert isinstance(app.screen, StudyScreen) and not app._notifications


@pytest.mark.parametrize("kind", ["csv", "spec"])
async def test_e_exports_trials_or_the_best_spec(small_store, make_app, tmp_path, kind):
    app = make_app(small_store, open_study="digits_mlp")
    target = tmp_path / ("out.csv" if kind == "csv" else "best.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("e")
        assert isinstance(app.screen, ExportScreen)
        if kind == "spec":
            await pilot.press("down", "down", "space")  # the radio set has the focus
        app.screen.query_one("#export-path").value = str(target)
        app.screen.query_one("#export-path").focus()
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: target.exists() and isinstance(app.screen, StudyScreen), what="the export"
        )
    if kind == "csv":
        rows = list(csv.DictReader(target.open()))
        assert len(rows) == 12 and rows[3]["value"] == "0.963"
    else:
        text = target.read_text()
        assert 'name = "digits_mlp-best"' in text and "[space" not in text


async def test_the_footer_shows_the_study_keys_at_80_columns(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await wait_for(pilot, lambda: "? Keys" in screen_text(app).splitlines()[-1], what="the footer")
        footer = screen_text(app).splitlines()[-1]
        for key in (
            "s Start",
            "p Pause",
            "x Stop",
            "^k Kill",
            "e Export",
            "c Compare",
            "f Follow",
            "q Quit",
            "? Keys",
        ):
            assert key in footer


async def test_the_command_palette_runs_screen_actions(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("ctrl+p")
        await pilot.press(*"follow")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: isinstance(app.screen, StudyScreen) and app.screen.model.follow, what="follow on"
        )


async def test_a_study_that_is_not_in_the_store_yet_is_awaited(tmp_path, make_app):
    from tests.tui.builders import build_study

    url = f"sqlite:///{tmp_path}/later.db"
    app = make_app(url, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "waiting for the study" in screen_text(app))
        build_study(url, n_trials=3)
        await opened(pilot, 3)


async def test_monochrome_no_color_still_marks_the_cursor(small_store, make_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(small_store, open_study="digits_mlp")
    assert app.no_color
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        lines = screen_text(app).splitlines()
        assert lines[2].startswith("›   0 complete")


def legend_marks(text: str, labels: list[str]) -> list[str]:
    """The two-cell mark the charts' legends draw before each label ("▞▞ train"): what tells series apart
    where colour does not."""
    marks = {}
    for line in text.splitlines():
        for label in labels:
            found = re.search(r"[┤│] (\S\S) " + re.escape(label) + r"(?!\S)", line)
            if found:
                marks[label] = found.group(1)
    assert set(marks) == set(labels), (marks, text)
    return [marks[label] for label in labels]


async def test_chart_series_differ_by_marker_under_no_color(small_store, make_app, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await wait_for(pilot, lambda: any(s.xs for s in chart(app, "loss").series), what="the loss chart")
        await pilot.pause(0.1)
        train, val = legend_marks(screen_text(app), ["train", "val"])
        assert train != val
        await pilot.press("c", "down", "c")  # two trials: four series, four marks
        await wait_for(pilot, lambda: chart(app, "loss").title == "loss #0 vs #1"
                       and all(s.xs for s in chart(app, "loss").series), what="compare curves")  # fmt: skip
        await pilot.pause(0.1)
        marks = legend_marks(screen_text(app), ["#0 val", "#0 train", "#1 val", "#1 train"])
        assert len(set(marks)) == 4, marks
        await pilot.press("2")  # History: each value and the best so far
        await wait_for(pilot, lambda: app.screen.query(HistoryPlot) and app.screen.query_one(HistoryPlot).numbers,
                       what="the history")  # fmt: skip
        await pilot.pause(0.1)
        value, best = legend_marks(screen_text(app), ["value", "best so far"])
        assert value != best


async def test_escape_returns_to_the_studies_list(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen)
        assert not [s for s in app.screen_stack if isinstance(s, StudyScreen)]  # popped, not covered
        await wait_for(pilot, lambda: "digits_mlp" in screen_text(app), what="the studies list")


@pytest.mark.parametrize("size", [(60, 14), (70, 11)])  # narrower: a horizontal scrollbar takes a row
async def test_the_cursor_row_stays_visible_after_a_resize(small_store, make_app, size):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, 12)
        t = table(app)
        await pilot.press(*["j"] * (t.visible_rows - 1))  # the last row on screen
        assert int(t.scroll_y) == 0 and t.current == t.visible_rows - 1
        await pilot.resize_terminal(*size)
        await pilot.pause(0.2)
        top = int(t.scroll_y)
        assert top <= t.cursor < top + t.visible_rows, (top, t.cursor, t.visible_rows)
        row = next(line for line in screen_text(app).splitlines() if line.startswith("›"))
        assert row.split()[1] == str(t.current)
