"""TUI fixtures: real stores built with Optuna and the Store API, apps with a frozen clock, a pilot helper."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import STUDIES, run_cli
from tests.tui.builders import BASE_TIME, build_big_study, build_study

FROZEN_NOW = BASE_TIME.timestamp() + 3600.0  # what "now" is for durations of running trials


def copy_store(src: Path, dst: Path) -> str:
    """A private copy of a fixture store (sqlite's backup API: consistent even with a WAL beside it)."""
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)
    return f"sqlite:///{dst}"


@pytest.fixture(scope="session")
def small_store_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.db"
    build_study(f"sqlite:///{path}")
    return path


@pytest.fixture
def small_store(small_store_file, tmp_path) -> str:
    """12 finished trials of digits_mlp with epochs, steps, layers, findings and logs; fixed timestamps."""
    return copy_store(small_store_file, tmp_path / "small.db")


def build_running(url: str) -> str:
    """A study with 2 running trials and a fresh heartbeat: a coordinator that looks alive."""
    build_study(url, n_trials=6, running=2, heartbeat=None)
    from engine.store import Store

    store = Store(url)
    store.beat(store.study_id("digits_mlp"), "host-a", pid=4242, started=time.time(), state="running",
               workers=2, device="cpu")  # fmt: skip
    store.close()
    return url


@pytest.fixture
def running_store(tmp_path) -> str:
    """A study with 2 running trials and a fresh heartbeat: a coordinator that looks alive."""
    return build_running(f"sqlite:///{tmp_path}/running.db")


@pytest.fixture(scope="session")
def big_store(tmp_path_factory) -> str:
    """10,000 trials of 2 epochs each (read only: share it)."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    build_big_study(f"sqlite:///{path}", epochs=2)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def real_store_file(tmp_path_factory) -> Path:
    """A REAL tiny study: `tunetui run` of the default spec, 2 trials of 2 epochs."""
    path = tmp_path_factory.mktemp("real") / "real.db"
    result = run_cli("run", str(STUDIES / "digits_mlp.toml"), "--trials", "2", "--storage", f"sqlite:///{path}",
                     "--set", "train.epochs=2", "--quiet", timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return path


@pytest.fixture
def studies_dir(tmp_path) -> Path:
    """A private copy of the studies folder (the editor writes into it)."""
    target = tmp_path / "studies"
    target.mkdir()
    for spec in STUDIES.glob("*.toml"):
        (target / spec.name).write_text(spec.read_text())
    return target


@pytest.fixture
def make_app(studies_dir) -> Callable:
    from tui.app import TunetuiApp

    def make(url: str, open_study: str | None = None, poll_s: float = 0.05, **kwargs):
        return TunetuiApp(url, studies_dir, clock=lambda: FROZEN_NOW, poll_s=poll_s, open_study=open_study,
                          **kwargs)  # fmt: skip

    return make


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until `condition()` holds (polling threads post messages meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            from tests.tui.screen_text import screen_text

            raise AssertionError(f"timed out waiting for {what or condition}\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)
    await asyncio.sleep(0)


@pytest.fixture
def pg_small_store(postgres_server) -> str:
    """The small fixture study in a fresh PostgreSQL database."""
    from tests.conftest import fresh_postgres_database

    url = fresh_postgres_database(postgres_server, prefix="tui")
    build_study(url)
    return url


@pytest.fixture
def pg_running_store(postgres_server) -> str:
    """`running_store`'s study in a fresh PostgreSQL database."""
    from tests.conftest import fresh_postgres_database

    return build_running(fresh_postgres_database(postgres_server, prefix="tui"))


@pytest.fixture(params=["small_store", pytest.param("pg_small_store", marks=pytest.mark.postgres)])
def any_store(request) -> str:
    """The small fixture study in a SQLite file and in a PostgreSQL database."""
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["running_store", pytest.param("pg_running_store", marks=pytest.mark.postgres)])
def any_running_store(request) -> str:
    """The running study in a SQLite file and in a PostgreSQL database."""
    return request.getfixturevalue(request.param)
