"""A study survives anything but a deleted store: kill -9, signals, dead and hung workers, a second
coordinator, a dead host. Real processes and real signals; tiny trials."""

from __future__ import annotations

import os
import random
import signal
import time

import optuna
import pytest

from engine.store import Store
from tests.helpers_run import (
    ROOT,
    StoreView,
    alive,
    children,
    finish,
    start,
    tunetui,
    wait_for,
    workers_of,
    write_spec,
)

DIGITS = ROOT / "studies" / "digits_mlp.toml"
NOT_COUNTED = ("orphaned", "interrupted")

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def running(view: StoreView, study: str) -> list[int]:
    return [n for n, t in view.trials(study).items() if t["state"] == "RUNNING"]


def beating(view: StoreView, study: str, pid: int) -> bool:
    return any(h["pid"] == pid for h in view.heartbeat(study))


def test_kill_minus_9_at_random_points_loses_no_trial(tmp_path):
    """Six kill -9 of the coordinator during a digits study: after each restart no RUNNING trial is left,
    no COMPLETE trial or its telemetry is lost, the dead coordinator's workers are gone within 10 s, and
    the last run reaches the first run's budget."""
    url, study, budget = f"sqlite:///{tmp_path}/store.db", "digits_mlp", 14
    view = StoreView(url)
    args = ("--set", "train.epochs=2", "--set", f"budget.n_trials={budget}", "--workers", "2")
    rng = random.Random(7)
    complete: dict[int, dict] = {}
    left_running: list[int] = []
    mid_trial_kills = 0
    for cycle in range(6):
        coordinator = start(DIGITS, url, *args, log=tmp_path / "run.log")
        wait_for(lambda p=coordinator.pid: beating(view, study, p), 60, "the coordinator's heartbeat")
        trials = view.trials(study)
        for number in left_running:  # the dead coordinator's trials, failed by its successor
            assert trials[number]["state"] == "FAIL" and trials[number]["reason"] == "orphaned", trials[
                number
            ]
        if cycle % 2 == 0:  # kill while trials run
            wait_for(lambda: running(view, study), 60, "a running trial")
            time.sleep(rng.uniform(0.0, 1.0))
        else:  # kill anywhere: while workers start, between trials, while writing
            time.sleep(rng.uniform(0.0, 4.0))
        workers = children(coordinator.pid)
        os.kill(coordinator.pid, signal.SIGKILL)
        coordinator.wait()
        trials = view.trials(study)
        left_running = [n for n, t in trials.items() if t["state"] == "RUNNING"]
        mid_trial_kills += bool(left_running)
        complete.update({n: t for n, t in trials.items() if t["state"] == "COMPLETE"})
        wait_for(lambda w=workers: not any(alive(pid) for pid in w), 10, f"workers {workers} to exit")
    assert mid_trial_kills >= 3

    last = start(DIGITS, url, *args, log=tmp_path / "run.log")
    assert finish(last, 180) == 0, (tmp_path / "run.log").read_text()[-3000:]
    trials = view.trials(study)
    assert not [n for n, t in trials.items() if t["state"] == "RUNNING"]
    for number in left_running:
        assert trials[number]["reason"] == "orphaned"
    for number, before in complete.items():
        assert trials[number]["state"] == "COMPLETE" and trials[number]["value"] == before["value"]
        assert trials[number]["epochs"] == 2  # its telemetry too
    counted = [t for t in trials.values() if t["state"] != "RUNNING" and t["reason"] not in NOT_COUNTED]
    assert len(counted) == budget
    assert any(t["reason"] == "orphaned" for t in trials.values())


@pytest.mark.parametrize(
    ("signum", "code", "to_group"),
    [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True), (signal.SIGHUP, 129, False)],
    ids=["SIGTERM", "SIGINT-to-group", "SIGHUP"],
)
def test_a_signal_fails_running_trials_interrupted_and_exits_128_plus_n(tmp_path, signum, code, to_group):
    spec = write_spec(tmp_path, "sig", "slow", n_trials=20, epochs=50, task_params={"epoch_s": 0.1})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "2", log=tmp_path / "run.log")
    wait_for(lambda: len([t for t in view.trials("sig").values() if t["epochs"] >= 1 and t["state"] == "RUNNING"]) == 2,
             60, "two trials with an epoch")  # fmt: skip
    workers = workers_of(coordinator.pid)
    assert len(workers) == 2
    if to_group:  # Ctrl-C in a terminal: the whole process group gets it
        os.killpg(coordinator.pid, signum)
    else:
        os.kill(coordinator.pid, signum)
    assert finish(coordinator, 30) == code
    trials = view.trials("sig")
    assert not [t for t in trials.values() if t["state"] == "RUNNING"]
    interrupted = [t for t in trials.values() if t["reason"] == "interrupted"]
    assert len(interrupted) == 2 and all(t["state"] == "FAIL" for t in interrupted)
    assert view.heartbeat("sig")[0]["state"] == "interrupted"
    assert not any(alive(pid) for pid in workers)


def test_graceful_signal_lets_running_trials_finish(tmp_path):
    spec = write_spec(tmp_path, "grace", "slow", n_trials=20, epochs=10, task_params={"epoch_s": 0.1})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "2", "--graceful", log=tmp_path / "run.log")
    wait_for(lambda: len(running(view, "grace")) == 2, 60, "two running trials")
    was_running = running(view, "grace")
    os.kill(coordinator.pid, signal.SIGTERM)
    assert finish(coordinator, 30) == 143
    trials = view.trials("grace")
    assert all(trials[n]["state"] == "COMPLETE" for n in was_running)
    assert not [t for t in trials.values() if t["state"] == "RUNNING" or t["reason"] == "interrupted"]
    assert len(trials) < 20


def test_a_worker_killed_mid_trial_fails_that_trial_and_its_slot_gets_a_new_worker(tmp_path):
    marks = tmp_path / "marks"
    spec = write_spec(tmp_path, "wk", "slow", n_trials=3, epochs=8,
                      task_params={"epoch_s": 0.1, "mark_dir": str(marks)})  # fmt: skip
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    mark = wait_for(lambda: sorted(marks.glob("trial-*")) if marks.exists() else [], 60, "a trial's mark")[0]
    victim = int(mark.name.split("-")[1])
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    assert finish(coordinator, 90) == 0, (tmp_path / "run.log").read_text()[-3000:]
    trials = view.trials("wk")
    assert trials[0]["state"] == "FAIL" and trials[0]["reason"] == "worker_died"
    others = [trials[n] for n in (1, 2)]
    assert all(t["state"] == "COMPLETE" and t["worker_pid"] not in (None, victim) for t in others)
    assert len(trials) == 3  # a dead worker's trial counts toward the budget


def test_a_hanging_trial_is_killed_at_its_time_limit(tmp_path):
    spec = write_spec(tmp_path, "hang", "hang", n_trials=2, task_params={"mark_dir": str(tmp_path / "m")})
    text = spec.read_text().replace("n_trials = 2", "n_trials = 2\ntrial_timeout_s = 2")
    spec.write_text(text)
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    began = time.monotonic()
    coordinator = start(spec, url, "--workers", "2", log=tmp_path / "run.log")
    # no trial succeeded: the run exits 1 and says so (timeouts depend on the sampled values, so two
    # of them in a row do not stop the run early)
    assert finish(coordinator, 90) == 1, (tmp_path / "run.log").read_text()[-3000:]
    assert "every trial of this run failed (timeout 2)" in (tmp_path / "run.log").read_text()
    assert time.monotonic() - began < 60
    trials = view.trials("hang")
    assert [(t["state"], t["reason"]) for t in trials.values()] == [("FAIL", "timeout")] * 2
    hung = [int(p.name.split("-")[1]) for p in (tmp_path / "m").glob("hang-*")]
    assert len(hung) == 2 and not any(alive(pid) for pid in hung)


def test_a_second_coordinator_on_the_same_host_refuses(tmp_path):
    spec = write_spec(tmp_path, "two", "slow", n_trials=50, epochs=20, task_params={"epoch_s": 0.05})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    first = start(spec, url, "--workers", "1", log=tmp_path / "first.log")
    wait_for(lambda: beating(view, "two", first.pid), 60, "the first coordinator")
    second = start(spec, url, "--workers", "1", log=tmp_path / "second.log")
    assert finish(second, 60) == 1
    said = (tmp_path / "second.log").read_text()
    assert "already has a running coordinator on host" in said and str(first.pid) in said
    assert "Traceback" not in said
    assert first.poll() is None and [h["pid"] for h in view.heartbeat("two")] == [first.pid]
    assert tunetui("stop", "two", storage=url).returncode == 0
    assert finish(first, 60) == 0


def test_a_dead_hosts_running_trial_is_failed_and_retried_by_another_host(tmp_path, monkeypatch):
    """Another host's coordinator died (stale heartbeat) with a RUNNING trial: a coordinator of this
    host fails it `orphaned` and, with retry_failed, runs the same params again."""
    spec = write_spec(tmp_path, "ghost", "tiny", n_trials=1)
    spec.write_text(spec.read_text().replace("seed = 1", "seed = 1\nretry_failed = true"))
    url = f"sqlite:///{tmp_path}/store.db"
    store = Store(url)
    study = optuna.create_study(study_name="ghost", storage=store.optuna_storage(), direction="maximize")
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    trial.set_user_attr("host", "ghost-host")
    store.beat(study._study_id, "ghost-host", pid=1, state="running", started=time.time() - 600)
    with store.engine.begin() as conn:  # its last heartbeat was ten minutes ago
        conn.exec_driver_sql("UPDATE tt_heartbeat SET last_seen = ?", (time.time() - 600,))
    store.close()
    coordinator = start(spec, url, "--workers", "1", log=tmp_path / "run.log", env={"TUNETUI_HOST": "here"})
    assert finish(coordinator, 90) == 0, (tmp_path / "run.log").read_text()[-3000:]
    trials = optuna.load_study(study_name="ghost", storage=url).trials
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["fail_reason"] == "orphaned"
    assert trials[1].state.name == "COMPLETE" and trials[1].user_attrs["retry_of"] == 0
    assert trials[1].params["lr"] == lr and trials[1].user_attrs["host"] == "here"


def test_a_worker_whose_coordinator_is_already_gone_exits_at_once(tmp_path):
    """A worker whose coordinator died before it started exits at once (the ppid check)."""
    import multiprocessing as mp

    from engine.trainer.worker_main import worker_main

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=worker_main, args=(child, 0, "cpu", 1, 1))  # "parent" pid 1: not ours
    process.start()
    process.join(30)
    assert process.exitcode == 3
    parent.close()


def test_a_trial_failed_by_another_coordinator_is_dropped_uncounted(tmp_path):
    """Another host took our heartbeat for dead and failed our running trial: we drop it and go on."""
    spec = write_spec(tmp_path, "taken", "slow", n_trials=2, epochs=20, task_params={"epoch_s": 0.1})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    wait_for(lambda: running(view, "taken") and view.trials("taken")[0]["epochs"] >= 1, 60, "trial 0 running")
    storage = optuna.storages.RDBStorage(url)
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name("taken"), 0)
    storage.set_trial_user_attr(trial_id, "fail_reason", "orphaned")
    storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    assert finish(coordinator, 90) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert "trial 0: finished by another coordinator meanwhile" in (tmp_path / "run.log").read_text()
    trials = view.trials("taken")
    assert (trials[0]["state"], trials[0]["reason"]) == ("FAIL", "orphaned")
    assert [trials[n]["state"] for n in (1, 2)] == ["COMPLETE", "COMPLETE"] and len(trials) == 3


def test_workers_that_cannot_start_stop_the_run_with_a_clear_message(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "torch.py").write_text("import os\nos._exit(7)\n")  # a torch that dies on import
    spec = write_spec(tmp_path, "nostart", "tiny", n_trials=2)
    url = f"sqlite:///{tmp_path}/store.db"
    coordinator = start(spec, url, log=tmp_path / "run.log", env={"PYTHONPATH": f"{broken}:{ROOT}"})
    assert finish(coordinator, 120) == 1
    said = (tmp_path / "run.log").read_text()
    assert "worker 0 died 3 times while starting (exit code 7)" in said and "Traceback" not in said
    assert StoreView(url).heartbeat("nostart")[0]["state"] == "crashed"
