"""tunetui's views of a study: a trial as one row (state, values, params, failure reason, telemetry counts)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.store.optuna_tables import decode_value, parse_time


@dataclass
class TrialRow:
    number: int
    trial_id: int
    state: str
    value: float | None
    params: dict[str, Any]
    started: float | None
    finished: float | None
    reason: str | None
    epochs: int
    flags: int  # diagnosis findings
    values: tuple[float | None, ...] = ()  # every objective's value; `value` is None when there are several

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


def trial_row(base: Sequence[Any], params: dict, reasons: dict, epochs: dict, flags: dict,
              more_values: dict | None = None) -> TrialRow:  # fmt: skip
    """A TrialRow from a `trials LEFT JOIN trial_values` row (trial_id, number, state, datetime_start,
    datetime_complete, value, value_type) and the per-trial lookups keyed by trial_id or number
    (`more_values`: trial_id -> {objective: value} of objectives 1.. of a multi-objective study)."""
    tid, number, state, start, complete, value, value_type = base
    value = decode_value(value, value_type)
    more = (more_values or {}).get(tid)
    values: tuple[float | None, ...] = () if value is None and value_type is None else (value,)
    if more:  # several objectives: no single value, never silently objective 0
        values = (value, *(more.get(i) for i in range(1, max(more) + 1)))
        value = None
    return TrialRow(
        number=number,
        trial_id=tid,
        state=str(state),
        value=value,
        values=values,
        params=params.get(tid, {}),
        started=parse_time(start),
        finished=parse_time(complete),
        reason=reasons.get(tid),
        epochs=int(epochs.get(number) or 0),
        flags=int(flags.get(number) or 0),
    )
