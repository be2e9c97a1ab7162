"""The TUI's read side: incremental polling, study status, deletion, downsampling."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa

from engine.store import Store
from tests.tui.builders import DISTRIBUTIONS, build_study
from tui.data import StudyWatcher, Want, best_so_far, delete_study, downsample, list_studies, open_store


def test_watcher_first_poll_reads_the_whole_study_then_only_news(small_store):
    watcher = StudyWatcher(small_store, "digits_mlp")
    first = watcher.poll(Want())
    assert first.first and len(first.trials) == 12
    assert first.status == "finished"
    assert first.user_attrs["spec_path"].endswith("digits_mlp.toml")
    by_number = {r.number: r for r in first.trials}
    assert by_number[9].state == "FAIL" and by_number[9].reason == "nan_loss"
    assert by_number[1].flags == 1 and by_number[0].epochs == 6
    last = Store(small_store, read_only=True).epochs(first.study_id, 0)[-1]  # the metrics of its last epoch
    assert by_number[0].metrics == {name: last[name] for name in ("train_loss", "train_acc", "val_loss", "val_acc")}
    assert set(by_number[0].params) == {"lr", "layers", "width", "dropout", "optimizer"}
    assert by_number[0].params["width"] in (64, 128, 256)  # categorical index turned back into the choice
    again = watcher.poll(Want())
    assert again.trials == [] and again.empty


def test_watcher_sees_new_trials_state_changes_and_new_epochs(running_store):
    watcher = StudyWatcher(running_store, "digits_mlp")
    first = watcher.poll(Want(curves=(4,), steps=4, detail=4))
    assert first.status == "running"
    assert [r.number for r in first.trials if r.state == "RUNNING"] == [4, 5]
    assert len(first.epochs[4]) == 1 and len(first.steps[4]) == 10 and first.layers[4]

    store = Store(running_store)
    sid = store.study_id("digits_mlp")
    study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
    store.write_epoch(sid, 4, 2, {"val_loss": 0.5, "val_acc": 0.8, "val_f1": 0.75},
                      [{"step": 99, "epoch": 2, "loss": 0.4}], [{"layer": "net.0", "grad_norm": 0.1}])  # fmt: skip
    trial_4 = next(t for t in study.get_trials() if t.number == 4)
    study.tell(trial_4.number, 0.99)
    store.write_findings(sid, 3, [{"kind": "lr_too_high", "remedy": "lower lr"}])
    study.add_trial(
        optuna.trial.create_trial(value=0.5, params={"lr": 0.01}, distributions={"lr": DISTRIBUTIONS["lr"]})
    )
    store.close()

    news = watcher.poll(Want(curves=(4,), steps=4, detail=4))
    changed = {r.number: r for r in news.trials}
    assert set(changed) == {3, 4, 6}  # 4 finished, 3 got a finding, 6 is new; 5 (still running) unchanged
    assert changed[4].state == "COMPLETE" and changed[4].value == 0.99 and changed[4].epochs == 2
    assert changed[4].metrics == {"val_loss": 0.5, "val_acc": 0.8, "val_f1": 0.75}  # the last epoch's only
    assert changed[3].flags == 1
    assert [e["epoch"] for e in news.epochs[4]] == [2]
    assert [s["step"] for s in news.steps[4]] == [99]
    assert [row["epoch"] for row in news.layers[4]] == [2]
    # a running trial's new epoch: its row again, with that epoch's metrics, and nothing else
    store = Store(running_store)
    store.write_epoch(sid, 5, 2, {"train_loss": 0.7, "val_rmse": 0.25}, [], [])
    store.close()
    [row] = watcher.poll(Want()).trials
    assert row.number == 5 and row.epochs == 2 and row.metrics == {"train_loss": 0.7, "val_rmse": 0.25}
    assert watcher.poll(Want()).trials == []


def test_watcher_waits_for_a_store_and_a_study_that_do_not_exist_yet(tmp_path):
    url = f"sqlite:///{tmp_path}/later.db"
    watcher = StudyWatcher(url, "digits_mlp")
    assert watcher.poll(Want()).study_id is None  # no file yet
    build_study(url, n_trials=2)
    delta = watcher.poll(Want())
    assert delta.study_id is not None and len(delta.trials) == 2


def test_list_studies_reports_state_counts_best_and_device(small_store, running_store):
    [small] = list_studies(open_store(small_store))
    assert small["status"] == "finished" and small["device"] == "cpu"
    assert small["counts"] == {"COMPLETE": 10, "PRUNED": 1, "FAIL": 1}
    assert small["started_text"] == "2025-01-06 09:00"
    [running] = list_studies(open_store(running_store))
    assert running["status"] == "running"


def test_a_freshly_finished_coordinator_is_not_running(small_store):
    store = Store(small_store)
    store.beat(store.study_id("digits_mlp"), "host-a", state="finished")  # a fresh last_seen
    store.close()
    [study] = list_studies(open_store(small_store))
    assert study["status"] == "finished"


def test_delete_study_removes_optuna_and_telemetry_rows(small_store):
    delete_study(small_store, "digits_mlp")
    store = Store(small_store, read_only=True)
    assert store.studies() == []
    with store.engine.connect() as conn:
        for table in ("tt_epoch", "tt_step", "tt_layer", "tt_diagnosis", "tt_log", "tt_heartbeat"):
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one() == 0


def test_delete_refuses_a_running_study(running_store):
    from engine.store import StoreError

    with pytest.raises(StoreError, match="running"):
        delete_study(running_store, "digits_mlp")


def test_downsample_keeps_about_a_thousand_points_and_the_spikes():
    xs = list(range(100_000))
    ys = [1.0] * 100_000
    ys[54_321] = 50.0
    dx, dy = downsample(xs, ys, 1000)
    assert len(dx) <= 1000 and 50.0 in dy and dx == sorted(dx)
    assert downsample([1, 2], [3, 4]) == ([1, 2], [3, 4])


def test_best_so_far_follows_the_direction():
    assert best_so_far([0.2, 0.5, 0.3, 0.7], maximize=True) == [0.2, 0.5, 0.5, 0.7]
    assert best_so_far([0.2, 0.5, 0.1], maximize=False) == [0.2, 0.2, 0.1]


def test_a_big_study_comes_in_two_reads_then_polls_are_cheap(big_store):
    watcher = StudyWatcher(big_store, "big")
    first = watcher.poll(Want())
    assert len(first.trials) == 10_000 and first.partial  # rows first: the table paints at once
    assert all(r.params == {} and r.metrics == {} and r.epochs == 2 for r in first.trials)
    second = watcher.poll(Want())
    assert len(second.trials) == 10_000 and not second.partial
    assert all(set(r.params) == {"lr", "layers", "width", "dropout", "optimizer"} for r in second.trials)
    # the metrics of each trial's last epoch come with the params
    assert all(set(r.metrics) == {"train_loss", "train_acc", "val_loss", "val_acc", "val_f1", "latency_ms"}
               for r in second.trials)  # fmt: skip
    statements: list[str] = []
    sa.event.listen(
        watcher.store.engine, "before_cursor_execute", lambda conn, cur, sql, *rest: statements.append(sql)
    )
    for _ in range(3):
        assert watcher.poll(Want()).trials == []
    # an idle poll asks only for what changed: no params, attributes or telemetry of old trials again
    assert statements and not [s for s in statements if "trial_params" in s or "trial_user_attributes" in s]


def test_layers_are_shown_from_input_to_output_when_the_store_knows_their_place():
    from tui.data import layer_order

    rows = [{"layer": "out", "position": 2}, {"layer": "fc1", "position": 0}, {"layer": "fc2", "position": 1}]
    assert layer_order(rows) == ["fc1", "fc2", "out"]
    assert layer_order([{"layer": "b"}, {"layer": "a"}]) == ["a", "b"]  # an older store: by name
