"""Keeping the storage URL (and its password) away from user tasks, which run in the coordinator's workers.

A task can read its own environment and argv, and /proc/<coordinator>/{environ,cmdline}. So the coordinator
re-executes itself with the URL on an inherited pipe (never in its argv or environment), makes itself
non-dumpable (a same-user process can then neither read its /proc memory files nor attach a debugger),
and starts workers with an environment and argv scrubbed of the URL and of PostgreSQL password variables.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

STORAGE_ENV = "TUNETUI_STORAGE"
# variables libpq (psycopg2) reads a password or its file from: the coordinator may need them, tasks never
PASSWORD_ENV = ("PGPASSWORD", "PGPASSFILE", "PGSERVICEFILE")
PR_SET_DUMPABLE = 4


def reexec_hiding_url(argv: list[str], storage: str | None) -> None:
    """Replace this process (same pid, terminal and session) by `engine.cli` with `argv` minus every
    `--storage`/`--storage-from-env` and with no $TUNETUI_STORAGE; the URLs travel on a pipe named by
    `--storage-fd`. Returns only if there is nothing to hide."""
    env_url = os.environ.get(STORAGE_ENV)
    passwords = {key: os.environ[key] for key in PASSWORD_ENV if key in os.environ}
    if not storage and not env_url and not passwords:
        return
    read_end, write_end = os.pipe()
    os.write(write_end, json.dumps({"storage": storage, "env": env_url, "passwords": passwords}).encode())
    os.close(write_end)
    os.set_inheritable(read_end, True)
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV and k not in passwords}
    env["PYTHONPATH"] = python_path(env)
    sys.stdout.flush()
    sys.stderr.flush()
    args = [sys.executable, "-m", "engine.cli", *without_storage(argv), "--storage-fd", str(read_end)]
    os.execve(sys.executable, args, env)


def python_path(env: Mapping[str, str] = os.environ) -> str:
    """$PYTHONPATH for a child that runs this checkout's `engine`: the checkout first, then what the
    environment already had (a site folder of extra packages on a GPU machine, say)."""
    root = str(Path(__file__).resolve().parent.parent)
    return os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))


def without_storage(argv: list[str]) -> list[str]:
    """argv without `--storage URL`, `--storage=URL` (or an abbreviation argparse accepts) and
    `--storage-from-env`."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        name, sep, _ = token.partition("=")
        if token == "--storage-from-env":
            continue
        if len(name) >= 5 and "--storage".startswith(name):
            skip = not sep  # the value is the next token
            continue
        out.append(token)
    return out


def read_url_pipe(fd: int) -> dict[str, str | None]:
    """What reexec_hiding_url sent: {"storage": explicit URL or None, "env": $TUNETUI_STORAGE or None}.
    libpq's password variables go back into os.environ (setenv keeps them out of /proc/<pid>/environ,
    which shows only the environment the process was started with)."""
    with os.fdopen(fd, "rb") as pipe:
        sent = json.loads(pipe.read() or b"{}")
    os.environ.update(sent.get("passwords") or {})
    return sent


def no_dump() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): /proc/<pid>/environ, mem, maps ... become root's and ptrace (py-spy,
    gdb) is refused to same-user processes. /proc/<pid>/cmdline stays world-readable (hence the re-exec).
    False where it is not available."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def secrets_of(url: str) -> list[str]:
    """The strings a task must not see: the URL, its password, and for SQLite the file's path."""
    found = [url]
    try:
        parts = urlsplit(url)
        if parts.password:
            found.append(parts.password)
    except ValueError:
        pass
    if url.startswith("sqlite:///"):
        found.append(url.removeprefix("sqlite:///"))
    return [s for s in found if s]


def scrubbed(values: dict[str, str], url: str) -> dict[str, str]:
    """A worker's environment: without $TUNETUI_STORAGE, libpq's password variables and any variable
    holding the URL, its password or its SQLite path."""
    secrets = secrets_of(url)
    return {
        key: value
        for key, value in values.items()
        if key != STORAGE_ENV and key not in PASSWORD_ENV and not any(s in value for s in secrets)
    }


def scrubbed_argv(argv: list[str], url: str) -> list[str]:
    """argv as a worker may see it (multiprocessing copies the parent's sys.argv into each worker)."""
    secrets = secrets_of(url)
    return [("***" if any(s in item for s in secrets) else item) for item in without_storage(argv)]
