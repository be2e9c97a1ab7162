"""Several hosts, one study: coordinators against one real PostgreSQL server (.ci/postgres.sh).

Two coordinators on this machine act as two hosts through $TUNETUI_HOST (each takes its own lock)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from engine.store import Store, with_driver
from tests.conftest import fresh_postgres_database
from tests.helpers_run import (
    StoreView,
    alive,
    children,
    finish,
    start,
    tunetui,
    tunetui_here,
    wait_for,
    write_spec,
)

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("no_stray_processes")]
NOT_COUNTED = ("orphaned", "interrupted")


@pytest.fixture
def pg_url(postgres_server):
    """A fresh, empty database per test: the coordinators that start together create the tables."""
    return fresh_postgres_database(postgres_server)


def host(name: str) -> dict[str, str]:
    return {"TUNETUI_HOST": name}


def counted(trials: dict[int, dict], on: str) -> int:
    return sum(
        t["host"] == on and t["state"] != "RUNNING" and t["reason"] not in NOT_COUNTED
        for t in trials.values()
    )


def test_two_hosts_form_one_study_and_add_up_their_budgets(tmp_path, pg_url):
    spec = write_spec(tmp_path, "shared", "tiny")
    a = start(spec, pg_url, "--trials", "6", "--workers", "1", log=tmp_path / "a.log", env=host("host-a"))
    b = start(spec, pg_url, "--trials", "9", "--workers", "1", log=tmp_path / "b.log", env=host("host-b"))
    assert finish(a, 120) == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert finish(b, 120) == 0, (tmp_path / "b.log").read_text()[-3000:]
    view = StoreView(pg_url)
    trials = view.trials("shared")
    assert sorted(trials) == list(range(15))  # one study, unique trial numbers
    assert Counter(t["host"] for t in trials.values()) == {"host-a": 6, "host-b": 9}
    assert all(t["state"] == "COMPLETE" and t["epochs"] == 1 for t in trials.values())  # telemetry in the DB
    assert sorted((h["host"], h["state"]) for h in view.heartbeat("shared")) == [
        ("host-a", "finished"),
        ("host-b", "finished"),
    ]
    assert json.loads(view.study_attr("shared", "run_target:host-b")) == 9
    # the study is an ordinary Optuna study in that database
    import optuna

    assert len(optuna.load_study(study_name="shared", storage=with_driver(pg_url)).trials) == 15


def test_kill_and_stop_reach_the_host_that_runs_the_trial_and_every_host(tmp_path, pg_url):
    # 10 s trials: the victim must still run when `kill` lands on a loaded machine
    spec = write_spec(tmp_path, "ctl", "slow", n_trials=50, epochs=100, task_params={"epoch_s": 0.1})
    view = StoreView(pg_url)
    a = start(spec, pg_url, "--workers", "1", log=tmp_path / "a.log", env=host("host-a"))
    b = start(spec, pg_url, "--workers", "1", log=tmp_path / "b.log", env=host("host-b"))

    def running_on(name: str) -> list[int]:
        return [
            n
            for n, t in view.trials("ctl").items()
            if t["state"] == "RUNNING" and t["host"] == name and t["epochs"]
        ]

    victim = wait_for(lambda: running_on("host-b"), 60, "a trial running on host-b")[0]
    killed = tunetui_here("kill", "ctl", str(victim), storage=pg_url)
    assert killed.returncode == 0 and f"killing trial {victim}" in killed.stdout, (
        killed.stdout + killed.stderr
    )
    wait_for(lambda: running_on("host-a"), 60, "a trial running on host-a")
    wait_for(lambda: view.trials("ctl")[victim]["state"] == "FAIL", 15, "the killed trial")
    assert view.trials("ctl")[victim]["reason"] == "killed"

    stopped = tunetui_here("stop", "ctl", storage=pg_url)
    assert stopped.returncode == 0, stopped.stderr
    assert finish(a, 60) == 0 and finish(b, 60) == 0
    assert sorted(h["state"] for h in view.heartbeat("ctl")) == ["stopped", "stopped"]
    assert not [t for t in view.trials("ctl").values() if t["state"] == "RUNNING"]


def test_a_host_killed_9_resumes_its_own_budget_while_the_other_goes_on(tmp_path, pg_url):
    spec = write_spec(tmp_path, "crash", "slow", n_trials=4, epochs=6, task_params={"epoch_s": 0.05})
    view = StoreView(pg_url)
    a = start(spec, pg_url, "--workers", "1", log=tmp_path / "a.log", env=host("host-a"))
    b = start(spec, pg_url, "--workers", "1", log=tmp_path / "b.log", env=host("host-b"))
    wait_for(
        lambda: [
            t for t in view.trials("crash").values() if t["host"] == "host-a" and t["state"] == "RUNNING"
        ],
        60,
        "a trial running on host-a",
    )
    workers = children(a.pid)
    os.kill(a.pid, signal.SIGKILL)
    a.wait()
    orphans = [
        n for n, t in view.trials("crash").items() if t["state"] == "RUNNING" and t["host"] == "host-a"
    ]
    assert orphans
    wait_for(lambda: not any(alive(pid) for pid in workers), 10, "host-a's workers to exit")
    again = start(spec, pg_url, "--workers", "1", log=tmp_path / "a.log", env=host("host-a"))
    assert finish(again, 120) == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert finish(b, 120) == 0, (tmp_path / "b.log").read_text()[-3000:]
    trials = view.trials("crash")
    assert all(trials[n]["reason"] == "orphaned" for n in orphans)
    assert not [t for t in trials.values() if t["state"] == "RUNNING"]
    assert counted(trials, "host-a") == 4 and counted(trials, "host-b") == 4
    assert len(set(trials)) == len(trials)


def test_hosts_opening_a_fresh_database_together_do_not_collide(pg_url):
    """Several coordinators creating tunetui's tables at the same moment (an advisory lock serializes them)."""
    from concurrent.futures import ThreadPoolExecutor

    def open_store(_):
        Store(pg_url).close()
        return True

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(open_store, range(4)))
    assert Store(pg_url).studies() == []


def test_the_plain_postgresql_url_of_the_readme_reads_and_runs(tmp_path, pg_url):
    """`postgresql://` (and `postgres://`) use the installed psycopg2, not SQLAlchemy's default psycopg 3."""
    assert pg_url.startswith("postgresql://")
    spec = write_spec(tmp_path, "plain", "tiny")
    done = tunetui("run", str(spec), "--trials", "1", "--quiet", storage=pg_url, timeout=120)
    assert done.returncode == 0, done.stderr
    for url in (pg_url, "postgres://" + pg_url.removeprefix("postgresql://")):  # read in this process
        listed = tunetui_here("ls", "--json", storage=url)
        assert listed.returncode == 0, listed.stderr
        assert [s["study_name"] for s in json.loads(listed.stdout)] == ["plain"]
        shown = tunetui_here("show", "plain", "--json", storage=url)
        assert shown.returncode == 0 and json.loads(shown.stdout)["counts"] == {"COMPLETE": 1}, shown.stderr


def test_a_password_in_the_url_never_reaches_a_command_line(tmp_path, pg_url):
    """`run --detach` and the TUI's launch pass the URL in the environment; `ps` shows no password, and
    the run still writes to the database it was given (the test server trusts local logins, so the
    password is accepted whatever it is)."""
    import sqlalchemy as sa

    from engine.launch import RunRequest, child_argv, start_detached

    secret = "s3cret-Pw-4417"
    url = sa.engine.make_url(pg_url).set(password=secret).render_as_string(hide_password=False)
    spec = write_spec(tmp_path, "pw", "slow", n_trials=100, epochs=10, task_params={"epoch_s": 0.05})
    started = tunetui("run", str(spec), "--detach", "--workers", "1", storage=url)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid ")[1].split()[0])
    try:
        assert secret not in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        wait_for(lambda: StoreView(pg_url).trials("pw"), 60, "a trial in the given database")
        assert tunetui_here("stop", "pw", "--now", storage=url).returncode == 0
        wait_for(lambda: not alive(pid), 30, "the coordinator to exit")

        request = RunRequest(spec, workers=1)  # what the TUI starts
        assert not any(secret in part for part in child_argv(request))
        started = start_detached(request, url)
        assert started.up, started.summary()
        pid = started.pid
        assert secret not in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        beats = StoreView(pg_url).heartbeat("pw")
        assert any(b["pid"] == pid and b["state"] == "running" for b in beats)
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
