"""Real coordinators as subprocesses for the fault, parallel, control and PostgreSQL tests.

Specs are written next to a copy of helpers_tasks.py, so `helpers_tasks:<task>` resolves the way a user's
own task module does. Coordinators run in their own session, so a signal meant for them never reaches
pytest, and `os.killpg` reaches the coordinator and its workers like a terminal's Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import sqlalchemy as sa

from engine.isolation import python_path

ROOT = Path(__file__).resolve().parent.parent
TASKS = Path(__file__).resolve().parent / "helpers_tasks.py"
FINAL = ("COMPLETE", "PRUNED", "FAIL")


def write_spec(folder: Path, name: str, task: str = "tiny", *, n_trials: int = 4, epochs: int = 1,
               extra: str = "", task_params: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A spec for a user task from helpers_tasks (random sampler, no pruner: runs are predictable)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TASKS, folder / "helpers_tasks.py")
    params = "".join(f"{k} = {_toml(v)}\n" for k, v in (task_params or {}).items())
    text = f"""
[study]
name = "{name}"
seed = 1

[budget]
n_trials = {n_trials}

[sampler]
kind = "random"

[pruner]
kind = "none"

[task]
name = "helpers_tasks:{task}"

[task.params]
{params}
[train]
epochs = {epochs}
batch_size = 16
augment = true
histograms = false

[space.lr]
type = "float"
low = 1e-3
high = 1e-1
log = true
{extra}
"""
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": python_path(), "PYTHONUNBUFFERED": "1", **(extra or {})}


def start(
    spec: Path, storage: str, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`tunetui run SPEC` in a new session; output appended to `log`."""
    out = open(log, "ab")  # noqa: SIM115 - the child owns it; closed when the test's process ends
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--storage", storage, "--quiet", *args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=spec.parent,
        env=cli_env(env),
        start_new_session=True,
    )


def tunetui(*args: str, storage: str, timeout: float = 60, env: dict[str, str] | None = None):
    """A `tunetui` command as a second process would run it."""
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args, "--storage", storage],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=cli_env(env),
        check=False,
    )


def tunetui_here(*args: str, storage: str | None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A `tunetui` command called in this process, its output captured: for refusals and read commands,
    which start no process of their own (saves a Python start per call). Keep `tunetui()` where the point is
    a process: a run, a signal, what its argv or environment holds."""
    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*args, *(["--storage", storage] if storage is not None else [])])
        except SystemExit as exit_:  # argparse's refusals
            code = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def finish(process: subprocess.Popen, timeout: float = 120) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        raise


class StoreView:
    """Read-only SQL on the store, the way another process sees it."""

    def __init__(self, url: str):
        self.url = url
        from engine.store import with_driver

        self.engine = sa.create_engine(with_driver(url), poolclass=sa.pool.NullPool)

    def rows(self, sql: str, **bind) -> list[tuple]:
        try:
            with self.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(sql), bind)]
        except sa.exc.OperationalError:
            return []  # not created yet
        except sa.exc.ProgrammingError:
            return []

    def trials(self, study: str) -> dict[int, dict]:
        """number -> {state, reason, host, worker_pid, epochs, value}."""
        base = self.rows(
            """SELECT t.number, t.state, t.trial_id, v.value FROM trials t JOIN studies s ON s.study_id = t.study_id
               LEFT JOIN trial_values v ON v.trial_id = t.trial_id WHERE s.study_name = :n""",
            n=study,
        )
        attrs: dict[int, dict] = {}
        for tid, key, value in self.rows(
            """SELECT a.trial_id, a.key, a.value_json FROM trial_user_attributes a
               JOIN trials t ON t.trial_id = a.trial_id JOIN studies s ON s.study_id = t.study_id
               WHERE s.study_name = :n""",
            n=study,
        ):
            attrs.setdefault(tid, {})[key] = value.strip('"')
        epochs = dict(
            self.rows(
                """SELECT e.trial_number, COUNT(*) FROM tt_epoch e JOIN studies s ON s.study_id = e.study_id
                   WHERE s.study_name = :n GROUP BY e.trial_number""",
                n=study,
            )
        )
        out = {}
        for number, state, tid, value in base:
            a = attrs.get(tid, {})
            out[number] = {
                "state": str(state).split(".")[-1],
                "reason": a.get("fail_reason"),
                "host": a.get("host"),
                "worker_pid": int(a["worker_pid"]) if a.get("worker_pid") else None,
                "epochs": int(epochs.get(number, 0)),
                "value": value,
            }
        return out

    def heartbeat(self, study: str) -> list[dict]:
        rows = self.rows(
            """SELECT h.host, h.pid, h.state, h.last_seen FROM tt_heartbeat h
               JOIN studies s ON s.study_id = h.study_id WHERE s.study_name = :n""",
            n=study,
        )
        return [{"host": r[0], "pid": r[1], "state": r[2], "last_seen": r[3]} for r in rows]

    def study_attr(self, study: str, key: str) -> str | None:
        rows = self.rows(
            """SELECT a.value_json FROM study_user_attributes a JOIN studies s ON s.study_id = a.study_id
               WHERE s.study_name = :n AND a.key = :k""",
            n=study,
            k=key,
        )
        return rows[0][0] if rows else None


def children(pid: int) -> list[int]:
    """Direct children of a process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def workers_of(pid: int) -> list[int]:
    """A coordinator's worker processes (its other child is multiprocessing's resource tracker)."""
    found = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead: it holds no memory, GPU or CPU)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
