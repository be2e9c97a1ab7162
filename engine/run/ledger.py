"""What a run decides from the study's trials and the hosts' heartbeats: budgets, orphans, grid
exhaustion and the verdict on its failures. Pure functions of what the coordinator read; no store, no
process, no clock of their own (`now` is passed in), so each rule is unit-tested in-process
(tests/run/test_ledger.py).

Budgets: each host counts its own finished trials toward its target (study attr `run_target:<host>`);
trials that did not get their chance (`orphaned`, `interrupted`) do not count. Orphans: RUNNING trials
whose coordinator is gone (docs/faults.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from optuna.trial import FrozenTrial, TrialState

from engine.progress import NOT_COUNTED, counts_toward
from engine.report import KILLED
from engine.store import LIVE_STATES

ORPHAN_STALE_S = 60.0  # another host's coordinator is dead when its heartbeat is this old
SAME_FAILURE_LIMIT = 5  # this many trials in a row failing with the same reason and message stop the run
# failures that depend on the sampled values, the user or the coordinator, not on the task alone: they
# never make a streak (a region of bad learning rates is not a broken task)
VARYING_FAILURES = frozenset({"nan_loss", "oom", "bad_config", "timeout", KILLED, *NOT_COUNTED})


def counted(trials: Iterable[FrozenTrial], host: str) -> int:
    """Finished trials of `host` that count toward its budget."""
    return sum(
        1 for t in trials if counts_toward(t.state.name, t.user_attrs.get("host"), t.user_attrs.get("fail_reason"), host)
    )


def target(done: int, stored: int | None, resume: bool, n_trials: int | None, spec_n_trials: int | None
           ) -> tuple[int, bool]:  # fmt: skip
    """(how many counted trials of this host the run aims at, whether that is a new target to store).

    A run after a crash with no --trials resumes the crashed run's stored target; any other run adds
    `--trials` (else the spec's n_trials, else 1) to what the host has `done`."""
    if resume and stored is not None and n_trials is None:
        return int(stored), False
    return done + (n_trials or spec_n_trials or 1), True


def crashed_before(heartbeats: Iterable[dict], host: str) -> bool:
    """Did the last coordinator of the study on `host` end without saying so?"""
    return any(b["host"] == host and b["state"] in (*LIVE_STATES, "crashed") for b in heartbeats)


def live_hosts(heartbeats: Iterable[dict], now: float, stale_after: float = ORPHAN_STALE_S) -> set[str]:
    """Hosts whose coordinator says it runs and beat within `stale_after` seconds."""
    return {
        b["host"] for b in heartbeats if b["state"] in LIVE_STATES and now - (b["last_seen"] or 0) < stale_after
    }


def orphans(running: Iterable[FrozenTrial], host: str, mine: set[int], live: set[str], now: datetime
            ) -> list[tuple[FrozenTrial, str]]:  # fmt: skip
    """RUNNING trials whose coordinator is gone, each with its owner's name for the failure hint.

    The caller holds `host`'s lock, so a RUNNING trial of `host` that none of its slots runs (`mine`)
    belongs to a dead coordinator. Other hosts' trials are orphans once their host is not `live`
    (generous: a live coordinator whose trial was failed must drop it). A trial asked but not yet
    labelled with a host is an orphan when it is older than ORPHAN_STALE_S, or when no other host lives."""
    found = []
    for t in running:
        owner = t.user_attrs.get("host")
        if owner == host:
            dead = t.number not in mine
        elif owner is None:
            age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
            dead = t.number not in mine and (age > ORPHAN_STALE_S or not (live - {host}))
        else:
            dead = owner not in live
        if dead:
            found.append((t, owner or "an unknown host"))
    return found


def grid_points_left(size: int | None, trials: Iterable[FrozenTrial]) -> int | None:
    """Grid points no trial has started yet (None: not a grid search, `size` None).

    Optuna's GridSampler hands out an already started point again once every point has started, so the
    coordinator must not ask beyond this (engine/space.py AskTellGridSampler)."""
    if size is None:
        return None
    started = {
        t.system_attrs["grid_id"]
        for t in trials
        if "grid_id" in t.system_attrs and (t.state.is_finished() or t.state == TrialState.RUNNING)
    }
    return max(0, size - len(started))


def to_start(target: int, done: int, running: int, grid_left: int | None) -> int:
    """How many more trials this run may start now (never below 0: `done` may pass the target)."""
    left = target - done - running
    return max(0, left if grid_left is None else min(left, grid_left))


@dataclass
class RunOutcomes:
    """How this run's trials ended: did any succeed, and how long is the streak of identical failures."""

    succeeded: int = 0
    failed: Counter = field(default_factory=Counter)  # reason -> trials
    streak: tuple[str, str] | None = None  # (reason, message) of the latest failures in a row
    streak_length: int = 0
    last_failed: int | None = None

    def ended(self, number: int, state: TrialState, reason: str | None = None, hint: str = "") -> None:
        if reason == KILLED or reason in NOT_COUNTED:
            return  # killed, interrupted or orphaned: says nothing about the task
        if state != TrialState.FAIL:
            self.succeeded += 1
            self.streak, self.streak_length = None, 0
            return
        self.failed[reason or "error"] += 1
        self.last_failed = number
        key = (reason or "error", hint)
        if reason in VARYING_FAILURES:
            self.streak, self.streak_length = None, 0
        elif key == self.streak:
            self.streak_length += 1
        else:
            self.streak, self.streak_length = key, 1

    @property
    def repeating(self) -> bool:
        return self.streak_length >= SAME_FAILURE_LIMIT

    def verdict(self, study: str) -> str | None:
        """Why this run failed as a whole, with what to do; None when it did not."""
        look = f"`tunetui show {study} --trial {self.last_failed}` shows that trial's log"
        if self.repeating:
            reason, message = self.streak
            return (f"stopped after {self.streak_length} trials in a row failed the same way ({reason}: "
                    f"{message}); more trials would fail too: fix the task or spec and run again ({look})")  # fmt: skip
        if self.failed and not self.succeeded:
            counts = ", ".join(f"{reason} {n}" for reason, n in self.failed.most_common())
            return f"every trial of this run failed ({counts}); {look}"
        return None
