"""Storage URLs: which database a command means, where its coordinators keep their files, and the URL
(or a spec holding it) fit to print, store or export, without its password."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

import sqlalchemy as sa

from engine.files import private_dir
from engine.text import hide_passwords

DEFAULT_URL = "sqlite:///.tunetui/tunetui.db"
JOURNAL = "journal:///"  # tunetui's own name for Optuna's journal file storage: journal:/// + absolute path
SQLITE_MAGIC = b"SQLite format 3\x00"


def resolve_url(url: str | None = None, base: Path | None = None) -> str:
    """The storage URL to use: explicit, else $TUNETUI_STORAGE, else the default file; sqlite paths made absolute,
    the plain PostgreSQL form bound to the driver that is installed. A bare path is an Optuna journal file
    when it ends in .log or holds journal lines (optuna-dashboard takes any existing file that is not a URL
    as one), else a SQLite file."""
    url = url or os.environ.get("TUNETUI_STORAGE") or DEFAULT_URL
    if "://" not in url:
        full = Path(url).expanduser()
        full = (full if full.is_absolute() else (base or Path.cwd()) / full).resolve()
        return f"{JOURNAL}{full}" if is_journal_file(full) else f"sqlite:///{full}"
    if url.startswith(JOURNAL):
        return url
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


def is_journal_file(path: Path) -> bool:
    """A path that names an Optuna journal file: `.log`, or a file whose first line is a journal record."""
    if path.suffix.lower() == ".log":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError:
        return False
    return head.startswith(b'{"op_code"')


def journal_path(url: str) -> Path | None:
    """The journal file a `journal:///` URL names (None for any other URL)."""
    return Path(url.removeprefix(JOURNAL)) if url.startswith(JOURNAL) else None


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return Path(path) if path and path != ":memory:" else None
    return None


def state_dir(url: str) -> Path:
    """Where logs, pid files and locks of this store's coordinators live (0700)."""
    return private_dir(state_path(url))


def state_path(url: str) -> Path:
    """`state_dir` without creating it (for readers)."""
    db = sqlite_path(url)
    if db is not None:
        path = db.parent / f"{db.stem}.state"
    else:
        digest = hashlib.sha256(without_password(url).encode()).hexdigest()[:16]  # no hash of a password
        root = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
        path = root / "tunetui" / digest
    return path


def _parsed(url: str) -> sa.engine.URL | None:
    """The URL parsed, or None where SQLAlchemy cannot parse it (callers then fall back to text rules)."""
    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return None


def password_of(url: str) -> str | None:
    parsed = _parsed(url)
    return parsed.password if parsed is not None else None


def redact(url: str) -> str:
    """A URL fit to print: the password replaced by ***; a journal file as its path."""
    if url.startswith(JOURNAL):
        return url.removeprefix(JOURNAL)
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
