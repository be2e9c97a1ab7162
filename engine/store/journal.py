"""Optuna's journal file storage, read through Optuna's own storage API: the same trial rows and studies list
the SQL path gives (`queries.py`), so `ls`, `show`, `export` and the TUI read a journal as they read a
database. A journal has no tunetui tables (no telemetry, no coordinator) and is never written: tunetui runs
studies only in SQLite or PostgreSQL.

`JournalFileBackend` creates a missing file and takes a lock only to append, and `JournalStorage` reads
the file on open and on each read after the last line it has seen; tunetui calls only Optuna's read
methods and refuses a path that does not exist, so the file and its folder are left as they were."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from engine.objectives import pareto_front
from engine.store.connect import file_identity
from engine.store.control import NO_COORDINATOR
from engine.store.errors import StoreError, StoreUrlError
from engine.store.heartbeat import study_status
from engine.store.optuna_tables import check_optuna_version, frozen_trial_id
from engine.store.queries import TrialRow
from engine.store.urls import journal_path, resolve_url

READ_ONLY = "tunetui opens an Optuna journal file read-only"


class JournalStore:
    """An Optuna journal file opened for reading, with the read methods of `Store` (`Store(url)` gives one
    for a `journal:///` URL or a `.log` path)."""

    is_sqlite = False
    split_first_read = False  # params come with each trial: no rows-then-params first read

    def __init__(self, url: str | None = None, *, read_only: bool = False, create: bool = True):
        self.url = resolve_url(url)
        path = journal_path(self.url)
        if path is None:
            raise StoreUrlError(f"{self.url} is not a journal file")
        if create and not read_only:  # the coordinator's opening: it would write trials
            raise StoreUrlError(
                f"{path}: {READ_ONLY}; run studies with --storage sqlite:///PATH or postgresql://USER@HOST/DB"
            )
        if not path.is_file():  # Optuna's backend would create it
            raise StoreError(f"no store at {path} (no such journal file)")
        if not os.access(path, os.R_OK):
            raise StoreError(f"cannot read the journal file {path} (permission denied)")
        check_optuna_version()
        import optuna
        from optuna.storages.journal import JournalFileBackend

        self.read_only = True
        self.file = path
        self.file_identity = file_identity(path)
        try:
            self.storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except (ValueError, UnicodeDecodeError) as err:
            raise StoreError(f"{path} is not an Optuna journal file ({err})") from None
        except OSError as err:
            raise StoreError(f"cannot read the journal file {path}: {err.strerror or err}") from None

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
        """One read of the journal for several questions (the TUI's poll): each study's trials read once."""
        yield _Reading(self)

    def optuna_study(self, name: str):
        import optuna

        return optuna.load_study(study_name=name, storage=self.storage)

    def _trials(self, study_id: int) -> list:
        try:
            return self.storage.get_all_trials(study_id, deepcopy=False)
        except (ValueError, UnicodeDecodeError) as err:
            raise StoreError(f"{self.file}: a line is not an Optuna journal record ({err})") from None
        except KeyError:
            return []  # the study was deleted meanwhile

    def has_optuna_tables(self) -> bool:
        return True

    def study_id(self, name: str) -> int | None:
        try:
            return self.storage.get_study_id_from_name(name)
        except KeyError:
            return None

    def directions(self, study_id: int) -> list[str]:
        return [d.name for d in self.storage.get_study_directions(study_id)]

    def study_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self.storage.get_study_user_attrs(study_id))

    def studies(self) -> list[dict]:
        """Every study as `queries.studies` gives it: counts, best value (or Pareto front size), first start."""
        rows = []
        for study in self.storage.get_all_studies():
            sid = self.study_id(study.study_name)
            if sid is None:
                continue
            trials = self._trials(sid)
            directions = [d.name for d in study.directions]
            counts: dict[str, int] = {}
            for t in trials:
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
            complete = {_row_id(t): t.values for t in trials if t.state.name == "COMPLETE" and t.values}
            starts = [t.datetime_start for t in trials if t.datetime_start is not None]
            row = {"study_id": sid, "study_name": study.study_name, "direction": directions[0],
                   "started": min(starts) if starts else None, "directions": directions, "counts": counts,
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
        return [trial_row(t) for t in self._trials(study_id) if _row_id(t) > since_trial_id]

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
                       **_how: Any) -> list[TrialRow]:  # fmt: skip
        """The study's trials with a trial_id above `since` or in `again`, by number (params included)."""
        again_set = set(again)
        rows = []
        for t in reading.trials(study_id):
            tid = _row_id(t)
            if tid > since or tid in again_set:
                rows.append(trial_row(t, tid))
        return rows

    def trial_attrs_in(self, reading: _Reading, study_id: int, number: int) -> dict[str, Any]:
        for t in reading.trials(study_id):
            if t.number == number:
                return dict(t.user_attrs)
        return {}

    def intermediate_values(self, reading: _Reading, study_id: int, numbers: Sequence[int],
                            after_step: int = -1) -> list[tuple[int, int, float]]:  # fmt: skip
        """(trial number, step, value) of what the trials reported after `after_step`, by number and step."""
        wanted = set(numbers)
        out = []
        for t in reading.trials(study_id):
            if t.number in wanted:
                out += [(t.number, s, v) for s, v in sorted(t.intermediate_values.items()) if s > after_step]
        return out

    def attr_by_number(self, study_id: int, key: str) -> dict[int, Any]:
        return {t.number: t.user_attrs[key] for t in self._trials(study_id) if key in t.user_attrs}


class _Reading:
    """One poll's view of the journal: each study's trials read once (what `reading()` yields)."""

    def __init__(self, store: JournalStore):
        self.store = store
        self._cache: dict[int, list] = {}

    def trials(self, study_id: int) -> list:
        if study_id not in self._cache:
            self._cache[study_id] = self.store._trials(study_id)
        return self._cache[study_id]


def _row_id(t: Any) -> int:
    """A journal numbers its trials from 0, a database from 1, and "above 0" means every trial to the
    readers (`since=0`): the row id is the journal's id + 1."""
    return frozen_trial_id(t) + 1


def trial_row(t: Any, trial_id: int | None = None) -> TrialRow:
    """A TrialRow from a FrozenTrial: the same fields `queries.trial_row` reads from the tables."""
    values = tuple(t.values) if t.values is not None else ()
    return TrialRow(
        number=t.number,
        trial_id=_row_id(t) if trial_id is None else trial_id,
        state=t.state.name,
        value=values[0] if len(values) == 1 else None,
        values=values,
        params=dict(t.params),
        started=t.datetime_start.timestamp() if t.datetime_start else None,
        finished=t.datetime_complete.timestamp() if t.datetime_complete else None,
        reason=t.user_attrs.get("fail_reason"),
        epochs=0,
        flags=0,
        host=t.user_attrs.get("host"),
    )
