"""Parallel trials: device slots, workers reused across trials, many fast trials on SQLite with readers."""

from __future__ import annotations

import os
import threading
import time

import pytest

from engine.run.pool import plan as slots_plan
from engine.spec import parse_spec
from engine.store import Store, StoreError
from tests.helpers_run import StoreView, finish, start, write_spec

CORES = len(os.sched_getaffinity(0))
PARALLEL = min(4, CORES)  # `run` refuses more CPU workers than cores


def plan(tmp_path, devices: str = "", **options) -> list[tuple[str, str, int]]:
    spec = parse_spec(f'[study]\nname = "p"\n[devices]\n{devices}\n')
    return slots_plan(spec, **options)


def test_cpu_workers_split_the_cores(tmp_path):
    assert plan(tmp_path, 'device = "cpu"') == [("cpu", "", CORES)]
    four = plan(tmp_path, 'device = "cpu"', workers=4)
    assert len(four) == 4 and all(threads == max(1, CORES // 4) for _, _, threads in four)
    assert plan(tmp_path, 'device = "cpu"', workers=2, threads=1) == [("cpu", "", 1)] * 2


def test_gpu_slots_give_each_worker_one_visible_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slots = plan(tmp_path, 'device = "cuda:0,cuda:1"\ntrials_per_gpu = 2')
    assert [(device, visible) for device, visible, _ in slots] == [
        ("cuda:0", "0"), ("cuda:0", "0"), ("cuda:0", "1"), ("cuda:0", "1"),
    ]  # fmt: skip
    # indices are the coordinator's own visible GPUs: cuda:1 of CUDA_VISIBLE_DEVICES=3,5 is GPU 5
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [v for _, v, _ in plan(tmp_path, 'device = "cuda:1"')] == ["5"]
    assert [v for _, v, _ in plan(tmp_path, 'device = "cuda:0,cuda:1"', workers=3)] == ["3", "5", "3"]


def test_parallel_workers_hundred_fast_trials_on_sqlite_with_readers(tmp_path):
    """Every trial ends in a final state, no storage error in the coordinator or in readers polling
    the store meanwhile (WAL: readers never block the writer), and every worker (one per core, up to
    four) served them."""
    spec = write_spec(tmp_path, "many", "tiny", n_trials=100)
    url = f"sqlite:///{tmp_path}/store.db"
    coordinator = start(spec, url, "--workers", str(PARALLEL), log=tmp_path / "run.log")
    errors: list[str] = []
    reads = 0
    seen_study = False
    done = threading.Event()

    def read() -> None:  # what `tunetui ls` and the TUI do, as fast as they can
        nonlocal reads, seen_study
        while not done.is_set():
            try:
                store = Store(url, read_only=True)
                for study in store.studies():
                    seen_study = True
                    store.trials(study["study_id"])
                    store.epochs(study["study_id"])
                store.close()
                reads += 1
            except StoreError as err:
                # while the first coordinator creates Optuna's tables (one DDL commit each), a reader may
                # see `studies` without `trial_values`: that window ends before the first trial
                creating = "no store at" in str(err) or ("no such table" in str(err) and not seen_study)
                if not creating:
                    errors.append(str(err))
            time.sleep(0.02)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        code = finish(coordinator, 150)
    finally:
        done.set()
        for reader in readers:
            reader.join()
    log = (tmp_path / "run.log").read_text()
    assert code == 0, log[-3000:]
    assert not errors and reads > 20
    assert "locked" not in log and "Traceback" not in log
    trials = StoreView(url).trials("many")
    assert len(trials) == 100 and sorted(trials) == list(range(100))
    assert all(t["state"] == "COMPLETE" and t["epochs"] == 1 for t in trials.values())
    pids = {t["worker_pid"] for t in trials.values()}
    assert len(pids) == PARALLEL  # long-lived workers, each reused for many trials


@pytest.mark.skipif(not os.path.exists("/dev/nvidia0"), reason="needs a CUDA GPU")
def test_two_trials_share_one_gpu(tmp_path):
    spec = write_spec(tmp_path, "gpu", "tiny", n_trials=6)
    spec.write_text(spec.read_text() + '\n[devices]\ndevice = "cuda:0"\ntrials_per_gpu = 2\n')
    url = f"sqlite:///{tmp_path}/store.db"
    coordinator = start(spec, url, log=tmp_path / "run.log")
    assert finish(coordinator, 150) == 0, (tmp_path / "run.log").read_text()[-3000:]
    trials = StoreView(url).trials("gpu")
    assert all(t["state"] == "COMPLETE" for t in trials.values())
    assert len({t["worker_pid"] for t in trials.values()}) == 2
