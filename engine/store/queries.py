"""tunetui's views of the store: a trial as one row (state, values, params, failure reason, telemetry
counts), read by ONE query for the CLI (`ls`, `show`), the exports and the TUI; and the studies list."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.objectives import pareto_front
from engine.store import optuna_tables, telemetry
from engine.store.heartbeat import study_status
from engine.store.optuna_tables import decode_value, parse_time

BIG_IN = 500  # above this many changed trials, count telemetry over the whole study instead of an IN list


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
    host: str | None = None  # the host whose coordinator ran it (user attr `host`; none for Optuna alone)
    # its last epoch's reported metrics (tt_epoch's metric columns and extra_json's); none for Optuna alone
    metrics: dict[str, float | None] = field(default_factory=dict)
    # steps it reported with trial.report, counted only where there is no tunetui telemetry (Optuna alone):
    # what is known of its progress there, never called epochs; None where epochs are known (or not read yet)
    reported: int | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


def trial_row(base: Sequence[Any], params: dict, reasons: dict, epochs: dict, flags: dict,
              more_values: dict | None = None, hosts: dict | None = None,
              reported: dict | None = None) -> TrialRow:  # fmt: skip
    """A TrialRow from a row of `optuna_tables.trial_base_rows` (trial_id, number, state, datetime_start,
    datetime_complete, value, value_type) and the per-trial lookups keyed by trial_id or number
    (`epochs`: number -> (last epoch, its metrics); `more_values`: trial_id -> {objective: value} of
    objectives 1.. of a multi-objective study; `reported`: trial_id -> steps reported, for a study without
    telemetry)."""
    tid, number, state, start, complete, value, value_type = base
    value = decode_value(value, value_type)
    last_epoch, metrics = epochs.get(number) or (0, {})
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
        epochs=int(last_epoch or 0),
        flags=int(flags.get(number) or 0),
        host=(hosts or {}).get(tid),
        metrics=metrics,
        reported=None if reported is None else reported.get(tid, 0),
    )


def trial_rows(conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = (), *,
               several_objectives: bool = True, telemetry_tables: bool = True,
               params_limit: int | None = None) -> list[TrialRow]:  # fmt: skip
    """The study's trials with a trial_id above `since` or in `again` (since=0: every trial), by number.

    `several_objectives=False` skips the read of objectives 1.. (a study known to have one);
    `telemetry_tables=False` (a store made by Optuna alone) leaves epochs and flags at 0 and metrics empty,
    and counts each trial's reported steps instead (one grouped query, read with the params);
    with `params_limit`, params, failure reasons, hosts and metrics are read only when at most that many rows
    came back (a big study's first paint: the rows now, the rest on a later read)."""
    base = optuna_tables.trial_base_rows(conn, study_id, since, again)
    if not base:
        return []
    params: dict[int, dict[str, Any]] = {}
    reasons: dict[int, Any] = {}
    hosts: dict[int, Any] = {}
    whole = params_limit is None or len(base) <= params_limit
    if whole:
        params = optuna_tables.trial_params(conn, study_id, since, again)
        attrs = optuna_tables.trial_attrs_of(conn, study_id, ("fail_reason", "host"), since, again)
        reasons, hosts = attrs["fail_reason"], attrs["host"]
    more = optuna_tables.more_values(conn, study_id, since, again) if several_objectives else {}
    reported = optuna_tables.reported_counts(conn, study_id, since, again) if whole and not telemetry_tables else None
    epochs: dict[int, tuple[int, dict]] = {}
    flags: dict[int, int] = {}
    if telemetry_tables:
        numbers = None if since == 0 or len(base) > BIG_IN else [row[1] for row in base]
        if whole:
            epochs = telemetry.last_epoch_metrics(conn, study_id, numbers)
        else:  # the epoch counts now, the metrics (decoding them doubles the read) with the params
            epochs = {n: (last, {}) for n, last in telemetry.last_epochs(conn, study_id, numbers).items()}
        flags = telemetry.finding_counts(conn, study_id, numbers)
    return [trial_row(row, params, reasons, epochs, flags, more, hosts, reported) for row in base]


def studies(conn: sa.Connection, heartbeats: list[dict]) -> list[dict]:
    """Every study: id, name, direction(s), trial counts by state, best value (or the Pareto front's size),
    first start, its coordinators' heartbeats and its status."""
    rows = optuna_tables.study_rows(conn)
    counts = optuna_tables.trial_counts(conn)
    best = optuna_tables.value_extremes(conn)
    directions = optuna_tables.all_directions(conn)
    fronts = {sid: len(pareto_ids(conn, sid, d)) for sid, d in directions.items() if len(d) > 1}
    for s in rows:
        s["direction"] = str(s["direction"] or "MINIMIZE").upper()
        s["directions"] = directions.get(s["study_id"], [s["direction"]])
        s["counts"] = counts.get(s["study_id"], {})
        hi, lo = best.get(s["study_id"], (None, None))
        s["best"] = hi if s["direction"] == "MAXIMIZE" else lo
        if len(s["directions"]) > 1:  # several objectives: no single best, a Pareto front
            s["best"], s["pareto_front"] = None, fronts.get(s["study_id"], 0)
        s["coordinators"] = [b for b in heartbeats if b["study_id"] == s["study_id"]]
        s["status"] = study_status(s["counts"], s["coordinators"])
    return rows


def pareto_ids(conn: sa.Connection, study_id: int, directions: list[str]) -> list[int]:
    """trial_ids of the complete trials that no other complete trial dominates."""
    return pareto_front(optuna_tables.complete_values(conn, study_id, len(directions)), directions)
