"""Optuna's own tables and private API: the one module in engine/ and tui/ that names them.

Optuna's public API reads a study one FrozenTrial at a time; a live view of a large study needs the rows of
the trials that changed since its last poll, so tunetui reads Optuna's tables in SQL, as they are stored:
values (+-inf kept as NULL with a value_type), params (a categorical as an index into its choices), JSON
attrs and datetimes. Optuna has no public way to set several user attrs in one transaction either. Both
depend on Optuna's layout, so every entry point checks the installed Optuna is one this was tested with
(`check_optuna_version`) and otherwise says so instead of reading wrong numbers."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from importlib import metadata
from typing import Any

import sqlalchemy as sa

from engine.store.errors import StoreError

SUPPORTED_OPTUNA = ((4, 5), (6, 0))  # [lowest, above): the table layout and private API read here


def check_optuna_version(version: str | None = None) -> None:
    """Refuse an Optuna release whose tables or private API this module was not written for."""
    version = version or _installed_optuna()
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    lowest, above = SUPPORTED_OPTUNA
    if not lowest <= numbers < above:
        raise StoreError(
            f"tunetui reads Optuna's tables directly and supports optuna >= {'.'.join(map(str, lowest))}, "
            f"< {'.'.join(map(str, above))}; this environment has optuna {version}. Install a supported "
            f"release: pip install 'optuna>={'.'.join(map(str, lowest))},<{'.'.join(map(str, above))}'"
        )


@lru_cache(maxsize=1)
def _installed_optuna() -> str:
    return metadata.version("optuna")  # the package metadata: no import of optuna itself (slow)


# ---------------------------------------------------------------- studies


def has_tables(conn: sa.Connection) -> bool:
    """Optuna creates its tables one commit at a time; its version_info row is written after all of them."""
    if not sa.inspect(conn).has_table("version_info"):
        return False
    return conn.execute(sa.text("SELECT 1 FROM version_info")).first() is not None


def study_id(conn: sa.Connection, name: str) -> int | None:
    row = conn.execute(sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}).first()
    return int(row[0]) if row else None


def study_rows(conn: sa.Connection) -> list[dict]:
    """Every study: study_id, study_name, direction (of objective 0), started (its first trial's start)."""
    sql = """
        SELECT s.study_id, s.study_name, d.direction,
               (SELECT MIN(datetime_start) FROM trials t WHERE t.study_id = s.study_id) AS started
        FROM studies s LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0
        ORDER BY s.study_id"""
    return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def trial_counts(conn: sa.Connection) -> dict[int, dict[str, int]]:
    """study_id -> {trial state: count}."""
    counts: dict[int, dict[str, int]] = {}
    for sid, state, n in conn.execute(
        sa.text("SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state")
    ):
        counts.setdefault(sid, {})[str(state)] = n
    return counts


def value_extremes(conn: sa.Connection) -> dict[int, tuple[float | None, float | None]]:
    """study_id -> (highest, lowest) objective-0 value of its complete trials; an infinite value is the extreme."""
    sql = """
        SELECT t.study_id, MAX(v.value), MIN(v.value),
               MAX(CASE WHEN v.value_type = 'INF_POS' THEN 1 ELSE 0 END),
               MAX(CASE WHEN v.value_type = 'INF_NEG' THEN 1 ELSE 0 END) FROM trials t
        JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
        WHERE t.state = 'COMPLETE' GROUP BY t.study_id"""
    return {  # Optuna keeps +-inf as NULL with a value_type
        sid: (math.inf if pos else hi, -math.inf if neg else lo)
        for sid, hi, lo, pos, neg in conn.execute(sa.text(sql))
    }


def all_directions(conn: sa.Connection) -> dict[int, list[str]]:
    """study_id -> its directions, one per objective (MAXIMIZE / MINIMIZE)."""
    out: dict[int, list[str]] = {}
    sql = "SELECT study_id, objective, direction FROM study_directions ORDER BY study_id, objective"
    for sid, _, direction in conn.execute(sa.text(sql)):
        out.setdefault(sid, []).append(str(direction).upper())
    return out


def directions(conn: sa.Connection, study_id: int) -> list[str]:
    sql = "SELECT direction FROM study_directions WHERE study_id = :sid ORDER BY objective"
    return [str(d).upper() for (d,) in conn.execute(sa.text(sql), {"sid": study_id})]


def study_attrs(conn: sa.Connection, study_id: int) -> dict[str, Any]:
    """The study's user attrs (spec_toml, metric, tt_identity, run targets, ...)."""
    sql = "SELECT key, value_json FROM study_user_attributes WHERE study_id = :sid"
    return {k: decode_json(v) for k, v in conn.execute(sa.text(sql), {"sid": study_id})}


def complete_values(conn: sa.Connection, study_id: int, objectives: int) -> dict[int, list[float | None]]:
    """trial_id -> every objective's value, for the study's complete trials."""
    sql = """SELECT t.trial_id, v.objective, v.value, v.value_type FROM trials t
             JOIN trial_values v ON v.trial_id = t.trial_id WHERE t.study_id = :sid AND t.state = 'COMPLETE'"""
    points: dict[int, list[float | None]] = {}
    for tid, objective, value, value_type in conn.execute(sa.text(sql), {"sid": study_id}):
        points.setdefault(tid, [None] * objectives)[objective] = decode_value(value, value_type)
    return points


# ---------------------------------------------------------------- trials
# "Changed" trials: the study's trials with a trial_id above `since` (new) or in `again` (re-read, e.g.
# still running). since=0 and no `again`: every trial.

_AGAIN = sa.bindparam("again", expanding=True)
_CHANGED = "t.study_id = :sid AND (t.trial_id > :since OR t.trial_id IN :again)"
TRIALS_SQL = sa.text(
    f"""SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete, v.value, v.value_type
        FROM trials t LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
        WHERE {_CHANGED} ORDER BY t.number"""
).bindparams(_AGAIN)
PARAMS_SQL = sa.text(
    f"""SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p
        JOIN trials t ON t.trial_id = p.trial_id WHERE {_CHANGED}"""
).bindparams(_AGAIN)
ATTR_SQL = sa.text(
    f"""SELECT a.key, a.trial_id, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id
        WHERE {_CHANGED} AND a.key IN :keys"""
).bindparams(_AGAIN, sa.bindparam("keys", expanding=True))
MORE_VALUES_SQL = sa.text(
    f"""SELECT v.trial_id, v.objective, v.value, v.value_type FROM trial_values v
        JOIN trials t ON t.trial_id = v.trial_id WHERE {_CHANGED} AND v.objective > 0"""
).bindparams(_AGAIN)


def _changed(study_id: int, since: int, again: Sequence[int]) -> dict[str, Any]:
    return {"sid": study_id, "since": since, "again": list(again)}


def trial_base_rows(conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = ()) -> list:
    """(trial_id, number, state, datetime_start, datetime_complete, value, value_type) of objective 0, by number."""
    return conn.execute(TRIALS_SQL, _changed(study_id, since, again)).all()


def trial_params(conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = ()) -> dict:
    """trial_id -> {param name: value as the user gave it}."""
    params: dict[int, dict[str, Any]] = {}
    for tid, name, value, dist in conn.execute(
        PARAMS_SQL, _changed(study_id, since, again)
    ).all():  # fetchall: 2x a row loop
        params.setdefault(tid, {})[name] = external_param(value, dist)
    return params


def trial_attrs_of(
    conn: sa.Connection, study_id: int, keys: Sequence[str], since: int = 0, again: Sequence[int] = ()
) -> dict[str, dict]:
    """key -> trial_id -> the value of a few user attrs (e.g. fail_reason, host) in one read, for the trials
    that have them."""
    found: dict[str, dict] = {key: {} for key in keys}
    for key, tid, value in conn.execute(ATTR_SQL, {**_changed(study_id, since, again), "keys": list(keys)}):
        found[key][tid] = decode_json(value)
    return found


def more_values(conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = ()) -> dict:
    """trial_id -> {objective: value} for objectives 1.. of a multi-objective study."""
    out: dict[int, dict[int, float | None]] = {}
    for tid, objective, value, value_type in conn.execute(MORE_VALUES_SQL, _changed(study_id, since, again)):
        out.setdefault(tid, {})[objective] = decode_value(value, value_type)
    return out


REPORTED_SQL = sa.text(
    f"""SELECT i.trial_id, COUNT(*) FROM trial_intermediate_values i JOIN trials t ON t.trial_id = i.trial_id
        WHERE {_CHANGED} GROUP BY i.trial_id"""
).bindparams(_AGAIN)


def reported_counts(conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = ()) -> dict:
    """trial_id -> how many steps the trial reported (`trial.report`), for the trials that reported any."""
    return dict(conn.execute(REPORTED_SQL, _changed(study_id, since, again)).all())


INTERMEDIATE_SQL = sa.text(
    """SELECT t.number, i.step, i.intermediate_value, i.intermediate_value_type FROM trial_intermediate_values i
       JOIN trials t ON t.trial_id = i.trial_id
       WHERE t.study_id = :sid AND t.number IN :numbers AND i.step > :after ORDER BY t.number, i.step"""
).bindparams(sa.bindparam("numbers", expanding=True))


def intermediate_values(conn: sa.Connection, study_id: int, numbers: Sequence[int], after_step: int = -1) -> list:
    """(trial number, step, value) of what the trials reported (`trial.report`) after `after_step`."""
    if not numbers:
        return []
    bind = {"sid": study_id, "numbers": list(numbers), "after": after_step}
    return [(n, step, decode_value(v, kind)) for n, step, v, kind in conn.execute(INTERMEDIATE_SQL, bind)]


def trial_attrs(conn: sa.Connection, study_id: int, number: int) -> dict[str, Any]:
    """Every user attr of one trial."""
    sql = """SELECT a.key, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id
             WHERE t.study_id = :sid AND t.number = :n"""
    return {k: decode_json(v) for k, v in conn.execute(sa.text(sql), {"sid": study_id, "n": number})}


def attr_by_number(conn: sa.Connection, study_id: int, key: str) -> dict[int, Any]:
    """trial number -> one user attr of every trial that has it."""
    sql = """SELECT t.number, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id
             WHERE t.study_id = :sid AND a.key = :key"""
    return {n: decode_json(v) for n, v in conn.execute(sa.text(sql), {"sid": study_id, "key": key})}


# ---------------------------------------------------------------- user attrs written by the workbench
# Optuna refuses to set a user attr of a finished trial (UpdateFinishedTrialError), but a note belongs on
# exactly those: the row is written here, as Optuna writes it (JSON text, one row per trial or study and key).

_ATTR_TABLES = {  # owner -> (table, owner column)
    "trial": ("trial_user_attributes", "trial_id"),
    "study": ("study_user_attributes", "study_id"),
}


def trial_id(conn: sa.Connection, study_id: int, number: int) -> int | None:
    sql = "SELECT trial_id FROM trials WHERE study_id = :sid AND number = :n"
    row = conn.execute(sa.text(sql), {"sid": study_id, "n": number}).first()
    return int(row[0]) if row else None


def write_user_attr(conn: sa.Connection, owner: str, owner_id: int, key: str, value: Any) -> None:
    """Set (or with None, remove) one user attr of a trial (`owner` "trial", a trial_id) or a study ("study",
    a study_id), in the caller's transaction, whatever the trial's state."""
    check_optuna_version()
    table, column = _ATTR_TABLES[owner]
    bind = {"id": owner_id, "key": key, "value": json.dumps(value)}
    if value is None:
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = :id AND key = :key"), bind)
        return
    where = f"{column} = :id AND key = :key"
    if conn.execute(sa.text(f"UPDATE {table} SET value_json = :value WHERE {where}"), bind).rowcount == 0:
        conn.execute(sa.text(f"INSERT INTO {table} ({column}, key, value_json) VALUES (:id, :key, :value)"), bind)


# ---------------------------------------------------------------- Optuna's private API (the coordinator)


def set_trial_user_attrs(study: Any, trial: Any, attrs: dict[str, Any]) -> None:
    """Set several user attrs of a trial in one transaction (one fsync instead of one per key). `trial`: the
    optuna.Trial this process holds (its `user_attrs` then show them too) or a FrozenTrial of the study."""
    if not attrs:
        return
    check_optuna_version()
    trial_id = trial._trial_id
    storage = study._storage
    backend = getattr(storage, "_backend", storage)  # RDBStorage behind Optuna's cache
    try:  # Optuna's RDB storage has no public batch setter; fall back to one call per key
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        write = backend._set_trial_attr_without_commit
        sessions = backend.scoped_session
    except (ImportError, AttributeError):
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial_id, key, value)
    else:
        with _create_scoped_session(sessions, True) as session:
            for key, value in attrs.items():
                write(session, models.TrialUserAttributeModel, trial_id, key, value)
    cached = getattr(trial, "_cached_frozen_trial", None)  # what an optuna.Trial's user_attrs reads
    if cached is not None:
        cached.user_attrs.update(attrs)


def fail_trial(study: Any, trial: Any) -> None:
    """FAIL a trial (an optuna.Trial or a FrozenTrial of the study), raising UpdateFinishedTrialError when
    another process finished it first; unlike `study.tell`, it logs nothing."""
    from optuna.trial import TrialState

    check_optuna_version()
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def study_storage(study: Any) -> Any:
    """A study's storage object (private in Optuna), which `get_all_artifact_meta` needs for a FrozenTrial."""
    return study._storage


def frozen_trial_id(trial: Any) -> int:
    """The storage's id of a FrozenTrial (private in Optuna: no public attribute holds it); a journal
    numbers its trials across studies in creation order, as the RDB storage does."""
    return trial._trial_id


# ---------------------------------------------------------------- how Optuna stores values


def decode_value(value: float | None, value_type: str | None) -> float | None:
    """An objective or intermediate value as Optuna stored it: +-inf (and an intermediate NaN) are NULL with
    a value_type."""
    if value is None and value_type in ("INF_POS", "INF_NEG"):
        return math.inf if value_type == "INF_POS" else -math.inf
    if value is None and value_type == "NAN":
        return math.nan
    return value


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
