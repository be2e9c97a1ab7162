"""A user task cannot reach the store, and nothing a task starts outlives its worker (engine/isolation.py,
engine/trainer/worker_main.py's guard)."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from tests.conftest import fresh_postgres_database
from tests.helpers_run import alive, finish, start, tunetui_here, wait_for, write_spec

SPY_TASKS = '''
import json, os, subprocess, sys, time
from pathlib import Path

from helpers_tasks import tiny


def _read(path):
    try:
        return Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as err:
        return f"unreadable: {err!r}"


def snoop(params, device):
    """Write down everything this task can see that might lead to the store."""
    seen = {
        "environ": dict(os.environ),
        "argv": list(sys.argv),
        "parent_cmdline": _read(f"/proc/{os.getppid()}/cmdline"),
        "parent_environ": _read(f"/proc/{os.getppid()}/environ"),
        "parent_cwd": os.getcwd(),
    }
    Path(params["out"]).write_text(json.dumps(seen))
    return tiny(params, device)


def spawn_and_hang(params, device):
    """Start a `sleep 1000` and a forked child, record their pids, then hang."""
    sleeper = subprocess.Popen(["sleep", "1000"])
    forked = os.fork()
    if forked == 0:
        time.sleep(1000)
        os._exit(0)
    out = Path(params["mark_dir"]) / f"kids-{os.getpid()}"
    out.write_text(f"{sleeper.pid} {forked}")
    time.sleep(3600)


def spawn_and_finish(params, device):
    """Start a `sleep 1000`, record its pid, and train normally: the trial completes."""
    sleeper = subprocess.Popen(["sleep", "1000"])
    (Path(params["mark_dir"]) / f"kids-{os.getpid()}").write_text(str(sleeper.pid))
    return tiny(params, device)
'''


def spy_spec(folder: Path, name: str, task: str, **params) -> Path:
    spec = write_spec(folder, name, n_trials=1, task_params=params)
    (folder / "spy_tasks.py").write_text(SPY_TASKS)
    spec.write_text(spec.read_text().replace('name = "helpers_tasks:tiny"', f'name = "spy_tasks:{task}"'))
    return spec


def assert_unseen(seen_file: Path, markers: list[str]) -> None:
    text = seen_file.read_text()
    for marker in markers:
        assert marker not in text, f"the task saw {marker!r}: {text[:3000]}"


def test_a_task_sees_no_sqlite_url_given_on_the_command_line_or_in_the_environment(tmp_path):
    marker = f"secret-{uuid.uuid4().hex[:12]}"
    (tmp_path / marker).mkdir()
    url = f"sqlite:///{tmp_path / marker / 'store.db'}"
    other = f"sqlite:///{tmp_path / marker / 'env.db'}"
    spec = spy_spec(tmp_path / "spec", "spy", "snoop", out=str(tmp_path / "seen.json"))
    run = start(spec, url, log=tmp_path / "run.log", env={"TUNETUI_STORAGE": other})
    assert finish(run, 120) == 0, (tmp_path / "run.log").read_text()[-3000:]
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["argv"] and seen["environ"]  # the task did look
    assert_unseen(tmp_path / "seen.json", [marker])
    assert (tmp_path / marker / "store.db").is_file()  # the run did use the URL it was given


def test_a_task_sees_no_postgres_password(tmp_path, postgres_server):
    url = fresh_postgres_database(postgres_server)
    # the test server trusts local connections: a password in the URL is accepted and ignored
    password = f"pw{uuid.uuid4().hex[:12]}"
    scheme, rest = url.split("://", 1)
    user, at, host = rest.rpartition("@")
    with_password = f"{scheme}://{user or 'tunetui'}:{password}@{host}"
    spec = spy_spec(tmp_path / "spec", "spypg", "snoop", out=str(tmp_path / "seen.json"))
    run = start(spec, with_password, log=tmp_path / "run.log",
                env={"TUNETUI_STORAGE": with_password, "PGPASSWORD": password})  # fmt: skip
    assert finish(run, 120) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert_unseen(tmp_path / "seen.json", [password, host])


def _coordinator_dies(tmp_path, spec, url, how: str):
    """Start `spawn_and_hang`, end its trial `how`; return the task's child pids and the coordinator."""
    run = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    marks = tmp_path / "m"
    kids_file = wait_for(lambda: next(marks.glob("kids-*"), None), 90, "the task's children")
    kids = [int(pid) for pid in kids_file.read_text().split()]
    assert len(kids) == 2 and all(alive(pid) for pid in kids)
    if how == "kill":
        assert tunetui_here("kill", "grand", "0", storage=url).returncode == 0
    elif how == "stop_now":
        assert tunetui_here("stop", "grand", "--now", storage=url).returncode == 0
    elif how == "sigkill":
        os.kill(run.pid, signal.SIGKILL)
    return kids, run


@pytest.mark.parametrize("how", ["time_limit", "kill", "stop_now", "sigkill"])
def test_processes_a_task_started_die_with_its_trial(tmp_path, how, no_stray_processes):
    marks = tmp_path / "m"
    marks.mkdir()
    spec = spy_spec(tmp_path / "spec", "grand", "spawn_and_hang", mark_dir=str(marks))
    if how == "time_limit":
        spec.write_text(spec.read_text().replace("n_trials = 1", "n_trials = 1\ntrial_timeout_s = 3"))
    url = f"sqlite:///{tmp_path}/store.db"
    kids, run = _coordinator_dies(tmp_path, spec, url, how)
    wait_for(lambda: not any(alive(pid) for pid in kids), 30, f"the task's children to die ({how})")
    if how != "sigkill":
        finish(run, 60)


def test_processes_a_completed_task_left_die_when_the_run_ends(tmp_path, no_stray_processes):
    marks = tmp_path / "m"
    marks.mkdir()
    spec = spy_spec(tmp_path / "spec", "left", "spawn_and_finish", mark_dir=str(marks))
    run = start(spec, f"sqlite:///{tmp_path}/store.db", log=tmp_path / "run.log")
    assert finish(run, 120) == 0, (tmp_path / "run.log").read_text()[-3000:]
    kids = [int(p.read_text()) for p in marks.glob("kids-*")]
    assert kids
    wait_for(lambda: not any(alive(pid) for pid in kids), 30, "the task's sleep to die with the run")
