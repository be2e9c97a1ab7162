"""Prune decisions for the median and percentile pruners without reading the store on every epoch.

`Trial.should_prune` reads the running trial back from the storage, and these pruners then read every
complete trial through Optuna's RDB cache, which re-reads all running trials on each call: two store
round trips per reported epoch, in the coordinator's one thread, which with several workers of short
epochs is where the coordinator's time goes (docs/benchmarks.md). The same pruner object is asked
instead against an in-memory study holding the complete trials' values and intermediate values, and a
copy of the running trial built from the values this coordinator reported itself.

Other pruners (successive halving, hyperband, ...) keep state in the storage's trial attributes, so they
keep Optuna's own path. Complete trials of other hosts join the copy when `refresh` runs (at each
heartbeat), so on several hosts a decision may not yet count a trial that another host finished in the
last few seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import optuna
from optuna.trial import FrozenTrial, TrialState


def supports(pruner: optuna.pruners.BasePruner) -> bool:
    """Whether `pruner` decides from complete trials' intermediate values and the trial's own alone."""
    return type(pruner) in (optuna.pruners.MedianPruner, optuna.pruners.PercentilePruner)


class PruneCopy:
    """An in-memory study of the complete trials, for asking a pruner without a store read."""

    def __init__(self, pruner: optuna.pruners.BasePruner, direction: optuna.study.StudyDirection):
        self.pruner = pruner
        self.study = optuna.create_study(direction=direction)  # in-memory storage
        self.numbers: set[int] = set()

    def add(self, number: int, value: float, intermediate_values: dict[int, float]) -> None:
        """A trial that ended COMPLETE with `value`."""
        if number in self.numbers:
            return
        self.numbers.add(number)
        self.study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.COMPLETE, value=value, intermediate_values=dict(intermediate_values)
            )
        )

    def refresh(self, trials: Iterable[FrozenTrial]) -> None:
        """Add the complete trials among `trials` not seen yet (other hosts', a previous run's)."""
        for trial in trials:
            if trial.state == TrialState.COMPLETE and trial.value is not None:
                self.add(trial.number, trial.value, trial.intermediate_values)

    def should_prune(self, number: int, intermediate_values: dict[int, float]) -> bool:
        """The pruner's answer for running trial `number` that has reported `intermediate_values`."""
        running = FrozenTrial(
            number=number, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
            datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
            intermediate_values=dict(intermediate_values), trial_id=-1,
        )  # fmt: skip
        return self.pruner.prune(self.study, running)
