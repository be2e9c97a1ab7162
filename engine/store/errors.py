"""Store failures as one readable StoreError: what went wrong with the database or its folder, and what to do."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from engine.store.urls import password_of, redact, sqlite_path
from engine.text import hide_passwords


class StoreError(Exception):
    """The store cannot be opened or read: a clear message, never a traceback."""


class StoreUrlError(StoreError):
    """The storage URL itself is unusable (unknown scheme, driver not installed): bad input, exit 2."""


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
    try:
        return shutil.disk_usage(folder).free < 1024 * 1024
    except OSError:
        return False


def explain_os_error(err: OSError, path: Path) -> str:
    """A file system failure (read-only folder, full disk, no permission) named, with what to do."""
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


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Turn database driver errors into one readable StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (sa.exc.SQLAlchemyError, sqlite3.DatabaseError) as err:
        detail = str(getattr(err, "orig", None) or err).splitlines()[0]
        password = password_of(url)
        if password:
            detail = detail.replace(password, "***")
        db = sqlite_path(url)
        if db is not None:
            raise StoreError(explain_sqlite(db, detail)) from None
        raise StoreError(f"store {redact(url)}: {hide_passwords(detail)}") from None
