"""Runs whose trials fail: a task that cannot work stops the run early; a run with no success exits 1."""

from __future__ import annotations

import optuna
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.usefixtures("no_stray_processes")

SPEC = """
[study]
name = "{name}"
[budget]
n_trials = {n_trials}
[sampler]
kind = "random"
[pruner]
kind = "none"
[task]
name = "{task}"
[train]
epochs = 1
batch_size = 16
[space.knob]
type = "float"
low = 0.0
high = 1.0
"""

TASKS = '''
def varying(params, device):
    raise ValueError(f"knob {params['knob']!r} is not supported")
'''


def run(tmp_path, name: str, task: str, n_trials: int):
    (tmp_path / "failing_tasks.py").write_text(TASKS)
    spec = tmp_path / f"{name}.toml"
    spec.write_text(SPEC.format(name=name, task=task, n_trials=n_trials))
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--quiet", cwd=tmp_path)
    return result, optuna.load_study(study_name=name, storage=url).trials


def test_a_task_that_cannot_import_stops_the_run_after_five_identical_failures(tmp_path):
    result, trials = run(tmp_path, "noimport", "no_such_module:task", n_trials=40)
    assert result.returncode == 1, result.stderr
    assert len(trials) == 5, "the run must stop instead of burning its 40-trial budget"
    assert {t.user_attrs["fail_reason"] for t in trials} == {"error"}
    assert "stopped after 5 trials in a row failed the same way (error: " in result.stderr
    assert "no_such_module" in result.stderr and "fix the task or spec and run again" in result.stderr
    assert "`tunetui show noimport --trial 4`" in result.stderr


def test_a_run_whose_trials_all_fail_differently_runs_its_budget_and_exits_1(tmp_path):
    result, trials = run(tmp_path, "varying", "failing_tasks:varying", n_trials=7)
    assert result.returncode == 1, result.stderr
    assert len(trials) == 7 and all(t.state.name == "FAIL" for t in trials)
    assert "every trial of this run failed (error 7)" in result.stderr
