"""The store on its own: liveness from heartbeats, control rows, migrations, read-only opening."""

from __future__ import annotations

import sqlite3
import time

import pytest

from engine.store import HEARTBEAT_FRESH_S, Store, StoreError, resolve_url, study_status, telemetry


def test_only_a_working_coordinator_with_a_fresh_beat_is_alive(store_url):
    store = Store(store_url)
    for host, state in (
        ("a", "running"),
        ("b", "paused"),
        ("c", "finished"),
        ("d", "stopped"),
        ("e", "crashed"),
    ):
        store.beat(1, host, pid=1, state=state, started=time.time())
    store.beat(1, "f", pid=1, state="running", started=0.0)
    store.engine.dispose()
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            "UPDATE tt_heartbeat SET last_seen = ? WHERE host = 'f'", (time.time() - HEARTBEAT_FRESH_S - 1,)
        )
    alive = {b["host"]: b["alive"] for b in Store(store_url).heartbeats(1)}
    assert alive == {"a": True, "b": True, "c": False, "d": False, "e": False, "f": False}


@pytest.mark.parametrize(
    "states,expected",
    [
        ([("running", True)], "running"),
        ([("paused", True)], "paused"),
        ([("paused", True), ("running", True)], "running"),
        ([("finished", False)], "finished"),
        ([("stopped", False)], "stopped"),
        ([("running", False)], "crashed"),
        ([], "idle"),
    ],
)
def test_study_status_from_heartbeats(states, expected):
    beats = [{"state": s, "alive": a} for s, a in states]
    assert study_status({"COMPLETE": 1} if states else {}, beats) == expected


def test_control_rows_round_trip(store_url):
    store = Store(store_url)
    rid = store.request(7, "kill", "3")
    assert [r["action"] for r in store.control_rows(7)] == ["kill"]
    assert store.control_rows(7, after_id=rid) == [] and store.control_rows(8) == []
    store.answer_request(rid, "host-a", "killed trial 3")
    store.answer_request(rid, "host-b", "not running here")  # a later host appends, the first answer stays
    status = store.request_status(rid)
    assert status["done"] is not None and status["result"] == "killed trial 3 | host-b: not running here"
    with pytest.raises(ValueError):
        store.request(7, "explode")


def test_an_older_store_gains_new_columns_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE tt_layer (study_id INTEGER, trial_number INTEGER, epoch INTEGER, layer VARCHAR(200), "
            "grad_norm FLOAT, weight_norm FLOAT, hist_json TEXT, PRIMARY KEY (study_id, trial_number, epoch, layer))"
        )
        conn.execute("INSERT INTO tt_layer VALUES (1, 0, 1, 'fc', 1.0, 2.0, NULL)")
    store = Store(f"sqlite:///{path}")
    rows = store.layers(1, 0)
    assert rows[0]["layer"] == "fc" and rows[0]["grad_norm"] == 1.0 and rows[0]["position"] is None


def test_every_reported_metric_is_kept_per_epoch(store_url):
    store = Store(store_url)
    metrics = {"train_loss": 0.5, "val_rmse": 0.61, "val_r2": float("nan"), "epoch": 99, "extra_json": 1.0,
               "x" * 101: 1.0, "latency ms": 3}  # fmt: skip
    store.write_epoch(1, 0, 1, metrics, [], [])
    store.write_epoch(1, 0, 2, {"train_loss": 0.4}, [], [])
    first, second = store.epochs(1, 0)
    assert first["train_loss"] == 0.5 and first["val_rmse"] == 0.61 and first["latency ms"] == 3.0
    assert first["val_r2"] != first["val_r2"]  # NaN survives the round trip
    assert first["epoch"] == 1 and "extra_json" not in first and "x" * 101 not in first  # keys stay the store's
    assert second["epoch"] == 2 and "val_rmse" not in second


def test_an_older_store_gains_the_extra_metrics_column(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tt_epoch (study_id INTEGER, trial_number INTEGER, epoch INTEGER, val_loss FLOAT, "
                     "PRIMARY KEY (study_id, trial_number, epoch))")  # fmt: skip
        conn.execute("INSERT INTO tt_epoch VALUES (1, 0, 1, 0.25)")
    viewer = Store(f"sqlite:///{path}", read_only=True)
    assert viewer.epochs(1, 0) == [{"study_id": 1, "trial_number": 0, "epoch": 1, "val_loss": 0.25}]
    with viewer.reading() as conn:  # the trial table's read: each trial's last epoch and its metrics
        assert telemetry.last_epoch_metrics(conn, 1) == {0: (1, {"val_loss": 0.25})}
    store = Store(f"sqlite:///{path}")  # the coordinator's opening adds the column
    store.write_epoch(1, 0, 2, {"val_loss": 0.2, "val_f1": 0.75}, [], [])
    store.write_epoch(1, 3, 1, {"train_loss": 0.5}, [], [])
    rows = store.epochs(1, 0)
    assert rows[0]["val_loss"] == 0.25 and "val_f1" not in rows[0] and rows[1]["val_f1"] == 0.75
    with store.reading() as conn:
        assert telemetry.last_epoch_metrics(conn, 1) == {0: (2, {"val_loss": 0.2, "val_f1": 0.75}),
                                                         3: (1, {"train_loss": 0.5})}  # fmt: skip
        assert telemetry.last_epoch_metrics(conn, 1, [3]) == {3: (1, {"train_loss": 0.5})}


def test_a_hostile_extra_metrics_cell_is_read_as_data(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    store.write_epoch(1, 0, 1, {"val_loss": 0.2}, [], [])
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("""UPDATE tt_epoch SET extra_json = '{"epoch": "x", "a": "[red]", "b": true, "c": 2}'""")
    row = store.epochs(1, 0)[0]
    assert row["epoch"] == 1 and row["c"] == 2 and row["val_loss"] == 0.2 and {"a", "b"}.isdisjoint(row)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        conn.execute("""UPDATE tt_epoch SET extra_json = '{"epoch": 7, "lr": 1, "val_loss": 9, "c": 2}'""")
    with store.reading() as conn:  # the trial table's read takes no column's name from the cell either
        assert telemetry.last_epoch_metrics(conn, 1) == {0: (1, {"val_loss": 0.2, "c": 2})}


def test_read_only_store_never_creates_a_file(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        Store(f"sqlite:///{tmp_path}/absent.db", read_only=True)
    assert not (tmp_path / "absent.db").exists()


def test_relative_sqlite_paths_become_absolute(tmp_path):
    url = resolve_url("sqlite:///rel/x.db", base=tmp_path)
    assert url == f"sqlite:///{tmp_path}/rel/x.db"
    assert resolve_url("plain.db", base=tmp_path) == f"sqlite:///{tmp_path}/plain.db"


def test_infinite_objective_values_read_back_as_infinite(store_url):
    """Optuna stores +-inf as NULL plus a value_type: CLI and TUI readers (one row builder) decode it."""
    import math

    import optuna

    store = Store(store_url)
    study = optuna.create_study(study_name="inf", storage=store.optuna_storage())
    for value in (math.inf, -math.inf, 1.5):
        study.tell(study.ask(), value)
    sid = store.study_id("inf")
    assert [t.value for t in store.trials(sid)] == [math.inf, -math.inf, 1.5]


@pytest.mark.parametrize("version", ["4.4.0", "6.0.0", "3.6.1"])
def test_an_optuna_the_store_was_not_written_for_is_refused_with_a_clear_message(version, tmp_path, monkeypatch):
    from engine.store import optuna_tables

    with pytest.raises(StoreError, match=rf"supports optuna >= 4\.5, < 6.*has optuna {version}.*pip install"):
        optuna_tables.check_optuna_version(version)
    monkeypatch.setattr(optuna_tables, "_installed_optuna", lambda: version)
    with pytest.raises(StoreError, match="supports optuna"):
        Store(f"sqlite:///{tmp_path}/s.db")


@pytest.mark.parametrize("version", ["4.5.0", "4.6.0.dev0", "5.0.0"])
def test_the_optuna_releases_the_store_was_written_for_are_accepted(version):
    from engine.store import optuna_tables

    optuna_tables.check_optuna_version(version)
