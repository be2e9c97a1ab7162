"""A task that cannot work stops the run early, with what to do. (The streak and verdict rules themselves,
a run whose trials all fail differently among them, are tested in-process: tests/run/test_ledger.py.)"""

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

def run(tmp_path, name: str, task: str, n_trials: int):
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

