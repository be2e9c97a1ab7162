"""A real study end to end through the CLI: spec -> coordinator -> worker -> store -> Optuna readers."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from engine.store import Store
from tests.conftest import ROOT, STUDIES, run_cli
from tests.helpers_run import tunetui_here

DIGITS = str(STUDIES / "digits_mlp.toml")
FAST = ["--set", "train.epochs=2", "--quiet"]


@pytest.fixture(scope="module")
def digits_store(tmp_path_factory):
    """A 3-trial digits study in a fresh SQLite file for the tests below, made by two runs: 1 trial, then a
    rerun of the same spec that resumes the study with 2 more (its output is the one returned)."""
    path = tmp_path_factory.mktemp("e2e") / "study.db"
    url = f"sqlite:///{path}"
    first = run_cli("run", DIGITS, "--trials", "1", "--storage", url, *FAST)
    assert first.returncode == 0, first.stderr + first.stdout
    result = run_cli("run", DIGITS, "--trials", "2", "--storage", url, *FAST)
    assert result.returncode == 0, result.stderr + result.stdout
    return url, result


def test_run_prints_the_best_trial(digits_store):
    _, result = digits_store
    assert "best val_acc:" in result.stdout
    assert "best trial #" in result.stdout


def test_store_is_an_ordinary_optuna_storage(digits_store):
    url, _ = digits_store
    study = optuna.load_study(study_name="digits_mlp", storage=url)
    trials = study.get_trials()
    assert len(trials) == 3
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(0.0 <= t.value <= 1.0 for t in complete)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    # one intermediate value per epoch reported: the pruner saw every epoch
    assert all(len(t.intermediate_values) >= 1 for t in trials)


def test_optuna_cli_lists_the_trials(digits_store):
    url, _ = digits_store
    optuna_cli = shutil.which("optuna", path=str(Path(sys.executable).parent))
    assert optuna_cli, "the optuna CLI is installed with optuna"
    out = subprocess.run(
        [optuna_cli, "trials", "--study-name", "digits_mlp", "--storage", url, "-f", "json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rows = json.loads(out.stdout)
    assert sorted(r["number"] for r in rows) == [0, 1, 2]


def test_trials_record_what_reproduces_them(digits_store):
    url, _ = digits_store
    study = optuna.load_study(study_name="digits_mlp", storage=url)
    attrs = study.trials[0].user_attrs
    for key in ("seed", "torch_version", "optuna_version", "device", "amp", "clip_norm", "host"):
        assert key in attrs, f"missing user attr {key}: {sorted(attrs)}"
    assert attrs["seed"] == 0  # study seed 0 + trial number 0
    assert attrs["clip_norm"] == 5.0
    assert attrs["device"] == "cpu"
    if (ROOT / ".git").exists():
        assert attrs["spec_commit"], "the spec's folder is a git repo: its commit is recorded"
    assert "spec_toml" in study.user_attrs


def test_telemetry_has_one_row_per_epoch(digits_store):
    url, _ = digits_store
    store = Store(url, read_only=True)
    sid = store.study_id("digits_mlp")
    for trial in store.trials(sid):
        rows = store.epochs(sid, trial.number)
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        assert rows, "every trial wrote epoch telemetry"
        for r in rows:
            for col in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "epoch_time_s"):
                assert r[col] is not None, col
        assert store.steps(sid, trial.number), "step samples were written"


def test_store_file_and_folder_are_private(digits_store):
    url, _ = digits_store
    path = Path(url.removeprefix("sqlite:///"))
    assert path.stat().st_mode & 0o777 == 0o600


def test_rerun_resumes_the_same_study_and_adds_trials(digits_store):
    url, _ = digits_store
    study = optuna.load_study(study_name="digits_mlp", storage=url)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert len(optuna.get_all_study_names(url)) == 1


def write_spec(tmp_path: Path, body: str, name: str = "s.toml") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


PRUNING_SPEC = """
[study]
name = "prune_me"
seed = 3
[budget]
n_trials = 8
[sampler]
kind = "random"
[pruner]
kind = "median"
n_startup_trials = 1
n_warmup_steps = 0
[train]
epochs = 4
optimizer = "sgd"
momentum = 0.0
[space.lr]
type = "float"
low = 1e-6
high = 0.3
log = true
"""


def test_pruning_prunes_bad_trials(tmp_path):
    """lr spans 1e-6..0.3: tiny-lr trials stay near chance and fall below the median at epoch 1."""
    url = f"sqlite:///{tmp_path}/prune.db"
    result = run_cli("run", write_spec(tmp_path, PRUNING_SPEC), "--storage", url, "--quiet")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="prune_me", storage=url)
    states = [t.state for t in study.trials]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, f"no trial was pruned: {states}"
    for t in pruned:
        assert max(t.intermediate_values) < 4, "a pruned trial stopped before its last epoch"
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete


NAN_SPEC = """
[study]
name = "nan_then_fine"
[budget]
n_trials = 2
[sampler]
kind = "grid"
[pruner]
kind = "none"
[train]
epochs = 3
optimizer = "sgd"
momentum = 0.9
init = "kaiming"
[space.lr]
type = "categorical"
choices = [90.0, 0.05]
"""


def test_nan_loss_fails_one_trial_and_the_study_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path}/nan.db"
    result = run_cli("run", write_spec(tmp_path, NAN_SPEC), "--storage", url, "--quiet")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="nan_then_fine", storage=url)
    by_lr = {t.params["lr"]: t for t in study.trials}
    assert by_lr[90.0].state == optuna.trial.TrialState.FAIL
    assert by_lr[90.0].user_attrs["fail_reason"] == "nan_loss"
    assert by_lr[0.05].state == optuna.trial.TrialState.COMPLETE
    assert by_lr[0.05].value > 0.5


def test_bad_spec_exits_2_and_creates_no_study(tmp_path):
    db = tmp_path / "never.db"
    spec = write_spec(tmp_path, '[study]\nname = "x"\n[space.lr]\ntype = "float"\nlow = 1\nhigh = 0.1\n')
    result = tunetui_here("run", spec, storage=f"sqlite:///{db}")  # refused before anything starts
    assert result.returncode == 2
    assert "space.lr" in result.stderr and "must not exceed high" in result.stderr
    assert "nothing was started" in result.stderr
    assert not db.exists()


def test_export_round_trip(digits_store, tmp_path):
    url, _ = digits_store
    out = tunetui_here("export", "digits_mlp", "--format", "csv", storage=url)  # reads: in this process
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert {"state", "value", "param_lr", "duration_s", "final_val_acc", "final_train_loss"} <= set(rows[0])

    target = tmp_path / "trials.json"
    out = run_cli("export", "digits_mlp", "--storage", url, "--format", "json", "-o", str(target))  # its mode
    assert out.returncode == 0, out.stderr
    data = json.loads(target.read_text())
    assert len(data) == 3 and target.stat().st_mode & 0o777 == 0o600
    target.write_text("mine")  # an existing file is replaced only with --force, as the TUI asks first
    again = tunetui_here("export", "digits_mlp", "--format", "json", "-o", str(target), storage=url)
    assert again.returncode == 2 and "exists: pass --force" in again.stderr and target.read_text() == "mine"
    forced = tunetui_here("export", "digits_mlp", "--format", "json", "-o", str(target), "--force", storage=url)
    assert forced.returncode == 0 and json.loads(target.read_text()) == data, forced.stderr

    best_spec = tmp_path / "best.toml"
    out = tunetui_here("export", "digits_mlp", "--best-spec", str(best_spec), storage=url)
    assert out.returncode == 0, out.stderr
    assert tunetui_here("validate", str(best_spec), storage=None).returncode == 0
    study = optuna.load_study(study_name="digits_mlp", storage=url)
    rerun_url = f"sqlite:///{tmp_path}/best.db"
    rerun = run_cli("run", str(best_spec), "--storage", rerun_url, "--quiet", "--set", "train.epochs=2")
    assert rerun.returncode == 0, rerun.stderr
    again = optuna.load_study(study_name="digits_mlp-best", storage=rerun_url)
    assert len(again.trials) == 1 and again.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert again.trials[0].params == {}  # the space is fixed: nothing left to sample
    fixed = json.loads(json.dumps(again.user_attrs["spec_toml"]))
    for name, value in study.best_trial.params.items():
        assert f"{name} = " in fixed and (str(value) in fixed or repr(value) in fixed)


def test_the_shipped_user_task_example_runs(tmp_path):
    """studies/examples/two_moons.*: the README's user-task example, run for real."""
    url = f"sqlite:///{tmp_path}/moons.db"
    spec = str(STUDIES / "examples" / "two_moons.toml")
    result = run_cli("run", spec, "--trials", "3", "--storage", url, "--quiet")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="two_moons", storage=url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and max(t.value for t in complete) > 0.7  # two moons: chance is 0.5
    assert {t.params["hidden"] for t in study.trials} <= {4, 16, 64}


def test_a_task_with_a_test_split_records_test_accuracy(tmp_path):
    """MNIST-format files with t10k files: each trial records test_acc; show and export report it."""
    from tests.test_tasks import write_mnist

    write_mnist(tmp_path / "data", n=200)
    url = f"sqlite:///{tmp_path}/mnist.db"
    spec = write_spec(
        tmp_path,
        f"""
[study]
name = "tiny_mnist"
[budget]
n_trials = 1
[task]
name = "mnist"
data_dir = "{tmp_path / "data"}"
[train]
epochs = 2
width = 16
layers = 1
""",
    )
    assert run_cli("run", spec, "--storage", url, "--quiet").returncode == 0
    trial = optuna.load_study(study_name="tiny_mnist", storage=url).trials[0]
    assert 0.0 <= trial.user_attrs["test_acc"] <= 1.0
    show = tunetui_here("show", "tiny_mnist", storage=url)
    assert "test_acc (final model, held-out test split)" in show.stdout
    rows = list(csv.DictReader(io.StringIO(tunetui_here("export", "tiny_mnist", storage=url).stdout)))
    assert float(rows[0]["test_acc"]) == pytest.approx(trial.user_attrs["test_acc"])


GRID_SPEC = """
[study]
name = "grid"
[budget]
n_trials = 10
[sampler]
kind = "grid"
[pruner]
kind = "none"
[train]
epochs = 1
width = 16
[space.lr]
type = "categorical"
choices = [0.001, 0.01, 0.1]
"""


def test_grid_search_runs_each_point_once_and_stops(tmp_path):
    """A budget larger than the grid: every point runs once, none twice, and the run ends, with two
    workers asking at once. (The count of points left: tests/run/test_ledger.py.)"""
    url = f"sqlite:///{tmp_path}/grid.db"
    result = run_cli("run", write_spec(tmp_path, GRID_SPEC), "--storage", url, "--workers", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="grid", storage=url)
    assert sorted(t.params["lr"] for t in study.trials) == [0.001, 0.01, 0.1]


VALUE_SPEC = """
[study]
name = "rule_{rule}"
seed = 5
value = "{rule}"
[budget]
n_trials = 3
[sampler]
kind = "random"
[pruner]
kind = "none"
[task]
subset = 300
[train]
epochs = 5
optimizer = "sgd"
momentum = 0.9
clip_norm = 1.0
telemetry = false
[space.lr]
type = "float"
low = 0.3
high = 0.9
"""


@pytest.mark.parametrize("rule", ["best", "last", "mean_last_3"])
def test_the_value_rule_takes_each_trials_value_from_its_epochs(tmp_path, rule):
    """A noisy lr, so a trial's best epoch is not its last: each rule gives its own value."""
    url = f"sqlite:///{tmp_path}/rule.db"
    spec = write_spec(tmp_path, VALUE_SPEC.format(rule=rule))
    result = run_cli("run", spec, "--storage", url, "--quiet")
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name=f"rule_{rule}", storage=url).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    curves = [[t.intermediate_values[e] for e in sorted(t.intermediate_values)] for t in trials]
    assert any(max(c) != c[-1] for c in curves), "every curve peaked at its last epoch: the test says nothing"
    expected = {"best": lambda c: max(c), "last": lambda c: c[-1], "mean_last_3": lambda c: sum(c[-3:]) / 3}[rule]
    assert [t.value for t in trials] == pytest.approx([expected(c) for c in curves])
    epoch_of = {"best": lambda c: c.index(max(c)) + 1}.get(rule, lambda c: len(c))
    assert [t.user_attrs["value_epoch"] for t in trials] == [epoch_of(c) for c in curves]
