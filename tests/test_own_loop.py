"""A spec's own training loop (`[task] loop`), run for real: `tunetui run` in a subprocess, its coordinator and a
worker, the loops from tests/helpers_loops.py. A bad loop fails its trial with a clear reason, and the
study goes on to its next trial."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import torch

from tests.conftest import STUDIES, run_cli
from tests.helpers_run import StoreView
from tui.data import StudyWatcher, Want

pytestmark = pytest.mark.usefixtures("no_stray_processes")

LOOPS = Path(__file__).resolve().parent / "helpers_loops.py"

SPEC = """
[study]
name = "{name}"
metric = "val_rmse"
direction = "minimize"

[budget]
n_trials = {n_trials}
{budget}
[sampler]
kind = "random"

[pruner]
kind = "none"

[task]
loop = "helpers_loops:{loop}"

[train]
epochs = {epochs}
step_every = 2

[space.lr]
type = "float"
low = 1e-3
high = 1e-2
log = true
"""


def run(tmp_path: Path, loop: str, epochs: int = 2, budget: str = "", pruner: str = "", n_trials: int = 2):
    shutil.copy(LOOPS, tmp_path / "helpers_loops.py")
    spec = tmp_path / f"{loop}.toml"
    text = SPEC.format(name=loop, loop=loop, epochs=epochs, budget=budget, n_trials=n_trials)
    if pruner:
        text = text.replace('[pruner]\nkind = "none"\n', pruner)
    spec.write_text(text, encoding="utf-8")
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--quiet", cwd=tmp_path)
    return result, optuna.load_study(study_name=loop, storage=url).trials, StoreView(url)


def extra_of(store: StoreView, number: int) -> list[dict]:
    return [json.loads(r[0]) for r in store.rows("SELECT extra_json FROM tt_epoch WHERE trial_number = :n "
                                                 "ORDER BY epoch", n=number)]  # fmt: skip


def test_a_watched_loop_completes_its_trials_with_the_engines_telemetry(tmp_path):
    result, trials, store = run(tmp_path, "watched", epochs=3)
    assert result.returncode == 0, result.stderr
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(0 < t.value < 10 for t in trials)  # val_rmse, the study's metric, minimized
    for t in trials:
        epochs = store.rows("SELECT epoch, lr, grad_norm, train_loss FROM tt_epoch WHERE trial_number = :n "
                            "ORDER BY epoch", n=t.number)  # fmt: skip
        assert [e[0] for e in epochs] == [1, 2, 3]
        assert all(e[1] == pytest.approx(t.params["lr"]) for e in epochs)  # the optimizer's lr, via the hooks
        # the norm before clipping: the loop clips to 1e-3, so a norm read after clipping would be <= 1e-3
        assert all(e[2] is not None and e[2] > 1e-2 for e in epochs)
        assert all(e[3] is not None for e in epochs)  # the loop's own numbers land in their columns
        # a metric outside the columns is kept per epoch too: the value (mean of the last 3) is its mean
        extra = extra_of(store, t.number)
        assert [list(e) for e in extra] == [["val_rmse"]] * 3
        assert sum(e["val_rmse"] for e in extra) / 3 == pytest.approx(t.value)
        steps = store.rows("SELECT step, epoch, lr, grad_norm FROM tt_step WHERE trial_number = :n ORDER BY step",
                           n=t.number)  # fmt: skip
        # 4 optimizer steps an epoch, every 2nd sampled: steps 1, 3, 5, ... 11
        assert [s[0] for s in steps] == [1, 3, 5, 7, 9, 11]
        assert [s[1] for s in steps] == [1, 1, 2, 2, 3, 3]
        assert all(s[2] == pytest.approx(t.params["lr"]) and s[3] > 1e-2 for s in steps)
        layers = store.rows("SELECT epoch, layer, grad_norm, weight_norm, hist_json FROM tt_layer "
                            "WHERE trial_number = :n ORDER BY epoch, position", n=t.number)  # fmt: skip
        assert [(row[0], row[1]) for row in layers] == [(e, name) for e in (1, 2, 3) for name in ("0", "2")]
        assert all(row[2] > 0 and row[3] > 0 and '"counts"' in row[4] for row in layers)
    # the workbench's trial table shows the loop's metrics of each trial's last epoch
    watcher = StudyWatcher(store.url, "watched")
    shown = watcher.poll(Want()).trials
    watcher.close()
    assert [sorted(t.metrics) for t in shown] == [["train_loss", "val_rmse"]] * 2
    assert [t.metrics["val_rmse"] for t in shown] == [extra_of(store, t.number)[-1]["val_rmse"] for t in trials]
    # the watched model's weights are kept (save_weights = "best", the default): the best trial's state_dict
    files = list((tmp_path / "store.artifacts").iterdir())
    assert len(files) == 1
    assert sorted(torch.load(files[0], weights_only=True)) == ["0.bias", "0.weight", "2.bias", "2.weight"]


def test_an_unwatched_loop_records_its_metrics_and_no_layer_telemetry(tmp_path):
    result, trials, store = run(tmp_path, "unwatched")
    assert result.returncode == 0, result.stderr
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert store.rows("SELECT COUNT(*) FROM tt_epoch") == [(4,)]
    assert store.rows("SELECT COUNT(*) FROM tt_layer") == [(0,)]


WRONG = [  # (the loop, its trial's fail reason, words of its hint), in helpers_loops.WRONG_WAYS' order
    ("raises", "error", "ValueError: this loop cannot train with lr="),
    ("never_reports", "no_report", "the loop never called report"),
    ("reports_nan", "nan_loss", "the loop reported val_rmse = nan in epoch 1"),
    ("reports_other_metrics", "no_metric",
     "report(epoch 1) has no 'val_rmse', the study's metric; the loop reported val_mse, val_r2"),
    ("swallows_its_failure", "no_metric", "the loop reported val_mse"),
    ("runs_out_of_memory", "oom", "try a smaller batch size"),
]  # fmt: skip


def test_a_bad_loop_fails_each_trial_with_its_reason_and_the_study_goes_on(tmp_path):
    """One run goes through every bad loop twice (helpers_loops.each_way_wrong: trial n runs WRONG[n % 6]):
    each trial fails with its loop's reason and hint, and the study goes on to its next trial each time."""
    from tests.helpers_loops import WRONG_WAYS

    assert [loop for loop, _, _ in WRONG] == list(WRONG_WAYS)
    result, trials, _ = run(tmp_path, "each_way_wrong", n_trials=2 * len(WRONG))
    assert result.returncode == 1, result.stderr  # every trial of the run failed
    assert len(trials) == 2 * len(WRONG), "the study must go on to its next trial"
    for t in trials:
        loop, reason, hint = WRONG[t.user_attrs["seed"] % len(WRONG)]  # the study's seed is 0: seed = number
        assert (loop, t.state.name, t.user_attrs["fail_reason"]) == (loop, "FAIL", reason)
        assert hint in t.user_attrs["fail_hint"], (loop, t.user_attrs["fail_hint"])
    assert sorted(t.user_attrs["seed"] for t in trials) == list(range(2 * len(WRONG)))
    assert "internal error" not in result.stderr


def test_a_loop_past_its_time_limit_is_told_to_stop_or_killed_and_the_study_goes_on(tmp_path):
    """One run, three trials past their 1.5 s limit (helpers_loops.past_its_limit): trial 0 never reports
    again and is killed with its worker, and the study goes on; trials 1 and 2 report until report returns
    True, then return, and the worker that ran both lives on."""
    result, trials, store = run(tmp_path, "past_its_limit", epochs=1000, budget="trial_timeout_s = 1.5", n_trials=3)
    assert [t.user_attrs["fail_reason"] for t in trials] == ["timeout"] * 3, result.stderr
    assert result.returncode == 1, result.stderr
    told = tmp_path / "told-to-stop"  # a line per trial whose report returned True and whose loop returned
    marks = [line.split() for line in told.read_text().splitlines()] if told.exists() else []
    assert len(marks) == 2, result.stderr  # trials 1 and 2; trial 0 never returned
    assert len({pid for pid, _ in marks}) == 1  # one worker ran both: it was not killed
    assert all(int(epoch) >= 5 for _, epoch in marks)  # it trained until the limit, not less
    workers = [store.trials("past_its_limit")[n]["worker_pid"] for n in (0, 1, 2)]
    assert workers[1] == workers[2] == int(marks[0][0]) != workers[0]  # trial 0's worker was killed: a new one


def test_the_shipped_diabetes_loop_runs_two_trials(tmp_path):
    shutil.copy(STUDIES / "diabetes_loop.py", tmp_path)
    text = (STUDIES / "diabetes_loop.toml").read_text(encoding="utf-8")
    assert "epochs = 30" in text and "n_trials = 20" in text
    spec = tmp_path / "diabetes_loop.toml"
    spec.write_text(text.replace("epochs = 30", "epochs = 2").replace("n_trials = 20", "n_trials = 2"))
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="diabetes_loop", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(40 < t.value < 200 for t in trials)  # an RMSE in the target's units (it spans 25-346)
    store = StoreView(url)
    assert store.rows("SELECT COUNT(*) FROM tt_layer WHERE epoch = 2") == [(4,)]  # 2 trials x 2 layers


def test_report_tells_a_pruned_loop_to_stop(tmp_path):
    pruner = '[pruner]\nkind = "median"\nn_startup_trials = 1\nn_warmup_steps = 0\n'
    result, trials, store = run(tmp_path, "seed_as_metric", epochs=40, pruner=pruner)
    assert result.returncode == 0, result.stderr
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED"]  # seed 1 is worse than seed 0's median
    assert store.rows("SELECT COUNT(*) FROM tt_epoch WHERE trial_number = 0") == [(40,)]
    # report returned True and the loop returned: far fewer than its 40 epochs (the stop lands an epoch late)
    assert store.rows("SELECT COUNT(*) FROM tt_epoch WHERE trial_number = 1")[0][0] <= 5
