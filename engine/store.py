"""The store: an ordinary Optuna RDB storage plus tunetui's telemetry, control and heartbeat tables."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from engine.files import private_dir
from engine.text import hide_passwords

DEFAULT_URL = "sqlite:///.tunetui/tunetui.db"
HEARTBEAT_FRESH_S = 15.0  # a coordinator whose last_seen is older than this is considered gone

metadata = sa.MetaData()

EPOCH_COLUMNS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "clip_frac",
    "epoch_time_s", "samples_per_s", "mem_peak_mb",
)  # fmt: skip
STEP_COLUMNS = ("epoch", "loss", "lr", "grad_norm", "clipped", "amp_scale", "skipped")

tt_epoch = sa.Table(
    "tt_epoch", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    *(sa.Column(name, sa.Float) for name in EPOCH_COLUMNS),
)  # fmt: skip
tt_step = sa.Table(
    "tt_step", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer),
    *(sa.Column(name, sa.Float) for name in STEP_COLUMNS[1:]),
)  # fmt: skip
tt_layer = sa.Table(
    "tt_layer", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("layer", sa.String(200), primary_key=True),
    sa.Column("position", sa.Integer),  # the layer's place from input to output
    sa.Column("grad_norm", sa.Float),
    sa.Column("weight_norm", sa.Float),
    sa.Column("hist_json", sa.Text),
)  # fmt: skip
tt_diagnosis = sa.Table(
    "tt_diagnosis", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("severity", sa.String(16)),
    sa.Column("evidence_json", sa.Text),
    sa.Column("remedy", sa.Text),
)  # fmt: skip
tt_control = sa.Table(
    "tt_control", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, index=True),
    sa.Column("action", sa.String(16)),
    sa.Column("arg", sa.String(200)),
    sa.Column("created", sa.Float),
    sa.Column("done", sa.Float),
    sa.Column("result", sa.Text),
)  # fmt: skip
tt_heartbeat = sa.Table(
    "tt_heartbeat", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("pid", sa.Integer),
    sa.Column("started", sa.Float),
    sa.Column("last_seen", sa.Float),
    sa.Column("state", sa.String(16)),
    sa.Column("workers", sa.Integer),
    sa.Column("device", sa.String(200)),
    sa.Column("log_path", sa.Text),
)  # fmt: skip
tt_log = sa.Table(
    "tt_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer),
    sa.Column("trial_number", sa.Integer),
    sa.Column("ts", sa.Float),
    sa.Column("line", sa.Text),
    sa.Index("ix_tt_log_trial", "study_id", "trial_number"),
)  # fmt: skip

NO_COORDINATOR = (
    "there is no tunetui coordinator for this study: the store has no tunetui tables (it was made by Optuna "
    "alone); nothing was written"
)
LIVE_STATES = ("running", "paused", "stopping")  # heartbeat states of a coordinator that has not ended
CONTROL_ACTIONS = ("stop", "stop_now", "pause", "resume", "kill")


class StoreError(Exception):
    """The store cannot be opened or read: a clear message, never a traceback."""


class StoreUrlError(StoreError):
    """The storage URL itself is unusable (unknown scheme, driver not installed): bad input, exit 2."""


def resolve_url(url: str | None = None, base: Path | None = None) -> str:
    """The storage URL to use: explicit, else $TUNETUI_STORAGE, else the default file; sqlite paths made absolute,
    the plain PostgreSQL form bound to the driver that is installed."""
    url = url or os.environ.get("TUNETUI_STORAGE") or DEFAULT_URL
    if "://" not in url:  # a bare path means a SQLite file
        url = f"sqlite:///{url}"
    url = with_driver(url)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///file:"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            full = Path(path).expanduser()
            if not full.is_absolute():
                full = (base or Path.cwd()) / full
            url = f"sqlite:///{full.resolve()}"
    return url


def with_driver(url: str) -> str:
    """`postgresql://` and `postgres://` with the psycopg2 driver tunetui installs (SQLAlchemy 2.1 would pick
    psycopg 3, which it does not); a URL naming its driver is kept as given."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg2://" + url.removeprefix(plain)
    return url


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return Path(path) if path and path != ":memory:" else None
    return None


def state_dir(url: str) -> Path:
    """Where logs, pid files and locks of this store's coordinators live (0700)."""
    db = sqlite_path(url)
    if db is not None:
        path = db.parent / f"{db.stem}.state"
    else:
        digest = hashlib.sha256(without_password(url).encode()).hexdigest()[:16]  # no hash of a password
        root = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        path = root / "tunetui" / digest
    return private_dir(path)


def _prepare_sqlite_file(db: Path) -> None:
    """Create the directory (0700) and file (0600), check it is SQLite, and switch it to WAL once."""
    try:
        private_dir(db.parent)
        if not db.exists():
            fd = os.open(db, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        elif db.is_dir():
            raise StoreError(f"{db} is a directory, not a SQLite file")
        elif not folder_writable(db.parent):
            raise StoreError(explain_sqlite(db, "readonly folder"))
    except OSError as err:
        raise StoreError(explain_os_error(err, db)) from None
    try:
        conn = sqlite3.connect(db, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA schema_version").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(explain_sqlite(db, str(err))) from None


def folder_writable(folder: Path) -> bool:
    """Whether files can be created in the folder (a read-only mount says no, to root too)."""
    return os.access(folder, os.W_OK)


def explain_sqlite(db: Path, detail: str) -> str:
    """A SQLite failure named as what it is, with what to do."""
    low = detail.lower()
    if "malformed" in low or "not a database" in low:
        return (
            f"the store {db} is corrupt ({detail}); tunetui did not change it. Restore it from a backup, or check "
            f"it with `sqlite3 {db} 'PRAGMA integrity_check'` (its `.recover` command saves what is readable)"
        )
    if "disk i/o error" in low and not _nearly_full(db.parent):
        return (
            f"the disk holding {db} reported an I/O error ({detail}): check the disk (`dmesg`) and the "
            f"store (`sqlite3 {db} 'PRAGMA integrity_check'`) before running again"
        )
    if "disk is full" in low or "disk full" in low or "disk i/o error" in low:  # I/O error with no room: full
        return (
            f"the disk holding {db} is full ({detail}): free space there (`df -h {db.parent}`) and run again; "
            "trials that finished before are kept"
        )
    if "readonly" in low or "read-only" in low or ("unable to open" in low and not folder_writable(db.parent)):
        return (
            f"the folder {db.parent} is read-only: tunetui writes the store {db.name} and its -wal/-shm files "
            "there. Pick a writable folder with --storage sqlite:///PATH (or make this one writable)"
        )
    return f"store {db}: {detail}"


def _nearly_full(folder: Path) -> bool:
    """Less than 1 MiB free where the store lives: SQLite's I/O errors there mean a full disk."""
    import shutil

    try:
        return shutil.disk_usage(folder).free < 1024 * 1024
    except OSError:
        return False


def explain_os_error(err: OSError, path: Path) -> str:
    """A file system failure (read-only folder, full disk, no permission) named, with what to do."""
    import errno

    where = Path(err.filename) if err.filename else path
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return explain_sqlite(path, f"{err.strerror}: {where}")
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        folder = where if where.is_dir() else where.parent
        return (
            f"cannot write {where} ({err.strerror}): the folder {folder} is not writable. Pick a writable "
            "folder with --storage sqlite:///PATH (or make this one writable)"
        )
    return f"cannot use {where}: {err.strerror or err}"


def _check_driver(url: str) -> None:
    """An unknown scheme or a driver that is not installed is bad input, named before anything is opened."""
    try:
        parsed = sa.engine.make_url(url)
        parsed.get_dialect().import_dbapi()
    except sa.exc.NoSuchModuleError:  # before ArgumentError, its base class
        raise StoreUrlError(f"storage URL {redact(url)}: unsupported scheme {url.split('://')[0]!r}; tunetui "
                            "stores in sqlite:///PATH or postgresql://USER@HOST/DB") from None  # fmt: skip
    except (sa.exc.ArgumentError, ValueError):
        raise StoreUrlError(f"storage URL {redact(url)} is not a valid URL: use sqlite:///PATH or "
                            "postgresql://USER@HOST/DB") from None  # fmt: skip
    except ImportError as err:
        raise StoreUrlError(
            f"storage URL {redact(url)}: its driver is not installed ({err}); install it (pip) or use "
            "sqlite:///PATH or postgresql://USER@HOST/DB (psycopg2, installed with tunetui)"
        ) from None


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Turn database driver errors into one readable StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (sa.exc.SQLAlchemyError, sqlite3.DatabaseError) as err:
        detail = str(getattr(err, "orig", None) or err).splitlines()[0]
        password = _password(url)
        if password:
            detail = detail.replace(password, "***")
        db = sqlite_path(url)
        if db is not None:
            raise StoreError(explain_sqlite(db, detail)) from None
        raise StoreError(f"store {redact(url)}: {hide_passwords(detail)}") from None


def _parsed(url: str) -> sa.engine.URL | None:
    """The URL parsed, or None where SQLAlchemy cannot parse it (callers then fall back to text rules)."""
    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return None


def _password(url: str) -> str | None:
    parsed = _parsed(url)
    return parsed.password if parsed is not None else None


def redact(url: str) -> str:
    """A URL fit to print: the password replaced by ***."""
    parsed = _parsed(url)
    return hide_passwords(url) if parsed is None else parsed.render_as_string(hide_password=True)


def without_password(url: str) -> str:
    """The URL with no password at all: what a spec may keep (libpq then reads PGPASSWORD or ~/.pgpass)."""
    parsed = _parsed(url)
    if parsed is None:
        return hide_passwords(url)
    if parsed.password is None:
        return url
    return parsed._replace(password=None).render_as_string(hide_password=False)  # URL is a NamedTuple


def redact_spec(text: str) -> str:
    """Spec text fit to store, log or export: no password in its [storage] url. The text is kept as
    written (comments included) when the URL appears in it literally, else written again from its data."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return hide_passwords(text)
    storage = data.get("storage")
    url = storage.get("url") if isinstance(storage, dict) else None
    if not isinstance(url, str) or without_password(url) == url:
        return text
    clean = without_password(url)
    if url in text:
        replaced = text.replace(url, clean)
        try:
            if tomllib.loads(replaced).get("storage", {}).get("url") == clean:
                return replaced
        except tomllib.TOMLDecodeError:
            pass
    import tomli_w

    storage["url"] = clean
    return tomli_w.dumps(data)


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
                _prepare_sqlite_file(db)
        self.file = db
        self.file_identity = _file_identity(db) if db is not None else None
        _check_driver(self.url)
        with store_errors(self.url):
            if db is not None and read_only:
                # in a read-only folder SQLite cannot make the -shm file a WAL reader needs; nobody can write
                # there either, so the file is read as immutable
                immutable = "&immutable=1" if not folder_writable(db.parent) else ""
                target = f"file:{quote(str(db))}?mode=ro{immutable}"
                self.engine = sa.create_engine(
                    "sqlite://",
                    creator=lambda: sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False),
                )
            elif self.is_sqlite:
                self.engine = sa.create_engine(self.url, connect_args={"timeout": 30})
            else:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            if create and not read_only:  # only the coordinator creates tables; viewers and control never
                with self.engine.begin() as conn:
                    if (
                        self.engine.dialect.name == "postgresql"
                    ):  # hosts starting together race to create tables
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7248517)"))
                    metadata.create_all(conn)
                    _add_missing_columns(conn)

    def file_lost(self) -> str | None:
        """What happened to the SQLite file since it was opened: None while it is the same file, else
        "deleted" or "replaced" (another file at its path). Always None for a database server."""
        if self.file_identity is None:
            return None
        now = _file_identity(self.file)
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


def _add_missing_columns(conn: sa.Connection) -> None:
    """Stores made by an older tunetui lack newer columns; create_all adds tables, not columns."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


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
