"""End to end in a real terminal (tmux): start tunetui, launch the default spec, watch, kill, quit, survive."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from engine.store import Store
from tests.conftest import ROOT, STUDIES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None, reason="tmux is not installed: the real-terminal test needs it"
    ),
]


class Tmux:
    def __init__(self, name: str):
        self.name = name

    def start(self, command: str, width: int = 120, height: int = 40) -> None:
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height), command],
                       check=True)  # fmt: skip

    def keys(self, *keys: str, literal: bool = False) -> None:
        for key in keys:  # one at a time: a burst can reach the app as one read
            subprocess.run(
                ["tmux", "send-keys", "-t", self.name, *(["-l"] if literal else []), key], check=True
            )
            time.sleep(0.15)

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def capture(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return done.stdout

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture()
            if text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.capture()}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def study_rows(url: str):
    store = Store(url, read_only=True)
    try:
        sid = store.study_id("digits_mlp")
        return (store.trials(sid), store.heartbeats(sid)) if sid is not None else ([], [])
    finally:
        store.close()


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out: {what}")


def test_launch_watch_kill_quit_and_the_study_finishes(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    shutil.copy(STUDIES / "digits_mlp.toml", studies / "digits_mlp.toml")
    url = f"sqlite:///{tmp_path}/store.db"
    env = f"TUNETUI_STORAGE={url} XDG_STATE_HOME={tmp_path}/state PYTHONPATH={ROOT}"
    tunetui = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "tunetui"
    command = f"cd {tmp_path} && env {env} {tunetui if tunetui.exists() else 'python -m tui'}"
    tmux = Tmux(f"tunetui-e2e-{os.getpid()}")
    tmux.start(command)
    coordinator_pid = None
    try:
        tmux.wait_for("No study in this store yet")
        tmux.keys("n")
        tmux.wait_for("digits_mlp.toml")
        tmux.keys("Enter")
        tmux.wait_for("Launch digits_mlp.toml")
        tmux.keys("C-u")
        tmux.type("3")
        tmux.keys("Tab")
        tmux.type("1")
        tmux.keys("Tab", "C-u")
        tmux.type("cpu")
        tmux.keys("Tab", "Tab")
        tmux.type("train.epochs=150")  # trials of several seconds: time to kill one while it runs
        tmux.keys("C-l")
        tmux.wait_for("digits_mlp · running", timeout=60)
        tmux.keys("f")  # follow the newest trial
        tmux.wait_for("loss #0", timeout=90)
        screen = tmux.wait_for("⢕⢕ val", timeout=90)  # the loss plot drew trial #0's epochs (val: a braille line)
        trials, beats = study_rows(url)
        coordinator_pid = beats[0]["pid"]
        assert [t.state for t in trials] == ["RUNNING"], screen
        tmux.keys("C-k")
        tmux.wait_for("Kill trial #0?")
        tmux.keys("y")
        wait_until(lambda: any(t.number == 0 and t.state == "FAIL" for t in study_rows(url)[0]), 60,
                   "trial #0 killed")  # fmt: skip
        (tmp_path / "study-screen.txt").write_text(tmux.capture())
        tmux.keys("q")
        wait_until(lambda: not tmux.alive() or "$" in tmux.capture()[-200:], 10, "the TUI to quit")
        tmux.kill()
        _, beats = study_rows(url)
        assert beats and beats[0]["alive"] and beats[0]["state"] == "running"  # quitting left it running
        trials, beats = wait_until(
            lambda: (r := study_rows(url)) and r[1] and r[1][0]["state"] == "finished" and r,
            180,
            "the study to finish",
        )
        states = {t.number: t.state for t in trials}
        assert states[0] == "FAIL" and len(states) in (3, 4), states  # a killed trial may not count
        assert all(s == "COMPLETE" for n, s in states.items() if n != 0), (states, [(t.number, t.reason) for t in trials])
        coordinator_pid = None
    finally:
        tmux.kill()
        if coordinator_pid is not None:  # only the coordinator this test started
            try:
                os.kill(coordinator_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
