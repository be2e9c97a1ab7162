"""The store: an ordinary Optuna RDB storage plus tunetui's telemetry, control and heartbeat tables.

The modules of this package are the only code that speaks SQL or touches Optuna's tables; the CLI, the TUI
and the coordinator open a `Store` and call its methods. `Store(url)` on an Optuna journal file gives a
`JournalStore` (journal.py): the same read methods, on a reader of Optuna's journal lines (journal_log.py)."""

from engine.store.control import NO_COORDINATOR
from engine.store.errors import StoreError, StoreUrlError, explain_os_error
from engine.store.heartbeat import HEARTBEAT_FRESH_S, LIVE_STATES, study_status
from engine.store.queries import TrialRow
from engine.store.schema import EPOCH_COLUMNS
from engine.store.store import Store
from engine.store.urls import (
    journal_path,
    redact,
    redact_spec,
    resolve_url,
    sqlite_path,
    state_dir,
    state_path,
    with_driver,
    without_password,
)

__all__ = [
    "EPOCH_COLUMNS",
    "HEARTBEAT_FRESH_S",
    "LIVE_STATES",
    "NO_COORDINATOR",
    "Store",
    "StoreError",
    "StoreUrlError",
    "TrialRow",
    "explain_os_error",
    "journal_path",
    "redact",
    "redact_spec",
    "resolve_url",
    "sqlite_path",
    "state_dir",
    "state_path",
    "study_status",
    "with_driver",
    "without_password",
]
