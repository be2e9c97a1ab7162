"""The run's bookkeeping rules, in-process: budgets, orphans, grid exhaustion, the verdict on failures.
Trials are Optuna's own FrozenTrials (optuna.trial.create_trial); no store, no process."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from optuna.trial import TrialState, create_trial

from engine.report import KILLED
from engine.run import ledger
from engine.run.ledger import RunOutcomes

NOW = datetime(2026, 11, 28, 12, 0, 0)


def trial(number: int, state: TrialState, host: str | None = "here", reason: str | None = None,
          started: datetime | None = NOW, grid_id: int | None = None):  # fmt: skip
    attrs = {k: v for k, v in (("host", host), ("fail_reason", reason)) if v is not None}
    made = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None, user_attrs=attrs,
                        system_attrs={} if grid_id is None else {"grid_id": grid_id})  # fmt: skip
    made.number, made.datetime_start = number, started
    return made


def beat(host: str, state: str = "running", age: float = 1.0, now: float = 1000.0) -> dict:
    return {"host": host, "state": state, "last_seen": now - age}


def test_a_host_counts_its_own_finished_trials_but_not_orphaned_or_interrupted_ones():
    trials = [
        trial(0, TrialState.COMPLETE), trial(1, TrialState.PRUNED), trial(2, TrialState.FAIL, reason="oom"),
        trial(3, TrialState.FAIL, reason="orphaned"), trial(4, TrialState.FAIL, reason="interrupted"),
        trial(5, TrialState.RUNNING), trial(6, TrialState.COMPLETE, host="there"), trial(7, TrialState.WAITING),
    ]  # fmt: skip
    assert ledger.counted(trials, "here") == 3
    assert ledger.counted(trials, "there") == 1


@pytest.mark.parametrize(
    ("stored", "resume", "n_trials", "spec_n_trials", "expected"),
    [
        (9, True, None, 5, (9, False)),  # after a crash, without --trials: the crashed run's target
        (9, True, 2, 5, (6, True)),  # --trials given: adds to what is done
        (9, False, None, 5, (9, True)),  # a clean rerun adds the spec's budget
        (None, True, None, 5, (9, True)),  # a crash before any target was stored
        (None, False, None, None, (5, True)),  # no budget anywhere: one trial
    ],
    ids=["resume", "trials-given", "rerun", "nothing-stored", "no-budget"],
)
def test_the_target_resumes_a_crashed_run_or_adds_this_runs_trials(stored, resume, n_trials, spec_n_trials,
                                                                   expected):  # fmt: skip
    done = 4
    assert ledger.target(done, stored, resume, n_trials, spec_n_trials) == expected


def test_a_host_crashed_when_its_last_heartbeat_never_said_it_ended():
    assert ledger.crashed_before([beat("here", "running")], "here")
    assert ledger.crashed_before([beat("here", "crashed")], "here")
    assert not ledger.crashed_before([beat("here", "finished"), beat("there", "running")], "here")
    assert not ledger.crashed_before([], "here")


def test_a_host_lives_while_it_says_so_and_its_heartbeat_is_fresh():
    beats = [beat("fresh", age=5), beat("stale", age=61), beat("ended", "finished", age=1),
             beat("paused", "paused", age=59), beat("never", age=float("inf"))]  # fmt: skip
    assert ledger.live_hosts(beats, now=1000.0) == {"fresh", "paused"}
    assert ledger.live_hosts([{"host": "null", "state": "running", "last_seen": None}], now=10.0) == {"null"}


def test_orphans_are_running_trials_whose_coordinator_is_gone():
    young, old = NOW - timedelta(seconds=5), NOW - timedelta(seconds=ledger.ORPHAN_STALE_S + 1)
    running = [
        trial(0, TrialState.RUNNING, host="here"),  # ours, no slot runs it: a dead coordinator of this host
        trial(1, TrialState.RUNNING, host="here"),  # ours and running in a slot
        trial(2, TrialState.RUNNING, host="alive"),
        trial(3, TrialState.RUNNING, host="dead"),
        trial(4, TrialState.RUNNING, host=None, started=young),  # being labelled by a live host right now
        trial(5, TrialState.RUNNING, host=None, started=old),
        trial(6, TrialState.RUNNING, host=None, started=None),
    ]
    found = ledger.orphans(running, "here", mine={1}, live={"here", "alive"}, now=NOW)
    assert [(t.number, owner) for t, owner in found] == [(0, "here"), (3, "dead"), (5, "an unknown host")]
    # with no other host alive, an unlabelled trial can only be a dead coordinator's of ours
    alone = ledger.orphans(running[4:], "here", mine=set(), live={"here"}, now=NOW)
    assert [t.number for t, _ in alone] == [4, 5, 6]


def test_grid_points_left_counts_points_no_trial_has_started():
    trials = [trial(0, TrialState.COMPLETE, grid_id=0), trial(1, TrialState.RUNNING, grid_id=1),
              trial(2, TrialState.FAIL, grid_id=1), trial(3, TrialState.WAITING, grid_id=2),
              trial(4, TrialState.COMPLETE)]  # fmt: skip
    assert ledger.grid_points_left(4, trials) == 2  # points 0 and 1 started; 2 only waits
    assert ledger.grid_points_left(2, trials) == 0
    assert ledger.grid_points_left(None, trials) is None  # not a grid search


def test_trials_to_start_stay_within_the_budget_and_the_grid():
    assert ledger.to_start(target=10, done=4, running=2, grid_left=None) == 4
    assert ledger.to_start(target=10, done=4, running=2, grid_left=1) == 1
    assert ledger.to_start(target=5, done=4, running=2, grid_left=None) == 0  # a slice bound: never negative
    assert ledger.to_start(target=5, done=6, running=0, grid_left=3) == 0


def test_five_identical_failures_in_a_row_stop_the_run_with_what_to_do():
    outcomes = RunOutcomes()
    for n in range(ledger.SAME_FAILURE_LIMIT):
        assert not outcomes.repeating
        outcomes.ended(n, TrialState.FAIL, "error", "ModuleNotFoundError: no_such_module")
    assert outcomes.repeating
    verdict = outcomes.verdict("noimport")
    assert verdict.startswith("stopped after 5 trials in a row failed the same way (error: ModuleNotFound")
    assert "fix the task or spec and run again" in verdict and "`tunetui show noimport --trial 4`" in verdict


def test_a_success_or_another_message_breaks_the_streak():
    outcomes = RunOutcomes()
    for n in range(4):
        outcomes.ended(n, TrialState.FAIL, "error", "same")
    outcomes.ended(4, TrialState.COMPLETE)
    for n in range(5, 9):
        outcomes.ended(n, TrialState.FAIL, "error", "same")
    outcomes.ended(9, TrialState.FAIL, "error", "other")
    assert not outcomes.repeating and outcomes.verdict("s") is None  # a trial succeeded: the run did not fail


def test_failures_that_depend_on_the_sampled_values_never_make_a_streak():
    outcomes = RunOutcomes()
    for n in range(10):
        outcomes.ended(n, TrialState.FAIL, "nan_loss", "loss is nan")
    assert not outcomes.repeating
    assert outcomes.verdict("s").startswith("every trial of this run failed (nan_loss 10)")


def test_a_run_whose_trials_all_fail_differently_fails_without_a_streak():
    outcomes = RunOutcomes()
    for n in range(7):
        outcomes.ended(n, TrialState.FAIL, "error", f"ValueError: knob {n / 10!r} is not supported")
    assert not outcomes.repeating
    assert outcomes.verdict("varying") == (
        "every trial of this run failed (error 7); `tunetui show varying --trial 6` shows that trial's log"
    )


def test_killed_interrupted_and_orphaned_trials_say_nothing_about_the_task():
    outcomes = RunOutcomes()
    for n, reason in enumerate([KILLED, "interrupted", "orphaned"] * 3):
        outcomes.ended(n, TrialState.FAIL, reason, "same")
    assert not outcomes.repeating and outcomes.verdict("s") is None
