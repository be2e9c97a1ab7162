"""Shared test fixtures: a private store per test, and running the real `tunetui` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.isolation import python_path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"

# One torch thread in the test processes (read when torch is first imported, after this file): the suite runs
# two test processes on two cores, and torch's default of a thread per core had them spin against each other
# (the in-process training tests took twice the CPU). A run's workers set their own (engine/run/pool.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _private_store(tmp_path, monkeypatch):
    """No test may write into the repo's default store."""
    monkeypatch.setenv("TUNETUI_STORAGE", f"sqlite:///{tmp_path}/default.db")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def store_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store.db"


def run_cli(*args: str, timeout: float = 240, cwd: Path | None = None, env: dict | None = None):
    """Run `python -m engine.cli ARGS` for real; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONPATH": python_path(), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
        env=full_env,
        check=False,
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def no_stray_processes():
    """Every process group a test starts (coordinators, detached runs) is gone when the test ends,
    however the test ended."""
    import signal

    from tests.helpers_run import children

    before = set(children(os.getpid()))
    yield
    for pid in set(children(os.getpid())) - before:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server from .ci/postgres.sh (installed when absent); its base URL, in the plain
    `postgresql://` form the README shows (tests hand it to tunetui as a user would).

    Skipped only where no server can be installed, and never under TUNETUI_REQUIRE_POSTGRES (CI)."""
    script = ROOT / ".ci" / "postgres.sh"
    try:
        done = subprocess.run(
            [str(script), "start"], capture_output=True, text=True, timeout=600, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`.ci/postgres.sh start` took more than 10 minutes")
    if done.returncode == 3:
        reason = f"no PostgreSQL server here and none could be installed: {done.stderr.strip()[-300:]}"
        if os.environ.get("TUNETUI_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    if done.returncode != 0:
        pytest.fail(f"`.ci/postgres.sh start` failed ({done.returncode}): {done.stderr[-2000:]}")
    url, folder = done.stdout.split()[:2]
    yield url
    subprocess.run([str(script), "stop", folder], capture_output=True, timeout=60, check=False)


def fresh_postgres_database(server_url: str, prefix: str = "t") -> str:
    """A new empty database on the test server; its URL."""
    import uuid

    import sqlalchemy as sa

    from engine.store import with_driver

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(with_driver(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def pytest_collection_finish(session):
    """A run that collects no test is a broken run, never a green one (pytest would exit 5)."""
    selected = session.config.getoption("keyword") or session.config.getoption("markexpr")
    if not session.items and not selected and not session.config.getoption("collectonly"):
        raise pytest.UsageError("no tests were collected: the test suite is broken (check imports and paths)")


@pytest.fixture(params=["sqlite", "journal", pytest.param("postgres", marks=pytest.mark.postgres)])
def optuna_store(request, tmp_path) -> str:
    """A store made by Optuna alone (no tt_* tables; every trial state, two objectives), on each backend:
    a SQLite file, a journal file (its path, as a user types it) and a PostgreSQL database."""
    from tests.optuna_only import build_optuna_only_store

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/optuna.db"
    elif request.param == "journal":
        url = str(tmp_path / "optuna.log")
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"), prefix="optuna")
    build_optuna_only_store(url)
    return url
