"""This host's hold on a study: the flock that makes its coordinator the only one here, and the heartbeat
that tells the CLI, the TUI and other hosts it lives.

The kernel drops an flock when its process dies, however it dies (kill -9, OOM killer): no stale lock
files. The heartbeat row (tt_heartbeat) is what other hosts see; its age decides when they take the
host's RUNNING trials for orphans (engine/run/ledger.py).
"""

from __future__ import annotations

import fcntl
import os
import re
import socket

from engine.files import private_dir
from engine.run.errors import CoordinatorError
from engine.store import Store, state_dir

HOST_ENV = "TUNETUI_HOST"


def host_name() -> str:
    """This coordinator's host name in the store: $TUNETUI_HOST, else the machine's name.

    It must be unique per machine (containers often share or randomise names: set it explicitly)."""
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


class Lease:
    def __init__(self, store: Store, study: str, host: str, started: float):
        self.store, self.study, self.host, self.started = store, study, host, started
        self.fd: int | None = None

    def acquire(self) -> None:
        """flock per (store, study, host): the store's state dir keys the store, the file name the rest."""
        locks = state_dir(self.store.url) / "locks"
        private_dir(locks)
        host = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.host)
        fd = os.open(locks / f"{self.study}@{host}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CoordinatorError(
                f"study {self.study} already has a running coordinator on host {self.host} "
                f"(pid {holder}); stop it with `tunetui stop {self.study}` or wait for it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def beat(self, study_id: int, state: str, workers: int, device: str) -> None:
        """Write this coordinator's heartbeat row: alive now, in `state`."""
        self.store.beat(study_id, self.host, pid=os.getpid(), state=state, workers=workers, device=device,
                        started=self.started, log_path=os.environ.get("TUNETUI_LOG_PATH"))  # fmt: skip
