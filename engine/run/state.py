"""The run's state and what a control request does to it: pure, unit-tested in tests/run/test_state.py.

running -> paused -> running (pause, resume); any -> stopping (stop, the time budget, a streak of identical
failures, a --graceful signal): running trials finish, none start; any -> stopping_now (stop --now):
running trials are killed. Nothing leaves the stopping states.
"""

from __future__ import annotations

import enum


class RunState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPING_NOW = "stopping_now"

    @property
    def stopping(self) -> bool:
        return self in (RunState.STOPPING, RunState.STOPPING_NOW)

    @property
    def heartbeat(self) -> str:
        """The state a live coordinator shows in tt_heartbeat: running, paused or stopping."""
        return "stopping" if self.stopping else self.value

    def stop(self) -> RunState:
        """Running trials finish, no new ones start (unless they are being killed already)."""
        return self if self.stopping else RunState.STOPPING

    def apply(self, action: str) -> tuple[RunState, str]:
        """(the new state, the answer written to the request) for stop, stop_now, pause and resume."""
        if action == "stop":
            return self.stop(), "stopping: running trials finish, no new ones start"
        if action == "stop_now":
            return RunState.STOPPING_NOW, "stopping now: running trials are killed"
        if action == "pause":
            new = RunState.PAUSED if self is RunState.RUNNING else self
            return new, "paused: running trials finish, no new ones start until resume"
        if action == "resume":
            new = RunState.RUNNING if self is RunState.PAUSED else self
            return new, "resumed" if new is RunState.RUNNING else f"not resumed: the study is {new.value}"
        return self, f"error: unknown action {action!r}"
