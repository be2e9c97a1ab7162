"""The Store: one open database, for the coordinator (read-write) or for viewers and control (never creating
a table); every read and write of the CLI, the TUI and the coordinator goes through its methods."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from engine.store.connect import check_driver, file_identity, open_engine, prepare_sqlite_file
from engine.store.errors import StoreError, store_errors
from engine.store.optuna_tables import decode_json, decode_value, external_param, more_values
from engine.store.queries import TrialRow, trial_row
from engine.store.schema import (
    EPOCH_COLUMNS,
    STEP_COLUMNS,
    ensure_schema,
    metadata,
    tt_control,
    tt_diagnosis,
    tt_epoch,
    tt_heartbeat,
    tt_layer,
    tt_log,
    tt_step,
)
from engine.store.urls import resolve_url, sqlite_path

HEARTBEAT_FRESH_S = 15.0  # a coordinator whose last_seen is older than this is considered gone
NO_COORDINATOR = (
    "there is no tunetui coordinator for this study: the store has no tunetui tables (it was made by Optuna "
    "alone); nothing was written"
)
LIVE_STATES = ("running", "paused", "stopping")  # heartbeat states of a coordinator that has not ended
CONTROL_ACTIONS = ("stop", "stop_now", "pause", "resume", "kill")


class Store:
    """One store, opened for the coordinator (read-write) or for viewers (read-only on SQLite)."""

    def __init__(self, url: str | None = None, *, read_only: bool = False, create: bool = True):
        self.url = resolve_url(url)
        self.read_only = read_only
        self._tables_seen: set[str] = set()
        db = sqlite_path(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        if db is not None:
            if read_only or not create:
                if not db.exists():
                    raise StoreError(f"no store at {db} (run a study first, or pass --storage)")
            else:
                prepare_sqlite_file(db)
        self.file = db
        self.file_identity = file_identity(db) if db is not None else None
        check_driver(self.url)
        with store_errors(self.url):
            self.engine = open_engine(self.url, db, read_only=read_only)
            if create and not read_only:  # only the coordinator creates tables; viewers and control never
                ensure_schema(self.engine)

    def file_lost(self) -> str | None:
        """What happened to the SQLite file since it was opened: None while it is the same file, else
        "deleted" or "replaced" (another file at its path). Always None for a database server."""
        if self.file_identity is None:
            return None
        now = file_identity(self.file)
        if now == self.file_identity:
            return None
        return "deleted" if now is None else "replaced"

    # ------------------------------------------------------------ optuna
    def optuna_storage(self):
        """Optuna's own RDB storage on the same URL (creates Optuna's tables when new)."""
        import optuna

        kwargs = {"connect_args": {"timeout": 30}} if self.is_sqlite else {"pool_pre_ping": True}
        with store_errors(self.url):
            return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs, skip_compatibility_check=False)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ writes (coordinator)
    def write_epoch(self, study_id: int, number: int, epoch: int, metrics: dict, steps: Iterable[dict],
                    layers: Iterable[dict]) -> None:  # fmt: skip
        """One epoch's telemetry in one transaction."""
        key = {"study_id": study_id, "trial_number": number}
        row = {**key, "epoch": epoch, **{c: _num(metrics.get(c)) for c in EPOCH_COLUMNS}}
        step_rows = [
            {**key, "step": int(s["step"]), **{c: _num(s.get(c)) for c in STEP_COLUMNS}} for s in steps
        ]
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
        with store_errors(self.url), self.engine.begin() as conn:
            conn.execute(tt_epoch.delete().where(_key(tt_epoch, study_id, number), tt_epoch.c.epoch == epoch))
            conn.execute(tt_epoch.insert(), [row])
            if step_rows:
                steps_seen = [r["step"] for r in step_rows]
                conn.execute(
                    tt_step.delete().where(_key(tt_step, study_id, number), tt_step.c.step.in_(steps_seen))
                )
                conn.execute(tt_step.insert(), step_rows)
            if layer_rows:
                conn.execute(
                    tt_layer.delete().where(_key(tt_layer, study_id, number), tt_layer.c.epoch == epoch)
                )
                conn.execute(tt_layer.insert(), layer_rows)

    def write_findings(self, study_id: int, number: int, findings: Iterable[dict]) -> None:
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
        with store_errors(self.url), self.engine.begin() as conn:
            conn.execute(tt_diagnosis.delete().where(_key(tt_diagnosis, study_id, number)))
            if rows:
                conn.execute(tt_diagnosis.insert(), rows)

    def write_log(self, study_id: int, number: int | None, lines: Iterable[str]) -> None:
        now = time.time()
        rows = [
            {"study_id": study_id, "trial_number": number, "ts": now, "line": line[:2000]} for line in lines
        ]
        if rows:
            with store_errors(self.url), self.engine.begin() as conn:
                conn.execute(tt_log.insert(), rows)

    def beat(self, study_id: int, host: str, **fields: Any) -> None:
        """Create or refresh this host's heartbeat row for the study."""
        fields["last_seen"] = time.time()
        where = (tt_heartbeat.c.study_id == study_id) & (tt_heartbeat.c.host == host)
        with store_errors(self.url), self.engine.begin() as conn:
            if conn.execute(tt_heartbeat.update().where(where).values(**fields)).rowcount == 0:
                conn.execute(tt_heartbeat.insert().values(study_id=study_id, host=host, **fields))

    # ------------------------------------------------------------ control (CLI, TUI -> coordinator)
    def request(self, study_id: int, action: str, arg: str | None = None) -> int:
        if action not in CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        if not self.has_table(tt_control):
            raise StoreError(NO_COORDINATOR)
        with store_errors(self.url), self.engine.begin() as conn:
            result = conn.execute(
                tt_control.insert().values(study_id=study_id, action=action, arg=arg, created=time.time())
            )
            return int(result.inserted_primary_key[0])

    def control_rows(self, study_id: int, after_id: int = 0) -> list[dict]:
        """The study's control requests with an id above `after_id`, oldest first (answered ones too:
        a `kill` is answered by the host that runs the trial, the others by every host)."""
        query = (
            sa.select(tt_control)
            .where(tt_control.c.study_id == study_id, tt_control.c.id > after_id)
            .order_by(tt_control.c.id)
        )
        return self._rows(query)

    def answer_request(self, request_id: int, host: str, result: str) -> None:
        """The first coordinator to answer sets `done` and `result`; later hosts append theirs."""
        c = tt_control.c
        suffix = f" | {host}: {result}"
        update = (
            tt_control.update()
            .where(c.id == request_id)
            .values(
                done=sa.func.coalesce(c.done, time.time()),
                result=sa.case((c.done.is_(None), result), else_=sa.func.coalesce(c.result, "") + suffix),
            )
        )
        with store_errors(self.url), self.engine.begin() as conn:
            conn.execute(update)

    def request_status(self, request_id: int) -> dict | None:
        rows = self._rows(sa.select(tt_control).where(tt_control.c.id == request_id))
        return rows[0] if rows else None

    # ------------------------------------------------------------ reads (CLI, TUI)
    def _rows(self, query) -> list[dict]:
        with store_errors(self.url), self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def has_table(self, table: sa.Table) -> bool:
        """Whether the store has this tunetui table: a store made by Optuna alone has none (no telemetry,
        no coordinator). Once seen it stays (tables are never dropped); until then every call looks again,
        so a viewer sees the tables a coordinator creates later."""
        if table.name not in self._tables_seen:
            with store_errors(self.url):
                present = set(sa.inspect(self.engine).get_table_names())
            self._tables_seen |= {t for t in metadata.tables if t in present}
        return table.name in self._tables_seen

    def _telemetry(self, table: sa.Table, query) -> list[dict]:
        """Rows of a tunetui table; none where the store has no such table."""
        return self._rows(query) if self.has_table(table) else []

    def has_optuna_tables(self) -> bool:
        """Optuna creates its tables one commit at a time; its version_info row is written after all of them."""
        with store_errors(self.url):
            if not sa.inspect(self.engine).has_table("version_info"):
                return False
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM version_info")).first() is not None

    def study_id(self, name: str) -> int | None:
        if not self.has_optuna_tables():
            return None
        with store_errors(self.url), self.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": name}
            ).first()
        return int(row[0]) if row else None

    def studies(self) -> list[dict]:
        """Every study: id, name, direction, trial counts by state, best value, first start, coordinator."""
        if not self.has_optuna_tables():
            return []
        sql = """
            SELECT s.study_id, s.study_name, d.direction,
                   (SELECT MIN(datetime_start) FROM trials t WHERE t.study_id = s.study_id) AS started
            FROM studies s LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0
            ORDER BY s.study_id"""
        counts_sql = "SELECT study_id, state, COUNT(*) FROM trials GROUP BY study_id, state"
        best_sql = """
            SELECT t.study_id, MAX(v.value), MIN(v.value),
                   MAX(CASE WHEN v.value_type = 'INF_POS' THEN 1 ELSE 0 END),
                   MAX(CASE WHEN v.value_type = 'INF_NEG' THEN 1 ELSE 0 END) FROM trials t
            JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
            WHERE t.state = 'COMPLETE' GROUP BY t.study_id"""
        directions_sql = "SELECT study_id, objective, direction FROM study_directions ORDER BY study_id, objective"
        with store_errors(self.url), self.engine.connect() as conn:
            studies = [dict(r._mapping) for r in conn.execute(sa.text(sql))]
            counts: dict[int, dict[str, int]] = {}
            for sid, state, n in conn.execute(sa.text(counts_sql)):
                counts.setdefault(sid, {})[str(state)] = n
            best = {  # Optuna keeps +-inf as NULL with a value_type: an infinite value is the extreme
                sid: (math.inf if pos else hi, -math.inf if neg else lo)
                for sid, hi, lo, pos, neg in conn.execute(sa.text(best_sql))
            }
            directions: dict[int, list[str]] = {}
            for sid, _, direction in conn.execute(sa.text(directions_sql)):
                directions.setdefault(sid, []).append(str(direction).upper())
            fronts = {sid: len(self._pareto(conn, sid, d)) for sid, d in directions.items() if len(d) > 1}
        beats = self.heartbeats()
        for s in studies:
            s["direction"] = str(s["direction"] or "MINIMIZE").upper()
            s["directions"] = directions.get(s["study_id"], [s["direction"]])
            s["counts"] = counts.get(s["study_id"], {})
            hi, lo = best.get(s["study_id"], (None, None))
            s["best"] = hi if s["direction"] == "MAXIMIZE" else lo
            if len(s["directions"]) > 1:  # several objectives: no single best, a Pareto front
                s["best"], s["pareto_front"] = None, fronts.get(s["study_id"], 0)
            s["coordinators"] = [b for b in beats if b["study_id"] == s["study_id"]]
            s["status"] = study_status(s["counts"], s["coordinators"])
        return studies

    def pareto_front(self, study_id: int) -> list[TrialRow]:
        """The complete trials of a multi-objective study that no other complete trial dominates."""
        directions = self.directions(study_id)
        with store_errors(self.url), self.engine.connect() as conn:
            front = set(self._pareto(conn, study_id, directions))
        return [t for t in self.trials(study_id) if t.trial_id in front]

    def study_attrs(self, study_id: int) -> dict[str, Any]:
        """The study's user attrs (spec_toml, metric, tt_identity, run targets, ...)."""
        sql = "SELECT key, value_json FROM study_user_attributes WHERE study_id = :sid"
        with store_errors(self.url), self.engine.connect() as conn:
            return {k: decode_json(v) for k, v in conn.execute(sa.text(sql), {"sid": study_id})}

    def directions(self, study_id: int) -> list[str]:
        sql = "SELECT direction FROM study_directions WHERE study_id = :sid ORDER BY objective"
        with store_errors(self.url), self.engine.connect() as conn:
            return [str(d).upper() for (d,) in conn.execute(sa.text(sql), {"sid": study_id})]

    def _pareto(self, conn: sa.Connection, study_id: int, directions: list[str]) -> list[int]:
        from engine.objectives import pareto_front

        sql = """SELECT t.trial_id, v.objective, v.value, v.value_type FROM trials t
                 JOIN trial_values v ON v.trial_id = t.trial_id WHERE t.study_id = :sid AND t.state = 'COMPLETE'"""
        points: dict[int, list[float | None]] = {}
        for tid, objective, value, value_type in conn.execute(sa.text(sql), {"sid": study_id}):
            points.setdefault(tid, [None] * len(directions))[objective] = decode_value(value, value_type)
        return pareto_front(points, directions)

    def heartbeats(self, study_id: int | None = None) -> list[dict]:
        query = sa.select(tt_heartbeat)
        if study_id is not None:
            query = query.where(tt_heartbeat.c.study_id == study_id)
        rows = self._telemetry(tt_heartbeat, query)
        now = time.time()
        for r in rows:
            # a "finished"/"stopped" row is fresh for a while too: only a working coordinator is alive
            r["alive"] = r["state"] in LIVE_STATES and now - (r["last_seen"] or 0) < HEARTBEAT_FRESH_S
        return rows

    def trials(self, study_id: int, since_trial_id: int = 0) -> list[TrialRow]:
        """Trial rows, joined with values, params, failure reason and telemetry counts."""
        sql = """
            SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete, v.value, v.value_type
            FROM trials t LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
            WHERE t.study_id = :sid AND t.trial_id > :since ORDER BY t.number"""
        params_sql = """
            SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p
            JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = :sid AND t.trial_id > :since"""
        reason_sql = """
            SELECT a.trial_id, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id
            WHERE t.study_id = :sid AND t.trial_id > :since AND a.key = 'fail_reason'"""
        epochs_sql = (
            "SELECT trial_number, MAX(epoch) FROM tt_epoch WHERE study_id = :sid GROUP BY trial_number"
        )
        flags_sql = (
            "SELECT trial_number, COUNT(*) FROM tt_diagnosis WHERE study_id = :sid GROUP BY trial_number"
        )
        bind = {"sid": study_id, "since": since_trial_id}
        with store_errors(self.url), self.engine.connect() as conn:
            base = list(conn.execute(sa.text(sql), bind))
            params: dict[int, dict[str, Any]] = {}
            for tid, name, value, dist in conn.execute(sa.text(params_sql), bind):
                params.setdefault(tid, {})[name] = external_param(value, dist)
            reasons = {tid: decode_json(v) for tid, v in conn.execute(sa.text(reason_sql), bind)}
            epochs = dict(conn.execute(sa.text(epochs_sql), bind).all()) if self.has_table(tt_epoch) else {}
            flags = dict(conn.execute(sa.text(flags_sql), bind).all()) if self.has_table(tt_diagnosis) else {}
            more = more_values(conn, study_id, since_trial_id)
        return [trial_row(row, params, reasons, epochs, flags, more) for row in base]

    def trial_attrs(self, study_id: int, number: int) -> dict[str, Any]:
        sql = """
            SELECT a.key, a.value_json FROM trial_user_attributes a JOIN trials t ON t.trial_id = a.trial_id
            WHERE t.study_id = :sid AND t.number = :n"""
        with store_errors(self.url), self.engine.connect() as conn:
            return {k: decode_json(v) for k, v in conn.execute(sa.text(sql), {"sid": study_id, "n": number})}

    def epochs(self, study_id: int, number: int | None = None, after_epoch: int = 0) -> list[dict]:
        query = sa.select(tt_epoch).where(tt_epoch.c.study_id == study_id, tt_epoch.c.epoch > after_epoch)
        if number is not None:
            query = query.where(tt_epoch.c.trial_number == number)
        return self._telemetry(tt_epoch, query.order_by(tt_epoch.c.trial_number, tt_epoch.c.epoch))

    def steps(self, study_id: int, number: int, after_step: int = -1) -> list[dict]:
        query = (
            sa.select(tt_step)
            .where(_key(tt_step, study_id, number), tt_step.c.step > after_step)
            .order_by(tt_step.c.step)
        )
        return self._telemetry(tt_step, query)

    def layers(self, study_id: int, number: int, epoch: int | None = None) -> list[dict]:
        query = sa.select(tt_layer).where(_key(tt_layer, study_id, number))
        if epoch is not None:
            query = query.where(tt_layer.c.epoch == epoch)
        return self._telemetry(tt_layer, query.order_by(tt_layer.c.epoch, tt_layer.c.position))

    def findings(self, study_id: int, number: int) -> list[dict]:
        rows = self._telemetry(tt_diagnosis, sa.select(tt_diagnosis).where(_key(tt_diagnosis, study_id, number)))
        for r in rows:
            r["evidence"] = decode_json(r.pop("evidence_json")) or {}
        return rows

    def logs(self, study_id: int, number: int | None = None, limit: int = 50) -> list[dict]:
        query = sa.select(tt_log).where(tt_log.c.study_id == study_id)
        if number is not None:
            query = query.where(tt_log.c.trial_number == number)
        rows = self._telemetry(tt_log, query.order_by(tt_log.c.id.desc()).limit(limit))
        return rows[::-1]


def study_status(counts: dict[str, int], coordinators: list[dict]) -> str:
    """running / paused / stopped / finished / idle, from the heartbeat rows and the trial counts."""
    alive = [c for c in coordinators if c.get("alive")]
    if alive:
        return "paused" if all(c["state"] == "paused" for c in alive) else "running"
    if any(c.get("state") == "stopped" for c in coordinators):
        return "stopped"
    if any(c.get("state") == "finished" for c in coordinators):
        return "finished"
    if any(c.get("state") in ("running", "paused", "crashed") for c in coordinators):
        return "crashed"
    return "idle" if not counts else "finished"


def _key(table: sa.Table, study_id: int, number: int):
    return (table.c.study_id == study_id) & (table.c.trial_number == number)


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
