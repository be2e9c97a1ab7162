"""A trial that checkpoints each epoch survives its coordinator: stopped by SIGTERM (a batch system's time
limit, a preemption) or killed with -9, the next run resumes it, same number, from its last checkpoint and
trains only the epochs that were left. Real processes, real signals."""

from __future__ import annotations

import os
import signal

import optuna
import pytest
import torch

from engine.run.resume import checkpoint_dir
from tests.helpers_run import StoreView, alive, children, finish, start, wait_for, write_spec

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def checkpointed_epoch(path) -> int:
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return 0


def test_a_trial_stopped_by_sigterm_then_kill_minus_9_resumes_from_its_last_epoch(tmp_path):
    spec = write_spec(tmp_path, "resume", task="slow", n_trials=1, epochs=5, task_params={"epoch_s": 1.5})
    url = f"sqlite:///{tmp_path}/store.db"
    view = StoreView(url)
    args = ("--workers", "1", "--set", "train.checkpoint=true")
    saved = checkpoint_dir(url, "resume", 0) / "checkpoint.pt"
    log = tmp_path / "run.log"

    # a batch system's time limit: SIGTERM once trial 0 has checkpointed its first epoch
    first = start(spec, url, *args, log=log)
    wait_for(saved.exists, 120, "the checkpoint of trial 0's first epoch")
    os.kill(first.pid, signal.SIGTERM)
    assert finish(first, 60) == 143, log.read_text()[-3000:]
    assert view.trials("resume")[0]["state"] == "RUNNING"  # left for the next run, not FAIL interrupted
    after_term = checkpointed_epoch(saved)
    assert 1 <= after_term < 5
    assert saved.parent.stat().st_mode & 0o777 == 0o700 and saved.stat().st_mode & 0o777 == 0o600

    # the next run resumes it; kill -9 once it has checkpointed one more epoch (its workers die via the guard)
    second = start(spec, url, *args, log=log)
    wait_for(lambda: checkpointed_epoch(saved) > after_term, 120, "a checkpoint after the resume")
    workers = children(second.pid)
    os.kill(second.pid, signal.SIGKILL)
    second.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), 10, f"workers {workers} to exit")
    assert view.trials("resume")[0]["state"] == "RUNNING"
    after_kill = checkpointed_epoch(saved)
    assert after_term < after_kill < 5

    third = start(spec, url, *args, log=log)
    assert finish(third, 180) == 0, log.read_text()[-3000:]
    study = optuna.load_study(study_name="resume", storage=url)
    [trial] = study.trials  # the same trial, resumed twice: no orphan failed, no new trial for the budget
    assert trial.number == 0 and trial.state.name == "COMPLETE"
    assert trial.user_attrs["resumed_after_epoch"] >= after_kill
    assert sorted(trial.intermediate_values) == [1, 2, 3, 4, 5]
    assert trial.value == pytest.approx(sum(trial.intermediate_values[e] for e in (3, 4, 5)) / 3)
    assert 0.0 <= trial.value <= 1.0
    assert view.rows("SELECT epoch FROM tt_epoch WHERE trial_number = 0 ORDER BY epoch") == [(1,), (2,), (3,), (4,), (5,)]
    # each epoch trained once over the three runs: the worker logs every epoch it trains, and a restart
    # from scratch would train (and log) epoch 1 again
    trained = [line.split(":")[0] for (line,) in view.rows("SELECT line FROM tt_log WHERE trial_number = 0 "
                                                             "ORDER BY id") if line.startswith("epoch ")]  # fmt: skip
    assert sorted(trained) == sorted(set(trained)), trained  # no epoch trained twice
    # every epoch's line, but the one a kill -9 may catch on its way from the worker to the store (a loaded
    # machine lost epoch 2's: the checkpoint was saved, the coordinator died before writing the line)
    assert set(trained) <= {f"epoch {e}" for e in range(1, 6)} and len(trained) >= 4, trained
    assert {f"epoch {e}" for e in range(after_kill + 1, 6)} <= set(trained), trained  # trained by the third run
    assert not saved.parent.exists()  # removed once the trial ended
    assert log.read_text().count("resuming after epoch") == 2
