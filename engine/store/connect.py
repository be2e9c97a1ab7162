"""Opening the database: a new SQLite file made private and switched to WAL, the URL's driver checked, and
the file's identity (to notice it deleted or replaced under a running study)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from engine.files import private_dir
from engine.store.errors import StoreError, StoreUrlError, explain_os_error, explain_sqlite, folder_writable
from engine.store.urls import redact


def prepare_sqlite_file(db: Path) -> None:
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


def check_driver(url: str) -> None:
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


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def sqlite_reader(db: Path) -> Callable[[], sqlite3.Connection]:
    """A function opening a read-only connection to the SQLite file (a viewer's: it never writes)."""
    # in a read-only folder SQLite cannot make the -shm file a WAL reader needs; nobody can write there
    # either, so the file is read as immutable
    immutable = "&immutable=1" if not folder_writable(db.parent) else ""
    target = f"file:{quote(str(db))}?mode=ro{immutable}"
    return lambda: sqlite3.connect(target, uri=True, timeout=30, check_same_thread=False)


def open_engine(url: str, db: Path | None, *, read_only: bool) -> sa.Engine:
    """The SQLAlchemy engine: a read-only connection for viewers of a SQLite file, else a pooled one."""
    if db is not None and read_only:
        return sa.create_engine("sqlite://", creator=sqlite_reader(db))
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True)


def fast_sqlite_commits(engine: sa.Engine) -> None:
    """synchronous=NORMAL on this engine's SQLite connections (no-op for other databases): the coordinator's
    engines, which commit ~20 times per trial.

    In WAL mode NORMAL never corrupts the file and loses nothing when a process dies (kill -9): only a
    power cut or kernel crash may roll back the last commits. It saves an fsync per commit (~3 ms here,
    ~20 commits per trial)."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_tunetui_fast", False):
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine._tunetui_fast = True
    engine.dispose()  # pooled connections were opened before the listener: reopen them with it
