"""Training telemetry in the tt_* tables: written by the coordinator (one transaction per worker message),
read by the CLI, the exports and the TUI.

Reads select `*`: a store made by an older tunetui lacks columns added since (the coordinator adds them
when it next opens the store), and a viewer still reads it."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from engine.store.optuna_tables import decode_json
from engine.store.schema import (
    EPOCH_COLUMNS,
    EPOCH_KEYS,
    MAX_EXTRA_METRICS,
    MAX_METRIC_NAME,
    METRIC_COLUMNS,
    STEP_COLUMNS,
    metadata,
    tt_diagnosis,
    tt_epoch,
    tt_layer,
    tt_log,
    tt_step,
)

# ---------------------------------------------------------------- writes (the coordinator)


def write_epoch(conn: sa.Connection, study_id: int, number: int, epoch: int, metrics: dict,
                steps: Iterable[dict], layers: Iterable[dict]) -> None:  # fmt: skip
    """One epoch's metrics, steps and layers (rows of the same epoch or steps written before are replaced).
    Metrics beyond EPOCH_COLUMNS (a regression's val_rmse, an own loop's val_f1) go to `extra_json`."""
    key = {"study_id": study_id, "trial_number": number}
    row = {**key, "epoch": epoch, **{c: _num(metrics.get(c)) for c in EPOCH_COLUMNS}, "extra_json": _extra_json(metrics)}
    step_rows = [{**key, "step": int(s["step"]), **{c: _num(s.get(c)) for c in STEP_COLUMNS}} for s in steps]
    for s in step_rows:
        s["epoch"] = int(s["epoch"]) if s["epoch"] is not None else epoch
    layer_rows = [
        {
            **key,
            "epoch": epoch,
            "layer": str(layer["layer"]),
            "position": position,
            "grad_norm": _num(layer.get("grad_norm")),
            "weight_norm": _num(layer.get("weight_norm")),
            "hist_json": layer.get("hist_json"),
        }
        for position, layer in enumerate(layers)
    ]
    conn.execute(tt_epoch.delete().where(_trial(tt_epoch, study_id, number), tt_epoch.c.epoch == epoch))
    conn.execute(tt_epoch.insert(), [row])
    if step_rows:
        steps_seen = [r["step"] for r in step_rows]
        conn.execute(
            tt_step.delete().where(_trial(tt_step, study_id, number), tt_step.c.step.in_(steps_seen))
        )
        conn.execute(tt_step.insert(), step_rows)
    if layer_rows:
        conn.execute(tt_layer.delete().where(_trial(tt_layer, study_id, number), tt_layer.c.epoch == epoch))
        conn.execute(tt_layer.insert(), layer_rows)


def _extra_json(metrics: dict) -> str | None:
    extra = {}
    for name, value in metrics.items():
        name = str(name)
        if name in EPOCH_COLUMNS or name in EPOCH_KEYS or len(name) > MAX_METRIC_NAME:
            continue
        if len(extra) == MAX_EXTRA_METRICS:
            break
        extra[name] = _num(value)
    return json.dumps(extra) if extra else None  # a NaN is written as NaN, which json.loads reads back


def write_findings(conn: sa.Connection, study_id: int, number: int, findings: Iterable[dict]) -> None:
    """The trial's diagnosis findings, replacing any written before."""
    rows = [
        {
            "study_id": study_id,
            "trial_number": number,
            "kind": f["kind"],
            "severity": f.get("severity", "warning"),
            "evidence_json": json.dumps(f.get("evidence", {}), default=str),
            "remedy": f.get("remedy", ""),
        }
        for f in findings
    ]
    conn.execute(tt_diagnosis.delete().where(_trial(tt_diagnosis, study_id, number)))
    if rows:
        conn.execute(tt_diagnosis.insert(), rows)


def write_log(conn: sa.Connection, study_id: int, number: int | None, lines: Sequence[str]) -> None:
    now = time.time()
    rows = [{"study_id": study_id, "trial_number": number, "ts": now, "line": line[:2000]} for line in lines]
    conn.execute(tt_log.insert(), rows)


def delete_study(conn: sa.Connection, study_id: int, present: set[str]) -> None:
    """Every tt_* row of the study, in the tables the store has (a store made by Optuna alone has none)."""
    for table in metadata.sorted_tables:
        if table.name in present:
            conn.execute(table.delete().where(table.c.study_id == study_id))


# ---------------------------------------------------------------- reads
NOT_METRICS = frozenset((*EPOCH_COLUMNS, *EPOCH_KEYS))  # never a metric from extra_json (a hostile cell's)
# The TUI polls these several times a second: each statement is built once, with bound parameters, so a
# call costs the execution alone (building a Core statement cost more than SQLite running it).

_SID, _NUMBER, _AFTER = sa.bindparam("sid"), sa.bindparam("number"), sa.bindparam("after")
_NUMBERS = sa.bindparam("numbers", expanding=True)


def _rows_of(table: sa.Table) -> sa.Select:
    return sa.select(sa.literal_column("*")).select_from(table)


def _dicts(conn: sa.Connection, query: sa.Select, bind: dict[str, Any]) -> list[dict]:
    return [dict(r._mapping) for r in conn.execute(query, bind)]


def _trial(table: sa.Table, study_id: Any = _SID, number: Any = _NUMBER):
    return (table.c.study_id == study_id) & (table.c.trial_number == number)


@functools.cache
def _epochs_sql(by_numbers: bool) -> sa.Select:
    query = _rows_of(tt_epoch).where(tt_epoch.c.study_id == _SID, tt_epoch.c.epoch > _AFTER)
    if by_numbers:
        query = query.where(tt_epoch.c.trial_number.in_(_NUMBERS))
    return query.order_by(tt_epoch.c.trial_number, tt_epoch.c.epoch)


def epoch_rows(conn: sa.Connection, study_id: int, numbers: Sequence[int] | None = None,
               after_epoch: int = 0) -> list[dict]:  # fmt: skip
    """Epoch rows of the study (or of the trials `numbers`) after `after_epoch`, by trial and epoch."""
    bind = {"sid": study_id, "after": after_epoch, **({"numbers": list(numbers)} if numbers is not None else {})}
    rows = _dicts(conn, _epochs_sql(numbers is not None), bind)
    for row in rows:
        spread_extra(row)
    return rows


def spread_extra(row: dict) -> dict:
    """An epoch row with its `extra_json` metrics as keys of their own, beside the columns. The store is
    data: only numbers (or null) under names that are not already the row's are taken."""
    row.update(_extra_metrics(row.pop("extra_json", None), row))
    return row


def _extra_metrics(text: str | None, taken) -> dict[str, float | None]:
    """The numbers (or nulls) of an `extra_json` cell under names not in `taken`."""
    extra = decode_json(text)
    if not isinstance(extra, dict):
        return {}
    return {name: value for name, value in extra.items()
            if name not in taken and (value is None or (isinstance(value, int | float) and not isinstance(value, bool)))}  # fmt: skip


_STEPS_SQL = _rows_of(tt_step).where(_trial(tt_step), tt_step.c.step > _AFTER).order_by(tt_step.c.step)


def step_rows(conn: sa.Connection, study_id: int, number: int, after_step: int = -1) -> list[dict]:
    return _dicts(conn, _STEPS_SQL, {"sid": study_id, "number": number, "after": after_step})


@functools.cache
def _layers_sql(one_epoch: bool) -> sa.Select:
    query = _rows_of(tt_layer).where(_trial(tt_layer), tt_layer.c.epoch > _AFTER)
    if one_epoch:
        query = query.where(tt_layer.c.epoch == sa.bindparam("epoch"))
    return query.order_by(tt_layer.c.epoch, tt_layer.c.layer)


def layer_rows(conn: sa.Connection, study_id: int, number: int, epoch: int | None = None,
               after_epoch: int = 0) -> list[dict]:  # fmt: skip
    """Layer rows of one trial (one epoch, or every epoch after `after_epoch`), from input to output."""
    bind = {"sid": study_id, "number": number, "after": after_epoch, **({"epoch": epoch} if epoch is not None else {})}
    rows = _dicts(conn, _layers_sql(epoch is not None), bind)
    # `position` (the layer's place in the model) is missing from older stores: sorted here, not in SQL
    return sorted(rows, key=lambda r: (r["epoch"], r.get("position") is None, r.get("position") or 0))


_FINDINGS_SQL = _rows_of(tt_diagnosis).where(_trial(tt_diagnosis)).order_by(tt_diagnosis.c.kind)


def findings(conn: sa.Connection, study_id: int, number: int) -> list[dict]:
    """One trial's diagnosis findings, with `evidence` decoded."""
    rows = _dicts(conn, _FINDINGS_SQL, {"sid": study_id, "number": number})
    for r in rows:
        r["evidence"] = decode_json(r.pop("evidence_json")) or {}
    return rows


@functools.cache
def _log_sql(of_trial: bool) -> sa.Select:
    query = _rows_of(tt_log).where(tt_log.c.study_id == _SID, tt_log.c.id > _AFTER)
    if of_trial:
        query = query.where(tt_log.c.trial_number == _NUMBER)
    return query.order_by(tt_log.c.id.desc()).limit(sa.bindparam("limit"))


def log_rows(conn: sa.Connection, study_id: int, number: int | None = None, after_id: int = 0,
             limit: int = 50) -> list[dict]:  # fmt: skip
    """The latest `limit` log lines after `after_id` (of one trial, or of the study), oldest first."""
    bind = {"sid": study_id, "after": after_id, "limit": limit, **({"number": number} if number is not None else {})}
    return _dicts(conn, _log_sql(number is not None), bind)[::-1]


@functools.cache
def _last_epochs_sql(by_numbers: bool) -> sa.Select:
    query = sa.select(tt_epoch.c.trial_number, sa.func.max(tt_epoch.c.epoch).label("epoch"))
    query = query.where(tt_epoch.c.study_id == _SID)
    if by_numbers:
        query = query.where(tt_epoch.c.trial_number.in_(_NUMBERS))
    return query.group_by(tt_epoch.c.trial_number)


@functools.cache
def _last_epoch_rows_sql(by_numbers: bool) -> sa.Select:
    last = _last_epochs_sql(by_numbers).subquery()
    # `tt_epoch.*`: an older store has no extra_json column (see the module's docstring)
    return (sa.select(sa.literal_column("tt_epoch.*")).select_from(tt_epoch)
            .join(last, (tt_epoch.c.trial_number == last.c.trial_number) & (tt_epoch.c.epoch == last.c.epoch))
            .where(tt_epoch.c.study_id == _SID))  # fmt: skip


def last_epochs(conn: sa.Connection, study_id: int, numbers: Sequence[int] | None = None) -> dict[int, int]:
    """trial number -> its last epoch written (every trial, or those in `numbers`)."""
    bind = {"sid": study_id, **({"numbers": list(numbers)} if numbers is not None else {})}
    return dict(conn.execute(_last_epochs_sql(numbers is not None), bind).all())


def last_epoch_metrics(conn: sa.Connection, study_id: int,
                       numbers: Sequence[int] | None = None) -> dict[int, tuple[int, dict[str, float | None]]]:  # fmt: skip
    """trial number -> (its last epoch written, that epoch's reported metrics: the metric columns it has and
    every `extra_json` metric), for every trial or those in `numbers`: one read per poll for the table."""
    bind = {"sid": study_id, **({"numbers": list(numbers)} if numbers is not None else {})}
    result = conn.execute(_last_epoch_rows_sql(numbers is not None), bind)
    at = {name: i for i, name in enumerate(result.keys())}  # by position: 10,000 rows at first paint
    number_at, epoch_at, extra_at = at["trial_number"], at["epoch"], at.get("extra_json")
    columns = [(name, at[name]) for name in METRIC_COLUMNS if name in at]
    out = {}
    for row in result:
        metrics = {name: row[i] for name, i in columns if row[i] is not None}
        if extra_at is not None and row[extra_at]:
            metrics.update(_extra_metrics(row[extra_at], NOT_METRICS))
        out[row[number_at]] = (row[epoch_at], metrics)
    return out


def finding_counts(
    conn: sa.Connection, study_id: int, numbers: Sequence[int] | None = None
) -> dict[int, int]:
    """trial number -> how many diagnosis findings it has (every trial, or those in `numbers`)."""
    bind = {"sid": study_id, **({"numbers": list(numbers)} if numbers is not None else {})}
    return dict(conn.execute(_finding_counts_sql(numbers is not None), bind).all())


@functools.cache
def _finding_counts_sql(by_numbers: bool) -> sa.Select:
    query = sa.select(tt_diagnosis.c.trial_number, sa.func.count()).where(tt_diagnosis.c.study_id == _SID)
    if by_numbers:
        query = query.where(tt_diagnosis.c.trial_number.in_(_NUMBERS))
    return query.group_by(tt_diagnosis.c.trial_number)


_FINDING_TOTAL_SQL = sa.select(sa.func.count()).select_from(tt_diagnosis).where(tt_diagnosis.c.study_id == _SID)


def finding_total(conn: sa.Connection, study_id: int) -> int:
    return int(conn.execute(_FINDING_TOTAL_SQL, {"sid": study_id}).scalar_one())


_FINDING_KINDS_SQL = sa.select(tt_diagnosis.c.study_id, tt_diagnosis.c.kind, sa.func.count()).group_by(
    tt_diagnosis.c.study_id, tt_diagnosis.c.kind
)


def finding_kinds(conn: sa.Connection) -> dict[int, dict[str, int]]:
    """study id -> finding kind -> how many of its trials have it (one row per trial and kind: the key)."""
    out: dict[int, dict[str, int]] = {}
    for study_id, kind, trials in conn.execute(_FINDING_KINDS_SQL):
        out.setdefault(study_id, {})[kind] = int(trials)
    return out


# ---------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
