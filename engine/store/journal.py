"""Optuna's journal file storage: the same trial rows and studies list the SQL path gives (`queries.py`), so
`ls`, `show`, `export` and the TUI read a journal as they read a database. A journal has no tunetui tables
(no telemetry, no coordinator) and is never written: tunetui runs studies only in SQLite or PostgreSQL.

The file is read by `journal_log.JournalLog`, which applies Optuna's operations as Optuna's replay does but
without its copies, and later reads only the lines appended; a line it does not know (another Optuna
release's operation, a hand-edited file) hands the file to Optuna's own `JournalStorage`, read through its
public storage API. Neither writes: `JournalFileBackend` creates a missing file and takes a lock only to
append, tunetui calls only its read methods and refuses a path that does not exist."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.objectives import pareto_front
from engine.store.connect import file_identity
from engine.store.control import NO_COORDINATOR
from engine.store.errors import StoreError, StoreUrlError
from engine.store.heartbeat import study_status
from engine.store.journal_log import STATES, JournalLog, JournalStudy, JournalTrial, NotLean
from engine.store.optuna_tables import check_optuna_version, frozen_trial_id
from engine.store.queries import TrialRow
from engine.store.urls import journal_path, resolve_url
from engine.text import safe

READ_ONLY = "tunetui opens an Optuna journal file read-only"
NOT_JOURNAL = "is not an Optuna journal file"


class JournalStore:
    """An Optuna journal file opened for reading, with the read methods of `Store` (`Store(url)` gives one
    for a `journal:///` URL or a `.log` path)."""

    is_sqlite = False
    # a big study's first read: rows, then params (most of a journal's lines are params or reported values)
    split_first_read = True

    def __init__(self, url: str | None = None, *, read_only: bool = False, create: bool = True):
        self.url = resolve_url(url)
        path = journal_path(self.url)
        if path is None:
            raise StoreUrlError(f"{self.url} is not a journal file")
        if create and not read_only:  # the coordinator's opening: it would write trials
            raise StoreUrlError(
                f"{path}: {READ_ONLY}; run studies with --storage sqlite:///PATH or postgresql://USER@HOST/DB"
            )
        if path.exists() and not path.is_file():  # a folder or a FIFO named x.log: no store, and no journal
            kind = "a folder" if path.is_dir() else "not a regular file"
            raise StoreUrlError(f"{path} is {kind}: an Optuna journal is a file of JSON lines")
        if not path.is_file():  # Optuna's backend would create it
            raise StoreError(f"no store at {path} (no such journal file)")
        if not os.access(path, os.R_OK):
            raise StoreError(f"cannot read the journal file {path} (permission denied)")
        check_optuna_version()
        self.read_only = True
        self.file = path
        self.file_identity = file_identity(path)
        self._lock = threading.RLock()  # the TUI's screens share one reader (tui/data.py), each in its thread
        self.reader: JournalLog | OptunaJournalReader = JournalLog(path)
        self._optuna_storage = None  # Optuna's JournalStorage, made only for `optuna_study`
        self.refresh()

    def refresh(self) -> None:
        """Read what was appended to the file since the last read."""
        self._step("read")

    def _step(self, step: str) -> None:
        """One of the lean reader's steps (`read`, `apply_params`, `apply_intermediate_values`); on a line it
        does not know, Optuna's own replay reads the file from the start instead."""
        with self._lock, _read_errors(self.file):
            try:
                getattr(self.reader, step)()
            except NotLean:
                self.reader = OptunaJournalReader(self.file)

    def file_lost(self) -> str | None:
        now = file_identity(self.file)
        if now == self.file_identity:
            return None
        return "deleted" if now is None else "replaced"

    def close(self) -> None:
        pass

    # ------------------------------------------------------------ what a journal cannot do
    def optuna_storage(self):
        raise StoreError(f"{self.file}: {READ_ONLY}; it cannot be changed from tunetui")

    def request(self, study_id: int, action: str, arg: str | None = None) -> int:
        raise StoreError(NO_COORDINATOR)

    def check_writable(self) -> None:
        raise StoreError(f"{self.file}: {READ_ONLY}; nothing was written")

    def set_user_attr(self, study_id: int, number: int | None, key: str, value: Any) -> None:
        self.check_writable()

    def has_table(self, table: Any) -> bool:
        return False

    def has_telemetry(self) -> bool:
        return False

    def heartbeats(self, study_id: int | None = None) -> list[dict]:
        return []

    def epochs(self, *args, **kwargs) -> list[dict]:
        return []

    steps = layers = findings = logs = epochs

    # ------------------------------------------------------------ reads
    @contextmanager
    def reading(self) -> Iterator[_Reading]:
        """One read of the journal for several questions (the TUI's poll): the appended lines read once."""
        with self._lock:
            self.refresh()
            yield _Reading(self)

    def optuna_study(self, name: str):
        """The study through Optuna's own JournalStorage (its analyses): Optuna replays the whole file."""
        import optuna

        with self._lock, _read_errors(self.file):
            if isinstance(self.reader, OptunaJournalReader):
                self._optuna_storage = self.reader.storage
            elif self._optuna_storage is None:
                self._optuna_storage = OptunaJournalReader(self.file).storage
            return optuna.load_study(study_name=name, storage=self._optuna_storage)

    def _study(self, study_id: int) -> JournalStudy | None:
        return self.reader.studies.get(study_id)

    def _trials(self, study_id: int) -> list[JournalTrial]:
        """The study's trials by number (none when the study was deleted meanwhile)."""
        with self._lock:
            self.refresh()
            return self.reader.study_trials(study_id)

    def has_optuna_tables(self) -> bool:
        return True

    def study_id(self, name: str) -> int | None:
        with self._lock:
            self.refresh()
            return next((s.study_id for s in self.reader.studies.values() if s.name == name), None)

    def directions(self, study_id: int) -> list[str]:
        study = self._study(study_id)
        return list(study.directions) if study is not None else []

    def study_attrs(self, study_id: int) -> dict[str, Any]:
        study = self._study(study_id)
        return dict(study.user_attrs) if study is not None else {}

    def studies(self) -> list[dict]:
        """Every study as `queries.studies` gives it: counts, best value (or Pareto front size), first start."""
        rows = []
        with self._lock:
            self.refresh()
            listed = list(self.reader.studies.values())
        for study in listed:
            trials = self._trials(study.study_id)
            directions = list(study.directions)
            counts: dict[str, int] = {}
            for t in trials:
                counts[STATES[t.state]] = counts.get(STATES[t.state], 0) + 1
            complete = {t.row_id: t.values for t in trials if t.state == 1 and t.values}
            starts = [t.started for t in trials if t.started is not None]
            row = {"study_id": study.study_id, "study_name": study.name, "direction": directions[0],
                   "started": datetime.fromtimestamp(min(starts)) if starts else None, "directions": directions, "counts": counts,
                   "coordinators": [], "status": study_status(counts, [])}  # fmt: skip
            if len(directions) > 1:
                row["best"], row["pareto_front"] = None, len(pareto_front(complete, directions))
            else:
                firsts = [v[0] for v in complete.values()]
                pick = max if directions[0] == "MAXIMIZE" else min
                row["best"] = pick(firsts) if firsts else None
            rows.append(row)
        return rows

    def trials(self, study_id: int, since_trial_id: int = 0) -> list[TrialRow]:
        with self._lock:
            self.refresh()
            self._step("apply_params")
            self._step("apply_intermediate_values")  # a row counts the steps its trial reported
            return [t.row for t in self.reader.study_trials(study_id) if t.row_id > since_trial_id]

    def pareto_front(self, study_id: int) -> list[TrialRow]:
        directions = self.directions(study_id)
        rows = [t for t in self.trials(study_id) if t.state == "COMPLETE" and t.values]
        front = set(pareto_front({t.trial_id: t.values for t in rows}, directions))
        return [t for t in rows if t.trial_id in front]

    def trial_attrs(self, study_id: int, number: int) -> dict[str, Any]:
        with self.reading() as reading:
            return self.trial_attrs_in(reading, study_id, number)

    # ------------------------------------------------------------ the TUI's poll, on one reading
    def changed_trials(self, reading: _Reading, study_id: int, since: int = 0, again: Sequence[int] = (),
                       params_limit: int | None = None, **_how: Any) -> list[TrialRow]:  # fmt: skip
        """The study's trials with a trial_id above `since` or in `again`, by number. With `params_limit`,
        params are read only when at most that many rows came back or they are read already (a big
        study's first paint: the rows now, their params on the next read), as `queries.trial_rows`."""
        again_set = set(again)

        def changed() -> list[JournalTrial]:
            return [t for t in reading.trials(study_id) if t.row_id > since or t.row_id in again_set]

        trials = changed()
        if (self.reader.params_pending or self.reader.values_pending) and (
            params_limit is None or len(trials) <= params_limit
        ):
            self._step("apply_params")
            self._step("apply_intermediate_values")  # a row counts the steps its trial reported
            trials = changed()  # the same records, now with params (or Optuna's, had the lean reader given up)
        return [t.row for t in trials]

    def trial_attrs_in(self, reading: _Reading, study_id: int, number: int) -> dict[str, Any]:
        trials = reading.trials(study_id)
        return dict(trials[number].user_attrs) if 0 <= number < len(trials) else {}

    def intermediate_values(self, reading: _Reading, study_id: int, numbers: Sequence[int],
                            after_step: int = -1) -> list[tuple[int, int, float]]:  # fmt: skip
        """(trial number, step, value) of what the trials reported after `after_step`, by number and step."""
        self._step("apply_intermediate_values")
        trials = reading.trials(study_id)
        out = []
        for n in sorted(set(numbers)):
            if 0 <= n < len(trials):
                out += [(n, s, v) for s, v in sorted(trials[n].intermediate_values.items()) if s > after_step]
        return out

    def attr_by_number(self, study_id: int, key: str) -> dict[int, Any]:
        return {t.number: t.user_attrs[key] for t in self._trials(study_id) if key in t.user_attrs}


class _Reading:
    """One poll's view of the journal (what `reading()` yields): read once when the poll began."""

    def __init__(self, store: JournalStore):
        self.store = store
        self._cache: dict[tuple[int, int], list[JournalTrial]] = {}

    def trials(self, study_id: int) -> list[JournalTrial]:
        key = (id(self.store.reader), study_id)  # a reader given up on mid-poll is not asked again
        if key not in self._cache:
            self._cache[key] = self.store.reader.study_trials(study_id)
        return self._cache[key]


class OptunaJournalReader:
    """The journal through Optuna's own `JournalStorage` (what `JournalLog` falls back on), as the same
    records: slow on a big file (Optuna replays it whole on open), exact for any line Optuna knows."""

    def __init__(self, path: Path):
        import optuna
        from optuna.storages.journal import JournalFileBackend

        self.storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        self.studies: dict[int, JournalStudy] = {}
        self.read()

    params_pending = values_pending = False  # Optuna's replay applies every line as it reads it

    def apply_params(self) -> None:
        pass

    apply_intermediate_values = apply_params

    def read(self) -> None:
        studies = {}
        for frozen in self.storage.get_all_studies():
            study = JournalStudy(frozen._study_id, frozen.study_name, [d.name for d in frozen.directions])
            study.user_attrs = frozen.user_attrs
            studies[study.study_id] = study
        self.studies = studies

    def study_trials(self, study_id: int) -> list[JournalTrial]:
        try:
            frozen = self.storage.get_all_trials(study_id, deepcopy=False)
        except KeyError:
            return []  # deleted meanwhile
        return [_record(t, study_id) for t in frozen]


def _record(t: Any, study_id: int) -> JournalTrial:
    """A FrozenTrial of Optuna's replay as the lean reader's record."""
    trial = JournalTrial(frozen_trial_id(t), study_id, t.number)
    trial.state, trial.values, trial.params = t.state.value, t.values, t.params
    trial.distributions, trial.user_attrs, trial.intermediate_values = (
        t.distributions,
        t.user_attrs,
        t.intermediate_values,
    )
    trial.start = t.datetime_start.timestamp() if t.datetime_start else None
    trial.complete = t.datetime_complete.timestamp() if t.datetime_complete else None
    return trial


@contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """What reading the file can raise, as one readable StoreError."""
    try:
        yield
    except (ValueError, UnicodeDecodeError) as err:
        raise StoreError(f"{path} {NOT_JOURNAL} ({_first_bad_line(path) or err})") from None
    except (AssertionError, KeyError, TypeError) as err:  # Optuna's replay of a malformed record
        raise StoreError(
            f"{path} {NOT_JOURNAL} (a record Optuna cannot replay: {type(err).__name__})"
        ) from None
    except OSError as err:
        raise StoreError(f"cannot read the journal file {path}: {err.strerror or err}") from None


def _first_bad_line(path: Path) -> str | None:
    """Where the file stops being JSON lines, for the error (json's own "line 1 column 1" counts within
    one line): 'line 9 is not JSON: garbage...'. Read only after a failure; the last line may be unfinished."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.endswith(b"\n"):
                    return None
                try:
                    json.loads(line)
                except ValueError:
                    shown = safe(line.rstrip()[:60].decode(errors="replace"))
                    return f"line {number} is not JSON: {shown!r}"
    except OSError:
        return None
    return None
