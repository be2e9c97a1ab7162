"""A run's progress toward its target and the time it still needs ("23/50 trials · ETA 4m10s"): pure
functions of the trial rows, the study attrs and the coordinators' heartbeats, shared by `tunetui show` and
the TUI's header. No store, no clock of their own (`now` is passed in)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from engine.report import duration_text

# Failure reasons that mean "this trial did not get its chance": they do not count toward the budget.
NOT_COUNTED = frozenset({"orphaned", "interrupted"})
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
MAX_TARGET = 10**9  # far above any run's (n_trials <= 1,000,000 a run)
RECENT = 10  # the ETA takes the typical duration of this many latest finished trials


def target_key(host: str) -> str:
    """The study attr that holds `host`'s target: finished trials of that host the current run aims at."""
    return f"run_target:{host}"


def counts_toward(state: str, trial_host: str | None, reason: str | None, host: str) -> bool:
    """Does this trial count toward `host`'s target? Finished there, and not orphaned or interrupted."""
    return state in FINISHED and trial_host == host and not (state == "FAIL" and reason in NOT_COUNTED)


@dataclass(frozen=True)
class RunProgress:
    done: int  # finished trials counted toward the live runs' targets
    target: int
    eta_s: float | None  # None: unknown (no trial of the run has finished yet)

    def text(self) -> str:
        return f"{self.done}/{self.target} trials · ETA {self._eta()}"

    def short(self) -> str:
        """For a one-line header, after the status: "23/50 ETA 4m10s"."""
        return f"{self.done}/{self.target} ETA {self._eta()}"

    def _eta(self) -> str:
        return "—" if self.eta_s is None else duration_text(self.eta_s)


def eta_s(left: int, durations: Sequence[float], workers: int, running_elapsed: Sequence[float] = ()
          ) -> float | None:  # fmt: skip
    """Seconds until `left` more trials (the running ones among them) finish on `workers` workers: the
    median of the recent `durations` for each trial still to run, less what the running trials have done
    already, spread over the workers the trials can use. None when no duration is known; 0 when none left."""
    if left <= 0:
        return 0.0
    if not durations or workers < 1:
        return None
    typical = median(durations)
    work = left * typical - sum(min(elapsed, typical) for elapsed in sorted(running_elapsed)[-left:])
    return max(0.0, work) / min(workers, left)


def _target(value: Any) -> int | None:
    """A run's recorded target, if it is one (store data: a bool, a string, a 400-digit number that
    overflows the ETA's float are not)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_TARGET:
        return value
    return None


def run_progress(rows: Iterable[Any], attrs: Mapping[str, Any], coordinators: Iterable[Mapping[str, Any]],
                 now: float) -> RunProgress | None:  # fmt: skip
    """The live runs' progress: each live coordinator's host, its target (`run_target:<host>`) and the
    trials that count toward it, summed over hosts. None when no run is active or no target is recorded.

    `rows` are TrialRows (state, host, reason, started, finished)."""
    workers: dict[str, int] = {}
    for beat in coordinators:
        if beat.get("alive") and _target(attrs.get(target_key(beat["host"]))) is not None:
            workers[beat["host"]] = max(1, int(beat.get("workers") or 1))
    if not workers:
        return None
    done, durations, running = 0, [], []
    for row in rows:
        if row.host not in workers:
            continue
        if counts_toward(row.state, row.host, row.reason, row.host):
            done += 1
            if row.started is not None and row.finished is not None:
                durations.append((row.finished, row.finished - row.started))
        elif row.state == "RUNNING" and row.started is not None:
            running.append(now - row.started)
    target = sum(_target(attrs[target_key(host)]) or 0 for host in workers)
    recent = [duration for _, duration in sorted(durations)[-RECENT:]]
    return RunProgress(done, target, eta_s(target - done, recent, sum(workers.values()), running))
