"""tui/study_model.py without a Pilot: deltas fold in, `Dirty` says what the screen must repaint, and the
view, the selection and the title follow from the model alone."""

from __future__ import annotations

from engine.store import TrialRow
from tui.data import StudyDelta, TrialDetail
from tui.study_model import MAX_OVERLAY, StudyModel


def trial(number: int, value: float | None = None, state: str = "COMPLETE", **params) -> TrialRow:
    return TrialRow(number, number + 1, state, value, params, 100.0, None, None, 1, 0)


def delta(*trials: TrialRow, direction: str = "MAXIMIZE", status: str = "running", **kw) -> StudyDelta:
    return StudyDelta(name="s", study_id=1, direction=direction, directions=[direction], status=status,
                      trials=list(trials), **kw)  # fmt: skip


def test_new_trials_mark_the_table_title_and_history_dirty_and_epochs_only_the_curves():
    model = StudyModel("s")
    first = model.apply(delta(trial(0, 0.5), trial(1, None, "RUNNING"), first=True))
    assert first.direction and first.trials and first.title and first.history
    assert set(model.rows) == {0, 1} and model.best == 0 and model.status == "running"
    epochs = model.apply(delta(epochs={1: [{"epoch": 1, "val_acc": 0.3}]}))
    assert epochs.curves and not (epochs.trials or epochs.title or epochs.history or epochs.direction)
    more = model.apply(delta(epochs={1: [{"epoch": 2, "val_acc": 0.4}]}))
    assert more.curves and [e["epoch"] for e in model.epochs[1]] == [1, 2]
    idle = model.apply(delta())
    assert idle == type(idle)()  # nothing changed: nothing to repaint


def test_a_status_change_alone_redraws_the_title():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5)))
    assert not model.apply(delta()).title
    paused = model.apply(delta(status="paused"))
    assert paused.title and not paused.trials and "paused" in model.title()


def test_the_best_trial_follows_the_direction_and_only_a_new_best_redraws_the_curves():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), direction="MINIMIZE"))
    assert model.best == 0
    worse = model.apply(delta(trial(1, 0.9), direction="MINIMIZE"))
    assert model.best == 0 and worse.trials and not worse.curves
    better = model.apply(delta(trial(2, 0.1), trial(3, 0.1), trial(4, 0.01, "PRUNED"), direction="MINIMIZE"))
    assert model.best == 2 and better.curves  # the earliest of equals; a pruned trial is never the best


def test_follow_moves_to_the_newest_trial():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5)))
    model.follow = True
    assert model.apply(delta(trial(3, None, "RUNNING"), trial(2, 0.2))).follow_to == 3
    model.follow = False
    assert model.apply(delta(trial(4, None, "RUNNING"))).follow_to is None


def test_steps_layers_and_logs_extend_for_the_same_trial_and_restart_for_another():
    model = StudyModel("s")
    model.apply(delta(steps={1: [{"step": 1}]}, layers={1: [{"layer": "fc"}]},
                      logs={1: [{"ts": 0, "line": "a"}]}))  # fmt: skip
    more = model.apply(delta(steps={1: [{"step": 2}]}, logs={1: [{"ts": 0, "line": "b\x1b[31m"}]}))
    assert [r["step"] for r in model.steps] == [1, 2] and more.curves and not more.layers
    assert more.log and more.new_log_lines == [model.log_lines[1]] and len(model.log_lines) == 2
    assert "\x1b" not in model.log_lines[1]  # outside text: no control byte reaches the terminal
    other = model.apply(delta(steps={2: [{"step": 7}]}, layers={2: [{"layer": "out"}]},
                              logs={2: [{"ts": 0, "line": "c"}]}))  # fmt: skip
    assert model.steps_for == 2 and [r["step"] for r in model.steps] == [7]
    assert other.layers and model.layer_rows == [{"layer": "out"}]
    assert other.log and other.new_log_lines is None and model.logs_for == 2 and len(model.log_lines) == 1


def test_the_detail_is_dirty_when_the_selected_trial_changes_or_its_detail_arrives():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), trial(1, None, "RUNNING")))
    model.selected = 1
    assert not model.apply(delta(trial(0, 0.5))).detail
    assert model.apply(delta(trial(1, 0.7))).detail
    arrived = model.apply(delta(details=[TrialDetail(1, {"clip_norm": 2}, [])]))
    assert arrived.detail and model.clip(1) == 2.0


def test_views_choose_the_curves_and_what_the_watcher_reads():
    model = StudyModel("s")
    model.apply(delta(*(trial(n, n / 100) for n in range(MAX_OVERLAY + 5))))
    model.selected = 3
    assert model.curve_numbers() == [3] and model.want().steps == 3 and model.want().detail == 3
    model.next_view()
    assert model.view == "best" and model.curve_numbers() == [MAX_OVERLAY + 4]
    model.next_view()
    assert model.view == "all" and model.curve_numbers() == list(range(5, MAX_OVERLAY + 5))
    assert model.want().steps is None and model.steps_shown() is None
    model.next_view()
    assert model.view == "selected"


def test_compare_pins_then_compares_then_turns_off():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), trial(1, 0.6)))
    assert model.compare() == ""  # nothing selected
    model.selected = 0
    assert model.compare() == "pinned" and model.pinned == 0 and model.view == "selected"
    model.selected = 1
    assert model.compare() == "compare" and model.curve_numbers() == [0, 1] and "compare #0" in model.title()
    assert model.compare() == "off" and model.pinned is None and model.view == "selected"
    model.compare()
    model.selected = 0
    model.compare()
    model.next_view()  # v in the compare view: back to the selected trial, the pin dropped
    assert model.pinned is None and model.view == "selected"


def test_the_title_escapes_the_name_and_shows_a_store_error_until_a_poll_succeeds():
    model = StudyModel("a[/b]c")
    assert "waiting for the study to appear" in model.title() and "a\\[/b]c" in model.title()
    model.apply(delta(trial(0, 0.98765), trial(1, None, "RUNNING")))
    assert "best 0.9877 #0" in model.title() and "trials 2: 1c 1r" in model.title()
    model.fail("disk [red]gone")
    assert "store error" in model.title() and "disk \\[red]gone" in model.title()
    model.apply(delta())
    assert "store error" not in model.title()


def test_only_a_running_trial_is_killable():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), trial(1, None, "RUNNING")))
    model.selected = 0
    assert model.killable() is None
    model.selected = 1
    assert model.killable().number == 1


def test_clip_comes_from_the_params_before_the_attrs():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5, clip_norm=1.5), trial(1, 0.5, clip=True),
                      details=[TrialDetail(1, {"clip_norm": 3}, [])]))  # fmt: skip
    assert model.clip(0) == 1.5 and model.clip(1) == 3.0 and model.clip(None) is None


def test_the_title_counts_killed_trials_apart_from_other_failures():
    model = StudyModel("s")
    killed = TrialRow(2, 3, "FAIL", None, {}, 100.0, 101.0, "killed", 1, 0)
    failed = TrialRow(3, 4, "FAIL", None, {}, 100.0, 101.0, "nan_loss", 1, 0)
    model.apply(delta(trial(0, 0.5), trial(1, None, "PRUNED"), killed, failed))
    assert "trials 4: 1c 1p 1f 1k" in model.title()


def test_a_move_by_hand_turns_follow_off_and_the_title_says_so():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), trial(1, None, "RUNNING")))
    assert not model.moved_by_hand()  # follow was off: nothing changes
    model.follow = True
    assert "+follow" in model.title()
    assert model.moved_by_hand()  # it was on: the title changes
    assert not model.follow and "+follow" not in model.title()
    assert model.apply(delta(trial(2, None, "RUNNING"))).follow_to is None


def beat(state: str) -> list[dict]:
    return [{"host": "a", "state": state, "alive": True}]


def test_an_answered_control_shows_its_state_at_once_until_the_store_agrees():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), coordinators=beat("running")))
    assert model.answered("pause")  # the coordinator accepted: the title changes now
    assert model.shown_status() == "paused" and "· paused ·" in model.title()
    assert model.apply(delta(coordinators=beat("running"))).title is False  # the old heartbeat: still paused
    assert model.shown_status() == "paused"
    model.apply(delta(status="paused", coordinators=beat("paused")))  # the heartbeat agrees
    assert model.answered("resume") and model.shown_status() == "running"
    model.apply(delta(status="running", coordinators=beat("running")))
    assert not model.answered("kill")  # a kill changes no study state
    assert model.answered("stop") and "· stopping ·" in model.title()
    # a stopping coordinator's study reads "running" in the store; its heartbeat says stopping
    model.apply(delta(status="running", coordinators=beat("stopping")))
    assert model.shown_status() == "stopping"
    ended = model.apply(delta(status="stopped", coordinators=[{"host": "a", "state": "stopped", "alive": False}]))
    assert ended.title and model.shown_status() == "stopped"


def test_the_objectives_metrics_come_from_the_recorded_study_and_say_the_table_must_change():
    model = StudyModel("s")
    model.apply(delta(trial(0, 0.5), user_attrs={}))  # Optuna alone recorded none
    assert model.objective_metrics == ()
    run = model.apply(delta(user_attrs={"metric": "val_rmse"}))  # a run recorded its metric afterwards
    assert run.direction and model.objective_metrics == ("val_rmse",)
    assert not model.apply(delta(user_attrs={"metric": "val_rmse", "note": "x"})).direction  # the same metrics
    several = {"tt_identity": {"metrics": ["val_acc", "latency_ms"]}, "metric": "val_acc"}
    assert model.apply(delta(user_attrs=several)).direction and model.objective_metrics == ("val_acc", "latency_ms")
    model.apply(delta(user_attrs={"tt_identity": {"metrics": "val_acc"}, "metric": ["[red]"]}))  # data, not trusted
    assert model.objective_metrics == ()
