"""Optuna's own tables read as they are stored: values (+-inf kept as NULL with a value_type), params (a
categorical as an index into its choices), JSON attrs and datetimes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa


def decode_value(value: float | None, value_type: str | None) -> float | None:
    """An objective value as Optuna stored it: +-inf are NULL with a value_type."""
    if value is None and value_type in ("INF_POS", "INF_NEG"):
        return math.inf if value_type == "INF_POS" else -math.inf
    return value


def more_values(conn: sa.Connection, study_id: int, since: int = 0, ids: Sequence[int] = ()) -> dict:
    """trial_id -> {objective: value} for objectives 1.. of the study's trials newer than `since` or in `ids`."""
    out: dict[int, dict[int, float | None]] = {}
    bind = {"sid": study_id, "since": since, "ids": list(ids)}
    for tid, objective, value, value_type in conn.execute(MORE_VALUES_SQL, bind):
        out.setdefault(tid, {})[objective] = decode_value(value, value_type)
    return out


MORE_VALUES_SQL = sa.text(
    """SELECT v.trial_id, v.objective, v.value, v.value_type FROM trial_values v
       JOIN trials t ON t.trial_id = v.trial_id
       WHERE t.study_id = :sid AND v.objective > 0 AND (t.trial_id > :since OR t.trial_id IN :ids)"""
).bindparams(sa.bindparam("ids", expanding=True))


def decode_json(text: str | None) -> Any:
    """A JSON column's value; text that is not JSON comes back as it is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def parse_time(value: Any) -> float | None:
    """Optuna's datetime columns (datetime objects, or ISO text on SQLite) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.timestamp()


@lru_cache(maxsize=1024)
def _distribution(distribution_json: str) -> tuple[str, tuple]:
    dist = decode_json(distribution_json) or {}
    if not isinstance(dist, dict):
        return "", ()
    return dist.get("name", ""), tuple(dist.get("attributes", {}).get("choices", []))


def external_param(internal: float, distribution_json: str) -> Any:
    """Optuna stores a categorical param as an index into its choices; return the choice."""
    name, choices = _distribution(distribution_json)
    if name == "CategoricalDistribution":
        index = int(internal)
        return choices[index] if 0 <= index < len(choices) else internal
    if name == "IntDistribution":
        return int(internal)
    return internal
