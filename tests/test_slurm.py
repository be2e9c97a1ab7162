"""The Slurm batch-array script (docs/slurm/tunetui-array.sbatch), run by bash as Slurm would run it:
two array tasks with the job's variables set, against one real PostgreSQL store."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database
from tests.helpers_run import ROOT, StoreView, cli_env, finish, write_spec

SCRIPT = ROOT / "docs" / "slurm" / "tunetui-array.sbatch"


def array_task(spec: Path, url: str, task_id: int, node: str, log: Path, cmd: str) -> subprocess.Popen:
    env = cli_env({"TUNETUI_STORAGE": url, "TUNETUI_SPEC": str(spec), "TUNETUI_TRIALS": "2",
                   "TUNETUI_CMD": cmd, "SLURM_JOB_ID": str(500 + task_id), "SLURM_ARRAY_JOB_ID": "500",
                   "SLURM_ARRAY_TASK_ID": str(task_id), "SLURMD_NODENAME": node})  # fmt: skip
    env.pop("TUNETUI_HOST", None)
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(["bash", str(SCRIPT)], stdout=out, stderr=subprocess.STDOUT, cwd=spec.parent,
                            env=env, start_new_session=True)  # fmt: skip


@pytest.mark.postgres
@pytest.mark.usefixtures("no_stray_processes")
def test_two_array_tasks_add_their_trials_to_one_study(tmp_path, postgres_server):
    url = fresh_postgres_database(postgres_server)
    spec = write_spec(tmp_path, "slurm_array", "tiny")
    cmd = f"{sys.executable} -m engine.cli"
    tasks = [array_task(spec, url, i, node, tmp_path / f"{i}.log", cmd) for i, node in enumerate(("n1", "n2"))]
    for i, task in enumerate(tasks):
        assert finish(task, 180) == 0, (tmp_path / f"{i}.log").read_text()[-3000:]
    view = StoreView(url)
    trials = view.trials("slurm_array")
    assert sorted(trials) == [0, 1, 2, 3]  # one study, unique trial numbers
    assert Counter(t["host"] for t in trials.values()) == {"n1-500-0": 2, "n2-500-1": 2}
    assert all(t["state"] == "COMPLETE" for t in trials.values())
    assert sorted((h["host"], h["state"]) for h in view.heartbeat("slurm_array")) == [
        ("n1-500-0", "finished"),
        ("n2-500-1", "finished"),
    ]


def test_the_store_url_never_reaches_the_command_line(tmp_path):
    spec = write_spec(tmp_path, "slurm_argv", "tiny")
    shim = tmp_path / "fake-tunetui"
    shim.write_text('#!/bin/bash\nprintf "%s\\n" "$@" > "$ARGV_OUT"\necho "host=$TUNETUI_HOST" >> "$ARGV_OUT"\n')
    shim.chmod(0o700)
    secret = "postgresql://u:s3cret-pw@db.example:5432/tt"
    env = cli_env({"TUNETUI_STORAGE": secret, "TUNETUI_SPEC": str(spec), "TUNETUI_CMD": str(shim),
                   "SLURM_ARRAY_JOB_ID": "9", "SLURM_ARRAY_TASK_ID": "3", "SLURMD_NODENAME": "gpu07",
                   "ARGV_OUT": str(tmp_path / "argv")})  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    recorded = (tmp_path / "argv").read_text()
    assert recorded.splitlines() == ["run", str(spec), "--quiet", "host=gpu07-9-3"]
    assert "s3cret" not in recorded + done.stdout + done.stderr


def test_a_missing_store_is_refused_before_anything_starts(tmp_path):
    spec = write_spec(tmp_path, "slurm_nostore", "tiny")
    env = cli_env({"TUNETUI_SPEC": str(spec), "TUNETUI_CMD": "false"})
    env.pop("TUNETUI_STORAGE", None)
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "TUNETUI_STORAGE" in done.stderr
