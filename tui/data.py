"""Read-only store queries for the TUI: incremental polling of one study, the studies list, spec files."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.store import Store, StoreError, TrialRow, journal_path, redact, sqlite_path
from engine.store import telemetry as tt
from engine.store.heartbeat import study_status
from engine.store.optuna_tables import decode_json

UNFINISHED = ("RUNNING", "WAITING")
FIRST_PAINT_ROWS = 2000  # a first read bigger than this comes in two polls: rows, then their params
LOG_LINES = 200  # the latest log lines of the trial shown
ATTRS_EVERY_S = 5.0  # while a coordinator runs, its study attrs (the terminator's estimate) are read this often


_journals: dict[str, Store] = {}
_journals_lock = threading.Lock()


def open_store(url: str) -> Store | None:
    """A read-only store (a database, or an Optuna journal file), or None while its file does not exist yet.

    A journal is read whole when it is opened, then only the lines appended: every screen shares one reader
    per journal (its reads hold its own lock; closing it is a no-op)."""
    db = sqlite_path(url) or journal_path(url)
    if db is not None and not db.exists():
        return None
    if journal_path(url) is None:
        return Store(url, read_only=True)
    with _journals_lock:
        if url not in _journals:
            _journals[url] = Store(url, read_only=True)
        return _journals[url]


def list_studies(store: Store | None) -> list[dict]:
    """Every study with its counts, best value, status and the device of its latest coordinator."""
    if store is None:
        return []
    studies = store.studies()
    for s in studies:
        s["status"] = study_status(s["counts"], s["coordinators"])
        beats = sorted(s["coordinators"], key=lambda b: b.get("last_seen") or 0)
        s["device"] = beats[-1]["device"] if beats and beats[-1].get("device") else ""
        s["started_text"] = format_started(s.get("started"))
    return studies


def short_path(path: str | Path) -> str:
    """A path as the user would type it: relative under the working folder, ~ under home."""
    path = Path(path)
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            rel = path.resolve().relative_to(base.resolve())
        except ValueError:
            continue
        return prefix + str(rel) if str(rel) != "." else (prefix or ".")
    return str(path)


def short_url(url: str) -> str:
    """A storage URL fit for a title: SQLite and journal files as short paths, passwords hidden."""
    db = sqlite_path(url) or journal_path(url)
    return short_path(db) if db is not None else redact(url)


def format_started(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)[:16]


def spec_files(studies_dir: str | Path) -> list[Path]:
    root = Path(studies_dir)
    return sorted(root.glob("*.toml")) if root.is_dir() else []


def delete_study(url: str, name: str) -> None:
    """Delete a study: Optuna's rows through optuna.delete_study, then our tt_* rows of its id."""
    import optuna

    store = Store(url, create=False)  # deleting rows creates no table
    try:
        study_id = store.study_id(name)
        if study_id is None:
            raise StoreError(f"no study named {name!r}")
        if any(b["alive"] for b in store.heartbeats(study_id)):
            raise StoreError(f"{name} is running; stop it first (x on its screen)")
        optuna.delete_study(study_name=name, storage=store.optuna_storage())
        store.delete_telemetry(study_id)
    finally:
        store.close()


def param_importances(store: Store, name: str, max_trials: int = 2000) -> dict[str, float]:
    """fANOVA importances over the latest complete trials (capped: the forest grows with the trial count)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = store.optuna_study(name)
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(trials) > max_trials:
        memory = optuna.create_study(directions=study.directions)
        memory.add_trials(trials[-max_trials:])
        study = memory
    return optuna.importance.get_param_importances(study)


# ---------------------------------------------------------------- one study, polled incrementally


@dataclass(frozen=True)
class Want:
    """What the Study screen shows now; the watcher fetches telemetry for these trials only."""

    curves: tuple[int, ...] = ()  # trials whose epoch rows are plotted
    steps: int | None = None  # the trial whose step rows are plotted
    detail: int | None = None  # the trial whose attrs, findings, layers and log lines are shown


@dataclass
class TrialDetail:
    number: int
    attrs: dict[str, Any]
    findings: list[dict]


@dataclass
class StudyDelta:
    """What changed in one study since the previous poll."""

    name: str
    study_id: int | None = None  # None while the study does not exist (yet)
    direction: str = "MAXIMIZE"
    directions: list[str] = field(default_factory=lambda: ["MAXIMIZE"])  # one per objective
    status: str = "waiting"
    coordinators: list[dict] = field(default_factory=list)
    user_attrs: dict[str, Any] | None = None  # sent first, then when a coordinator starts or ends
    trials: list[TrialRow] = field(default_factory=list)  # new or changed rows
    epochs: dict[int, list[dict]] = field(default_factory=dict)
    steps: dict[int, list[dict]] = field(default_factory=dict)
    layers: dict[int, list[dict]] = field(default_factory=dict)
    logs: dict[int, list[dict]] = field(default_factory=dict)
    details: list[TrialDetail] = field(default_factory=list)
    first: bool = False  # the first delta with trial rows: the whole study
    partial: bool = False  # rows without params (a big study's first read): poll again at once
    reported: bool = False  # the curves' rows are what trial.report wrote: no tunetui telemetry (Optuna alone)
    elapsed_s: float = 0.0  # time spent querying
    polled_at: float = 0.0  # when it was read (time.time()): the "now" of the run's ETA

    @property
    def empty(self) -> bool:
        return not (self.trials or self.epochs or self.steps or self.layers or self.logs or self.details
                    or self.user_attrs is not None or self.first)  # fmt: skip


class StudyWatcher:
    """Polls one study, fetching only rows newer than it has (and re-reading trials still running)."""

    def __init__(self, url: str, name: str):
        self.url = url
        self.name = name
        self.store: Store | None = None
        self.study_id: int | None = None
        self.direction = "MAXIMIZE"
        self.directions = ["MAXIMIZE"]
        self.telemetry = False
        self.max_trial_id = 0
        self.unfinished: dict[int, int] = {}  # trial_id -> number
        self.state: dict[int, str] = {}  # number -> state
        self.ids: dict[int, int] = {}  # number -> trial_id
        self.flags: dict[int, int] = {}  # number -> findings count
        self.sig: dict[int, tuple] = {}  # number -> what the table shows of it, to send only changes
        self.params_missing = False
        self.diag_count = -1
        self.epoch_cursor: dict[int, int] = {}
        self.step_cursor: dict[int, int] = {}
        self.layer_cursor: dict[int, int] = {}
        self.log_cursor: dict[int, int] = {}
        self.detail_for: int | None = None
        self.steps_for: int | None = None
        self.counts: dict[str, int] = {}
        self.runs: tuple = ()  # (host, started, state) of each coordinator, as the study attrs were read
        self.attrs_read_at = 0.0

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def poll(self, want: Want) -> StudyDelta:
        start = time.perf_counter()
        delta = StudyDelta(name=self.name, polled_at=time.time())
        if self.store is None:
            self.store = open_store(self.url)
            if self.store is None:
                return delta
        store = self.store
        if self.study_id is None:
            self.study_id = store.study_id(self.name)
            if self.study_id is None:
                return delta
            self.directions = store.directions(self.study_id) or ["MINIMIZE"]
            self.direction = self.directions[0]
            delta.user_attrs = store.study_attrs(self.study_id)
            delta.first = True
        sid = self.study_id
        delta.study_id, delta.direction, delta.directions = sid, self.direction, self.directions
        # a store made by Optuna alone has no tunetui table: its trials, without telemetry
        self.telemetry = store.has_telemetry()
        with store.reading() as conn:
            diag = tt.finding_total(conn, sid) if self.telemetry else 0
            diag_changed = diag != self.diag_count
            extra: list[int] = []
            if diag_changed and self.diag_count >= 0:
                # findings land when a trial ends: re-read the trials whose flag count moved
                flags = tt.finding_counts(conn, sid)
                extra = [self.ids[n] for n, c in flags.items() if n in self.ids and self.flags.get(n, 0) != c]
            self.diag_count = diag
            delta.trials = self._trials(conn, sid, extra, delta)
            changed_numbers = {r.number for r in delta.trials}
            self._epochs(conn, sid, want, delta, changed_numbers)
            if want.steps is not None and self.telemetry:
                self._steps(conn, sid, want.steps, delta, changed_numbers)
            if want.detail is not None:
                self._detail(conn, sid, want.detail, delta, changed_numbers, diag_changed)
        if delta.trials or not self.counts:
            self.counts = {}
            for state in self.state.values():
                self.counts[state] = self.counts.get(state, 0) + 1
        delta.coordinators = store.heartbeats(sid)
        runs = tuple(sorted((b["host"], b.get("started") or 0, b.get("state") or "") for b in delta.coordinators))
        running = any(b["alive"] for b in delta.coordinators)
        # a run started or ended (its target `run_target:<host>`, why it stopped), or a live run's estimate
        if runs != self.runs or (running and delta.polled_at - self.attrs_read_at >= ATTRS_EVERY_S):
            if delta.user_attrs is None:
                delta.user_attrs = store.study_attrs(sid)
            self.runs, self.attrs_read_at = runs, delta.polled_at
        delta.status = study_status(self.counts, delta.coordinators)
        delta.elapsed_s = time.perf_counter() - start
        return delta

    # ------------------------------------------------------------ pieces
    def _trials(self, conn, sid: int, extra: list[int], delta: StudyDelta) -> list[TrialRow]:
        since, again = self.max_trial_id, sorted({*self.unfinished, *extra})
        if self.params_missing:  # the previous poll sent a big study's rows without params: all again
            since, self.params_missing = 0, False
        # a big study's first read: the rows now, their params (2/3 of the read) on the next poll
        first_paint = FIRST_PAINT_ROWS if self.max_trial_id == 0 else None
        if not self.store.split_first_read:  # a journal: params come with the rows
            first_paint = None
        rows = self.store.changed_trials(conn, sid, since, again, several_objectives=len(self.directions) > 1,
                                         telemetry_tables=self.telemetry, params_limit=first_paint)  # fmt: skip
        if first_paint is not None and len(rows) > first_paint:
            self.params_missing = delta.partial = True
        news = []
        for row in rows:
            tid, number, state = row.trial_id, row.number, row.state
            sig = (state, row.value, row.values, row.epochs, row.flags, len(row.params), row.finished, row.reason,
                   row.host, tuple(row.metrics.items()), row.reported)  # fmt: skip
            if self.sig.get(number) != sig:
                news.append(row)
                self.sig[number] = sig
            self.max_trial_id = max(self.max_trial_id, tid)
            self.state[number] = state
            self.ids[number] = tid
            self.flags[number] = row.flags
            if state in UNFINISHED:
                self.unfinished[tid] = number
            else:
                self.unfinished.pop(tid, None)
        return news

    def _live(self, number: int, changed: set[int]) -> bool:
        """Telemetry may still grow: the trial runs, or it just ended (its last rows came with the end)."""
        return self.state.get(number) in UNFINISHED or number in changed

    def _epochs(self, conn, sid: int, want: Want, delta: StudyDelta, changed: set[int]) -> None:
        """Epoch rows of the trials plotted; without tunetui telemetry (Optuna alone), what the trials
        reported (`trial.report`) as rows {trial_number, epoch: step, intermediate: value}."""
        read, start = (self._epoch_rows, 0) if self.telemetry else (self._intermediate_rows, -1)
        delta.reported = not self.telemetry
        fresh = [n for n in want.curves if n not in self.epoch_cursor and n in self.state]
        live = [n for n in want.curves if n in self.epoch_cursor and self._live(n, changed)]
        if fresh:
            for row in read(conn, sid, fresh, start):
                delta.epochs.setdefault(row["trial_number"], []).append(row)
            for n in fresh:
                rows = delta.epochs.setdefault(n, [])
                self.epoch_cursor[n] = rows[-1]["epoch"] if rows else start
        if live:
            after = min(self.epoch_cursor[n] for n in live)
            for row in read(conn, sid, live, after):
                if row["epoch"] > self.epoch_cursor[row["trial_number"]]:
                    delta.epochs.setdefault(row["trial_number"], []).append(row)
                    self.epoch_cursor[row["trial_number"]] = row["epoch"]

    @staticmethod
    def _epoch_rows(conn, sid: int, numbers: list[int], after: int) -> list[dict]:
        return tt.epoch_rows(conn, sid, numbers, after_epoch=after)

    def _intermediate_rows(self, conn, sid: int, numbers: list[int], after: int) -> list[dict]:
        return [{"trial_number": n, "epoch": step, "intermediate": value}
                for n, step, value in self.store.intermediate_values(conn, sid, numbers, after)]  # fmt: skip

    def _steps(self, conn, sid: int, number: int, delta: StudyDelta, changed: set[int]) -> None:
        if number != self.steps_for:
            self.step_cursor.pop(number, None)  # only one trial's steps are kept: read them again
            self.steps_for = number
        if number in self.step_cursor and not self._live(number, changed):
            return
        after = self.step_cursor.get(number, -1)
        rows = tt.step_rows(conn, sid, number, after_step=after)
        if rows or number not in self.step_cursor:
            delta.steps[number] = rows
        self.step_cursor[number] = rows[-1]["step"] if rows else after

    def _detail(
        self, conn, sid: int, number: int, delta: StudyDelta, changed: set[int], diag_changed: bool
    ) -> None:
        running = self._live(number, changed)
        if number != self.detail_for:
            self.layer_cursor.pop(number, None)  # layers and log lines are kept for one trial only
            self.log_cursor.pop(number, None)
        if number != self.detail_for or number in changed or diag_changed:
            findings = tt.findings(conn, sid, number) if self.telemetry else []
            delta.details.append(TrialDetail(number, self.store.trial_attrs_in(conn, sid, number), findings))
            self.detail_for = number
        if not self.telemetry:
            if number not in self.log_cursor:  # no worker log to read: say so once (the Log tab waits for it)
                delta.logs[number], self.log_cursor[number] = [], 0
            return
        if number not in self.layer_cursor or running:
            after = self.layer_cursor.get(number, 0)
            rows = tt.layer_rows(conn, sid, number, after_epoch=after)
            for row in rows:
                row["hist"] = decode_json(row.pop("hist_json"))
            if rows or number not in self.layer_cursor:
                delta.layers[number] = rows
            self.layer_cursor[number] = rows[-1]["epoch"] if rows else after
        if number not in self.log_cursor or running:
            after = self.log_cursor.get(number, 0)
            rows = tt.log_rows(conn, sid, number, after_id=after, limit=LOG_LINES)
            if rows or number not in self.log_cursor:
                delta.logs[number] = rows
            self.log_cursor[number] = rows[-1]["id"] if rows else after


# ---------------------------------------------------------------- small helpers


def downsample(xs: Sequence[float], ys: Sequence[float], limit: int = 1000) -> tuple[list, list]:
    """At most ~limit points: min and max of each bucket, so spikes survive."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    buckets = max(1, limit // 2)
    size = n / buckets
    out_x: list = []
    out_y: list = []
    for b in range(buckets):
        lo, hi = int(b * size), min(n, int((b + 1) * size))
        if lo >= hi:
            continue
        chunk = range(lo, hi)
        i_min = min(chunk, key=ys.__getitem__)
        i_max = max(chunk, key=ys.__getitem__)
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def layer_order(rows: Iterable[dict]) -> list[str]:
    """Layer names from input to output (tt_layer.position where the store has it, else by name)."""
    place: dict[str, tuple] = {}
    for r in rows:
        place.setdefault(r["layer"], (r.get("position") is None, r.get("position") or 0, r["layer"]))
    return sorted(place, key=place.__getitem__)


def best_so_far(values: Iterable[float], maximize: bool) -> list[float]:
    out, best = [], None
    for v in values:
        if best is None or (v > best if maximize else v < best):
            best = v
        out.append(best)
    return out
