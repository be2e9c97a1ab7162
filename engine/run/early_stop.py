"""The opt-in stop when little improvement is left (`[budget] stop_when_improvement_below`): after trials
finish, the coordinator asks the estimator child (engine/terminator.py) for Optuna's terminator estimate,
off its event loop (it never waits for the answer), records each estimate as the study attr
`improvement:<host>`, and says when the run must stop."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from engine.terminator import MIN_COMPLETE, Estimate, Estimator, improvement_key, stop_verdict


class ImprovementCheck:
    def __init__(self, threshold: float, min_trials: int, host: str, log: Callable[[str], None],
                 estimator: Callable[[], Estimator] = Estimator):  # fmt: skip
        self.threshold, self.min_trials, self.host, self.log = threshold, min_trials, host, log
        self._new_estimator = estimator
        self.estimator: Estimator | None = None
        self.asked_at = -1  # finished trials counted when the last estimate was asked
        self.broken = False
        self.last_error: str | None = None  # said once, not after every trial

    def turn(self, study: optuna.Study, finished: int) -> str | None:
        """One event-loop turn: collect an answer (never waiting), ask again when trials finished since the
        last question. Returns why the run must stop, or None."""
        if self.broken:
            return None
        if self.estimator is None:  # started at once: its imports (seconds) overlap the first trials
            self.estimator = self._new_estimator()
        if self.estimator.busy:
            estimate = self.estimator.poll()
            return None if estimate is None else self._answered(study, estimate)
        if finished == self.asked_at:
            return None
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        self.asked_at = finished
        if len(complete) < MIN_COMPLETE:
            return None
        self.estimator.submit(list(complete), study.direction)
        return None

    def _answered(self, study: optuna.Study, estimate: Estimate) -> str | None:
        if estimate.improvement is None:
            if estimate.error != self.last_error:
                self.log(f"no improvement estimate ({estimate.error}); the run goes on to its budget")
            self.last_error = estimate.error
            self.broken = estimate.error == "the estimator process ended"
            return None
        study.set_user_attr(improvement_key(self.host), estimate.record())
        self.log(estimate.text())
        return stop_verdict(estimate, self.threshold, self.min_trials)

    def close(self) -> None:
        if self.estimator is not None:
            self.estimator.close()
