"""Tasks of data sets through `tunetui run`: the coordinator, a worker and its loader workers, for real.
The loader's decoding processes are children of the trial's worker, in its process group: a trial killed
or past its time limit leaves none behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli
from tests.helpers_run import finish, start, tunetui_here, wait_for, write_spec
from tests.test_loader import EXAMPLES, write_images


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.parametrize("how", ["time_limit", "kill"])
def test_a_trial_ended_while_its_loader_workers_decode_leaves_no_process_of_its_group(
    tmp_path, how, no_stray_processes
):
    marks = tmp_path / "m"
    spec = write_spec(tmp_path / "spec", "stuck", "stuck_sets", n_trials=1, task_params={"mark_dir": str(marks)})
    text = spec.read_text().replace("histograms = false", "histograms = false\nloader_workers = 1")
    if how == "time_limit":
        text = text.replace("n_trials = 1", "n_trials = 1\ntrial_timeout_s = 4")  # room for the loader to start
    spec.write_text(text)
    url = f"sqlite:///{tmp_path}/store.db"
    run = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    mark = wait_for(lambda: next(marks.glob("item-*"), None), 90, "a loader worker reading an item")
    _, group, loader_pid, _ = mark.name.split("-")
    group, loader_pid = int(group), int(loader_pid)
    assert loader_pid != group and loader_pid in group_members(group)  # a child of the worker, in its group
    assert mark.read_text() == "forked"  # with the worker's modules, not a new interpreter importing torch
    if how == "kill":
        assert tunetui_here("kill", "stuck", "0", storage=url).returncode == 0
    wait_for(lambda: not group_members(group), 30, f"the worker's process group to be empty ({how})")
    finish(run, 60)
    trial = optuna.load_study(study_name="stuck", storage=url).trials[0]
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"] == ("timeout" if how == "time_limit" else "killed")


def test_the_shipped_imagefolder_example_runs_two_trials(tmp_path, no_stray_processes):
    write_images(tmp_path / "images", per_class=20)
    for name in ("imagefolder_task.py", "imagefolder_task.toml"):
        shutil.copy(EXAMPLES / name, tmp_path)
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(tmp_path / "imagefolder_task.toml"), "--storage", url, "--workers", "1",
                     "--trials", "2", "--quiet", "--set", f"task.data_dir={tmp_path / 'images'}",
                     "--set", "train.epochs=2", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    trials = optuna.load_study(study_name="imagefolder", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(0.0 <= t.value <= 1.0 for t in trials)
    assert all(sorted(t.intermediate_values) == [1, 2] for t in trials)
