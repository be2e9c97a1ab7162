"""What control requests do to a run's state (engine/run/state.py), in-process."""

from __future__ import annotations

import pytest

from engine.run.state import RunState

R, P, S, N = RunState.RUNNING, RunState.PAUSED, RunState.STOPPING, RunState.STOPPING_NOW


@pytest.mark.parametrize(
    ("state", "action", "after"),
    [
        (R, "pause", P), (P, "resume", R), (R, "resume", R), (S, "pause", S), (S, "resume", S),
        (R, "stop", S), (P, "stop", S), (N, "stop", N), (R, "stop_now", N), (S, "stop_now", N), (P, "stop_now", N),
    ],
)  # fmt: skip
def test_transitions(state, action, after):
    assert state.apply(action)[0] is after


def test_answers_say_what_happened():
    assert R.apply("stop")[1] == "stopping: running trials finish, no new ones start"
    assert R.apply("stop_now")[1] == "stopping now: running trials are killed"
    assert R.apply("pause")[1] == "paused: running trials finish, no new ones start until resume"
    assert P.apply("resume")[1] == "resumed"
    assert N.apply("resume")[1] == "not resumed: the study is stopping_now"
    assert R.apply("reboot") == (R, "error: unknown action 'reboot'")


def test_the_heartbeat_shows_running_paused_or_stopping():
    assert [s.heartbeat for s in RunState] == ["running", "paused", "stopping", "stopping"]
    assert [s.stopping for s in RunState] == [False, False, True, True]
