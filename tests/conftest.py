"""Shared test fixtures: a private store per test, and running the real `tunetui` CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"


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
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
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


def pytest_collection_finish(session):
    """A run that collects no test is a broken run, never a green one (pytest would exit 5)."""
    selected = session.config.getoption("keyword") or session.config.getoption("markexpr")
    if not session.items and not selected and not session.config.getoption("collectonly"):
        raise pytest.UsageError("no tests were collected: the test suite is broken (check imports and paths)")
