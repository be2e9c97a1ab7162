"""Coordinators' heartbeats (tt_heartbeat): one row per study and host, refreshed while it runs; from them
and the trial counts, a study's status."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from engine.store.schema import tt_heartbeat

HEARTBEAT_FRESH_S = 15.0  # a coordinator whose last_seen is older than this is considered gone
LIVE_STATES = ("running", "paused", "stopping")  # heartbeat states of a coordinator that has not ended


def beat(conn: sa.Connection, study_id: int, host: str, **fields: Any) -> None:
    """Create or refresh this host's heartbeat row for the study."""
    fields["last_seen"] = time.time()
    where = (tt_heartbeat.c.study_id == study_id) & (tt_heartbeat.c.host == host)
    if conn.execute(tt_heartbeat.update().where(where).values(**fields)).rowcount == 0:
        conn.execute(tt_heartbeat.insert().values(study_id=study_id, host=host, **fields))


_ALL_SQL = sa.select(tt_heartbeat)  # built once: the TUI reads heartbeats on every poll
_OF_STUDY_SQL = _ALL_SQL.where(tt_heartbeat.c.study_id == sa.bindparam("sid"))


def heartbeats(conn: sa.Connection, study_id: int | None = None) -> list[dict]:
    """The heartbeat rows (of one study, or all), each with `alive`: a working coordinator, seen lately."""
    if study_id is None:
        rows = [dict(r._mapping) for r in conn.execute(_ALL_SQL)]
    else:
        rows = [dict(r._mapping) for r in conn.execute(_OF_STUDY_SQL, {"sid": study_id})]
    now = time.time()
    for r in rows:
        # a "finished"/"stopped" row is fresh for a while too: only a working coordinator is alive
        r["alive"] = r["state"] in LIVE_STATES and now - (r["last_seen"] or 0) < HEARTBEAT_FRESH_S
    return rows


def study_status(counts: dict[str, int], coordinators: list[dict]) -> str:
    """running / paused / stopped / finished / crashed / unfinished / idle, from the heartbeat rows and the
    trial counts. A study no tunetui coordinator ever ran (Optuna alone) is `unfinished` while it has
    RUNNING trials: another process may be optimizing it, or one that died left them; nothing here knows."""
    alive = [c for c in coordinators if c.get("alive")]
    if alive:
        return "paused" if all(c["state"] == "paused" for c in alive) else "running"
    if any(c.get("state") == "stopped" for c in coordinators):
        return "stopped"
    if any(c.get("state") == "finished" for c in coordinators):
        return "finished"
    if any(c.get("state") in ("running", "paused", "crashed") for c in coordinators):
        return "crashed"
    if not counts:
        return "idle"
    return "unfinished" if counts.get("RUNNING") else "finished"
