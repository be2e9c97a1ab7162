"""Control requests (tt_control): the CLI and the TUI ask, every coordinator of the study claims what
concerns it and answers."""

from __future__ import annotations

import time

import sqlalchemy as sa

from engine.store.schema import tt_control

CONTROL_ACTIONS = ("stop", "stop_now", "pause", "resume", "kill")
NO_COORDINATOR = (
    "there is no tunetui coordinator for this study: the store has no tunetui tables (it was made by Optuna "
    "alone); nothing was written"
)


def request(conn: sa.Connection, study_id: int, action: str, arg: str | None = None) -> int:
    """Insert a request; its id."""
    if action not in CONTROL_ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    result = conn.execute(
        tt_control.insert().values(study_id=study_id, action=action, arg=arg, created=time.time())
    )
    return int(result.inserted_primary_key[0])


def requests_after(conn: sa.Connection, study_id: int, after_id: int = 0) -> list[dict]:
    """The study's requests with an id above `after_id`, oldest first (answered ones too: a `kill` is
    answered by the host that runs the trial, the others by every host)."""
    query = (
        sa.select(tt_control)
        .where(tt_control.c.study_id == study_id, tt_control.c.id > after_id)
        .order_by(tt_control.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def answer(conn: sa.Connection, request_id: int, host: str, result: str) -> None:
    """The first coordinator to answer sets `done` and `result`; later hosts append theirs."""
    c = tt_control.c
    suffix = f" | {host}: {result}"
    conn.execute(
        tt_control.update()
        .where(c.id == request_id)
        .values(
            done=sa.func.coalesce(c.done, time.time()),
            result=sa.case((c.done.is_(None), result), else_=sa.func.coalesce(c.result, "") + suffix),
        )
    )


def status(conn: sa.Connection, request_id: int) -> dict | None:
    """The request's row (`done` is set once a coordinator answered), or None."""
    row = conn.execute(sa.select(tt_control).where(tt_control.c.id == request_id)).first()
    return dict(row._mapping) if row else None
