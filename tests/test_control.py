"""Control from another process: `tunetui kill`, `pause`, `resume`, `stop [--now]`, and `run --detach`.

The coordinators are real processes; the control commands are called in the test's own process (another
process than the coordinator's, like a second terminal, without a Python start each)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers_run import StoreView, alive, finish, start, tunetui, tunetui_here, wait_for, write_spec

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def running(view: StoreView, study: str, min_epochs: int = 0) -> list[int]:
    return sorted(
        n for n, t in view.trials(study).items() if t["state"] == "RUNNING" and t["epochs"] >= min_epochs
    )


def test_kill_pause_resume_and_stop_now_from_another_process(tmp_path):
    # 4 s trials: long enough that a trial seen running is still running when `kill` lands
    spec = write_spec(tmp_path, "ctl", "slow", n_trials=40, epochs=40, task_params={"epoch_s": 0.1})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "2", log=tmp_path / "run.log")

    # kill a trial that has reported: FAIL, reason killed (never an ordinary PRUNED); its worker lives on
    victim = wait_for(lambda: running(view, "ctl", min_epochs=1), 60, "a trial with an epoch")[0]
    done = tunetui_here("kill", "ctl", str(victim), storage=url)
    assert done.returncode == 0 and f"killing trial {victim}" in done.stdout, done.stderr
    wait_for(lambda: view.trials("ctl")[victim]["state"] != "RUNNING", 10, "the killed trial to end")
    killed = view.trials("ctl")[victim]
    assert (killed["state"], killed["reason"]) == ("FAIL", "killed")
    assert tunetui_here("kill", "ctl", "999", storage=url).returncode == 2  # no such trial: bad input

    # pause: running trials finish, none starts
    paused = tunetui_here("pause", "ctl", storage=url)
    assert paused.returncode == 0 and "paused" in paused.stdout
    wait_for(lambda: not running(view, "ctl"), 30, "running trials to finish")
    count = len(view.trials("ctl"))
    # a second pause is answered by the coordinator's loop: it went round at least once while paused
    again = tunetui_here("pause", "ctl", storage=url)
    assert again.returncode == 0 and "paused" in again.stdout
    assert len(view.trials("ctl")) == count
    listing = json.loads(tunetui_here("ls", "--json", storage=url).stdout)
    assert listing[0]["status"] == "paused" and listing[0]["coordinators"][0]["pid"] == coordinator.pid

    # resume: trials start again
    assert tunetui_here("resume", "ctl", storage=url).returncode == 0
    wait_for(lambda: len(running(view, "ctl", min_epochs=1)) == 2, 30, "two trials running again")

    # stop --now: running trials are killed, the coordinator exits 0
    assert tunetui_here("stop", "ctl", "--now", storage=url).returncode == 0
    assert finish(coordinator, 30) == 0
    trials = view.trials("ctl")
    assert not running(view, "ctl")
    # the killed one, and the running ones (two, or one if the other was between trials at that instant)
    assert sum(t["reason"] == "killed" for t in trials.values()) in (2, 3)
    assert len(trials) < 40
    assert view.heartbeat("ctl")[0]["state"] == "stopped"


def test_killing_a_hung_trial_fails_it(tmp_path):
    """A trial that never reports an epoch cannot stop itself: its worker is killed; FAIL, reason killed."""
    spec = write_spec(tmp_path, "hung", "hang", n_trials=1, task_params={"mark_dir": str(tmp_path / "m")})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    wait_for(
        lambda: list((tmp_path / "m").glob("hang-*")) if (tmp_path / "m").exists() else [], 60, "the hang"
    )
    assert tunetui_here("kill", "hung", "0", storage=url).returncode == 0
    assert finish(coordinator, 30) == 0
    assert (view.trials("hung")[0]["state"], view.trials("hung")[0]["reason"]) == ("FAIL", "killed")


def test_detach_returns_at_once_and_ls_shows_the_coordinator(tmp_path):
    spec = write_spec(tmp_path, "bg", "slow", n_trials=100, epochs=10, task_params={"epoch_s": 0.05})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    began = time.monotonic()
    started = tunetui("run", str(spec), "--detach", "--workers", "1", storage=url)
    assert started.returncode == 0, started.stderr
    assert time.monotonic() - began < 15
    pid = int(started.stdout.split("pid ")[1].split()[0])
    try:
        # "started" means up: `ls` shows the coordinator at once, no waiting
        (study,) = json.loads(tunetui_here("ls", "--json", storage=url).stdout)
        assert [(c["pid"], c["alive"]) for c in study["coordinators"]] == [(pid, True)]
        assert study["status"] == "running"
        state = tmp_path / "store.state"
        assert (state / "pids" / "bg.pid").read_text().strip() == str(pid)
        assert os.getsid(pid) == pid  # its own session: closing the terminal does not reach it
        wait_for(lambda: any(t["state"] == "COMPLETE" for t in view.trials("bg").values()), 60, "a trial")
        listing = json.loads(tunetui_here("ls", "--json", storage=url).stdout)
        (coordinator,) = listing[0]["coordinators"]
        assert coordinator["pid"] == pid and coordinator["alive"] and listing[0]["status"] == "running"
        assert str(state / "logs" / "bg.log") == coordinator["log_path"]

        assert tunetui_here("stop", "bg", storage=url).returncode == 0
        wait_for(lambda: not alive(pid), 30, "the detached coordinator to exit")
        assert view.heartbeat("bg")[0]["state"] == "stopped"
        assert not running(view, "bg")
        assert "trial 0: COMPLETE" in (state / "logs" / "bg.log").read_text()

    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def test_detach_that_cannot_start_exits_1_with_the_log_tail(tmp_path):
    """The lock is held by a running coordinator: the detached one exits 1 after its imports (over a
    second), which `run --detach` must wait for and report, not call a success."""
    spec = write_spec(tmp_path, "held", "slow", n_trials=100, epochs=10, task_params={"epoch_s": 0.05})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    holder = start(spec, url, "--workers", "1", log=tmp_path / "holder.log")
    try:
        wait_for(lambda: view.heartbeat("held"), 60, "the first coordinator's heartbeat")
        began = time.monotonic()
        second = tunetui("run", str(spec), "--detach", "--workers", "1", storage=url)
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert time.monotonic() - began > 1  # it did wait for the child, whose imports alone take that
        assert "already has a running coordinator" in second.stderr  # the log's tail
        assert "exited (code 1) before it came up" in second.stderr and "started" not in second.stdout
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def _cmdline(pid: int) -> str:
    return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()


def test_detach_and_the_tui_launch_keep_the_storage_url_off_command_lines(tmp_path):
    """`ps` shows every user each command line: the URL (which may carry a password) travels in the
    environment. The run still uses the store it was given."""
    from engine.launch import RunRequest, child_argv, start_detached

    spec = write_spec(tmp_path, "quiet", "slow", n_trials=100, epochs=10, task_params={"epoch_s": 0.05})
    url, view = f"sqlite:///{tmp_path}/private-store.db", StoreView(f"sqlite:///{tmp_path}/private-store.db")
    started = tunetui("run", str(spec), "--detach", "--workers", "1", storage=url)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("pid ")[1].split()[0])
    try:
        assert "private-store" not in _cmdline(pid) and "--storage-fd" in _cmdline(pid)  # re-executed: URL on a pipe
        wait_for(lambda: view.trials("quiet"), 60, "a trial in the given store")
        assert tunetui_here("stop", "quiet", "--now", storage=url).returncode == 0
        wait_for(lambda: not alive(pid), 30, "the coordinator to exit")

        request = RunRequest(spec, workers=1)  # what the TUI's Launch screen and Study screen start
        assert not any("private-store" in part for part in child_argv(request))
        started = start_detached(request, url)
        assert started.up, started.summary()
        pid = started.pid
        assert "private-store" not in _cmdline(pid)
        assert json.loads(tunetui_here("ls", "--json", storage=url).stdout)[0]["coordinators"][0]["pid"] == pid
        assert tunetui_here("stop", "quiet", "--now", storage=url).returncode == 0
        # the TUI lives on after its coordinator ends: the child is reaped, not left as a zombie
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the ended coordinator to be reaped")
    finally:
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
