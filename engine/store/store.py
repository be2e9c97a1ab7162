"""The Store: one open database, for the coordinator (read-write, the only opening that creates tables) or
for viewers and control (never creating a table); the CLI, the TUI and the coordinator call its methods."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from engine.store import control, heartbeat, optuna_tables, queries, telemetry
from engine.store.connect import check_driver, file_identity, open_engine, prepare_sqlite_file, sqlite_reader
from engine.store.errors import StoreError, store_errors
from engine.store.queries import TrialRow
from engine.store.schema import ensure_schema, metadata
from engine.store.urls import journal_path, resolve_url, sqlite_path

OPTUNA_ALONE_READ_ONLY = (
    "this store was made by Optuna alone (it has no tunetui tables): tunetui only reads it; nothing was written"
)


class Store:
    """One store, opened for the coordinator (read-write) or for viewers (read-only on SQLite).

    `Store(url)` is the coordinator's opening: it creates the file and the tt_* tables. `read_only=True`
    (viewers) and `create=False` (control requests) never create a file or a table."""

    split_first_read = True  # a big study's first read: rows, then params (Optuna's params are 2/3 of it)

    def __new__(cls, url: str | None = None, **kwargs: Any):
        """An Optuna journal file (a `.log` path) has no SQL: its reader has the same read methods."""
        if cls is Store and journal_path(resolve_url(url)) is not None:
            from engine.store.journal import JournalStore

            return JournalStore(url, **kwargs)
        return super().__new__(cls)

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
        optuna_tables.check_optuna_version()
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

    def optuna_storage(self):
        """Optuna's own RDB storage on the same URL (creates Optuna's tables when new)."""
        import optuna

        kwargs = {"connect_args": {"timeout": 30}} if self.is_sqlite else {"pool_pre_ping": True}
        with store_errors(self.url):
            return optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs, skip_compatibility_check=False)

    def optuna_study(self, name: str):
        """The study loaded through Optuna (for its analyses), on a read-only connection where the store is
        SQLite: a viewer never writes."""
        import optuna

        if self.file is not None:
            creator = sqlite_reader(self.file)
            storage = optuna.storages.RDBStorage(
                "sqlite://", engine_kwargs={"creator": creator}, skip_table_creation=True
            )
        else:
            storage = optuna.storages.RDBStorage(self.url, skip_table_creation=True)
        return optuna.load_study(study_name=name, storage=storage)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for several reads (the TUI's poll); driver errors become StoreError."""
        with store_errors(self.url), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        with store_errors(self.url), self.engine.begin() as conn:
            yield conn

    def has_table(self, table: str | sa.Table) -> bool:
        """Whether the store has this tunetui table: a store made by Optuna alone has none (no telemetry,
        no coordinator). Once seen it stays (tables are never dropped); until then every call looks again,
        so a viewer sees the tables a coordinator creates later."""
        name = table if isinstance(table, str) else table.name
        if name not in self._tables_seen:
            with store_errors(self.url):
                present = set(sa.inspect(self.engine).get_table_names())
            self._tables_seen |= {t for t in metadata.tables if t in present}
        return name in self._tables_seen

    def has_telemetry(self) -> bool:
        """Whether the store has the telemetry tables (epochs and findings): not when Optuna alone made it."""
        return self.has_table("tt_epoch") and self.has_table("tt_diagnosis")

    # ------------------------------------------------------------ writes (coordinator)
    def write_epoch(self, study_id: int, number: int, epoch: int, metrics: dict, steps: Iterable[dict],
                    layers: Iterable[dict]) -> None:  # fmt: skip
        """One epoch's telemetry in one transaction."""
        with self._writing() as conn:
            telemetry.write_epoch(conn, study_id, number, epoch, metrics, steps, layers)

    def write_findings(self, study_id: int, number: int, findings: Iterable[dict]) -> None:
        with self._writing() as conn:
            telemetry.write_findings(conn, study_id, number, findings)

    def write_log(self, study_id: int, number: int | None, lines: Iterable[str]) -> None:
        lines = list(lines)
        if lines:
            with self._writing() as conn:
                telemetry.write_log(conn, study_id, number, lines)

    def beat(self, study_id: int, host: str, **fields: Any) -> None:
        """Create or refresh this host's heartbeat row for the study."""
        with self._writing() as conn:
            heartbeat.beat(conn, study_id, host, **fields)

    def delete_telemetry(self, study_id: int) -> None:
        """Every tt_* row of the study (Optuna's rows go through optuna.delete_study)."""
        present = {t for t in metadata.tables if self.has_table(t)}
        with self._writing() as conn:
            telemetry.delete_study(conn, study_id, present)

    # ------------------------------------------------------------ the workbench's writes (notes)
    def check_writable(self) -> None:
        """Notes and enqueued trials go only to stores tunetui runs studies in: a store made by Optuna alone
        is read, never written."""
        if not self.has_table("tt_control"):
            raise StoreError(OPTUNA_ALONE_READ_ONLY)

    def set_user_attr(self, study_id: int, number: int | None, key: str, value: Any) -> None:
        """One user attr of trial `number` (None: of the study), whatever the trial's state; None removes it."""
        self.check_writable()
        with self._writing() as conn:
            if number is None:
                optuna_tables.write_user_attr(conn, "study", study_id, key, value)
                return
            trial_id = optuna_tables.trial_id(conn, study_id, number)
            if trial_id is None:
                raise StoreError(f"no trial #{number} in this study")
            optuna_tables.write_user_attr(conn, "trial", trial_id, key, value)

    # ------------------------------------------------------------ control (CLI, TUI -> coordinator)
    def request(self, study_id: int, action: str, arg: str | None = None) -> int:
        if action not in control.CONTROL_ACTIONS:
            raise ValueError(f"unknown control action {action!r}")
        if not self.has_table("tt_control"):
            raise StoreError(control.NO_COORDINATOR)
        with self._writing() as conn:
            return control.request(conn, study_id, action, arg)

    def control_rows(self, study_id: int, after_id: int = 0) -> list[dict]:
        """The study's control requests with an id above `after_id`, oldest first (answered ones too)."""
        with self.reading() as conn:
            return control.requests_after(conn, study_id, after_id)

    def answer_request(self, request_id: int, host: str, result: str) -> None:
        """The first coordinator to answer sets `done` and `result`; later hosts append theirs."""
        with self._writing() as conn:
            control.answer(conn, request_id, host, result)

    def request_status(self, request_id: int) -> dict | None:
        with self.reading() as conn:
            return control.status(conn, request_id)

    # ------------------------------------------------------------ reads (CLI, TUI)
    def has_optuna_tables(self) -> bool:
        with self.reading() as conn:
            return optuna_tables.has_tables(conn)

    def study_id(self, name: str) -> int | None:
        if not self.has_optuna_tables():
            return None
        with self.reading() as conn:
            return optuna_tables.study_id(conn, name)

    def studies(self) -> list[dict]:
        """Every study: id, name, direction, trial counts by state, best value, first start, coordinator."""
        if not self.has_optuna_tables():
            return []
        beats = self.heartbeats()
        with self.reading() as conn:
            return queries.studies(conn, beats)

    def pareto_front(self, study_id: int) -> list[TrialRow]:
        """The complete trials of a multi-objective study that no other complete trial dominates."""
        directions = self.directions(study_id)
        with self.reading() as conn:
            front = set(queries.pareto_ids(conn, study_id, directions))
        return [t for t in self.trials(study_id) if t.trial_id in front]

    def study_attrs(self, study_id: int) -> dict[str, Any]:
        """The study's user attrs (spec_toml, metric, tt_identity, run targets, ...)."""
        with self.reading() as conn:
            return optuna_tables.study_attrs(conn, study_id)

    def directions(self, study_id: int) -> list[str]:
        with self.reading() as conn:
            return optuna_tables.directions(conn, study_id)

    def heartbeats(self, study_id: int | None = None) -> list[dict]:
        if not self.has_table("tt_heartbeat"):
            return []
        with self.reading() as conn:
            return heartbeat.heartbeats(conn, study_id)

    def trials(self, study_id: int, since_trial_id: int = 0) -> list[TrialRow]:
        """Trial rows, joined with values, params, failure reason and telemetry counts."""
        has_telemetry = self.has_telemetry()
        with self.reading() as conn:
            return queries.trial_rows(conn, study_id, since_trial_id, telemetry_tables=has_telemetry)

    def trial_attrs(self, study_id: int, number: int) -> dict[str, Any]:
        with self.reading() as conn:
            return optuna_tables.trial_attrs(conn, study_id, number)

    # ------------------------------------------------------------ the TUI's poll, on one `reading()` connection
    def changed_trials(self, conn: sa.Connection, study_id: int, since: int = 0, again: Sequence[int] = (),
                       **how: Any) -> list[TrialRow]:  # fmt: skip
        """Trials with a trial_id above `since` or in `again` (`queries.trial_rows`, its options in `how`)."""
        return queries.trial_rows(conn, study_id, since, again, **how)

    def trial_attrs_in(self, conn: sa.Connection, study_id: int, number: int) -> dict[str, Any]:
        return optuna_tables.trial_attrs(conn, study_id, number)

    def intermediate_values(self, conn: sa.Connection, study_id: int, numbers: Sequence[int],
                            after_step: int = -1) -> list[tuple[int, int, float]]:  # fmt: skip
        """(trial number, step, value) of what the trials reported (`trial.report`) after `after_step`."""
        return optuna_tables.intermediate_values(conn, study_id, numbers, after_step)

    def attr_by_number(self, study_id: int, key: str) -> dict[int, Any]:
        """trial number -> one user attr (e.g. test_acc) of every trial that has it."""
        with self.reading() as conn:
            return optuna_tables.attr_by_number(conn, study_id, key)

    def epochs(self, study_id: int, number: int | None = None, after_epoch: int = 0) -> list[dict]:
        numbers: Sequence[int] | None = None if number is None else [number]
        return self._telemetry("tt_epoch", telemetry.epoch_rows, study_id, numbers, after_epoch)

    def steps(self, study_id: int, number: int, after_step: int = -1) -> list[dict]:
        return self._telemetry("tt_step", telemetry.step_rows, study_id, number, after_step)

    def layers(self, study_id: int, number: int, epoch: int | None = None) -> list[dict]:
        return self._telemetry("tt_layer", telemetry.layer_rows, study_id, number, epoch)

    def findings(self, study_id: int, number: int) -> list[dict]:
        return self._telemetry("tt_diagnosis", telemetry.findings, study_id, number)

    def finding_kinds(self) -> dict[int, dict[str, int]]:
        """Every study's finding kinds, each with how many trials have it: one grouped read for the list."""
        if not self.has_table("tt_diagnosis"):
            return {}
        with self.reading() as conn:
            return telemetry.finding_kinds(conn)

    def logs(self, study_id: int, number: int | None = None, limit: int = 50) -> list[dict]:
        return self._telemetry("tt_log", telemetry.log_rows, study_id, number, 0, limit)

    def _telemetry(self, table: str, read, *args) -> list[dict]:
        """Rows of a tunetui table; none where the store has no such table."""
        if not self.has_table(table):
            return []
        with self.reading() as conn:
            return read(conn, *args)
