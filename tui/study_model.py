"""What the Study screen knows about its study, apart from any widget: the trials, their telemetry, the
selection and the view. `apply(delta)` folds in one poll of tui/data.py's StudyWatcher and says what changed
(`Dirty`), so the screen repaints only that. Pure: no Textual, no store, no clock; tested without a Pilot."""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.identity import ATTR as IDENTITY
from engine.progress import RunProgress, run_progress
from engine.report import counts_as_best, is_better
from engine.store import TrialRow
from engine.terminator import Estimate, recorded, stopped_by
from engine.text import markup_safe, safe
from tui.data import StudyDelta, TrialDetail, Want
from tui.formatting import count_key, format_value, trial_letters

VIEWS = ("selected", "best", "all")  # `v` cycles these; `c` adds "compare" (the pinned and the selected trial)
MAX_OVERLAY = 40  # curves drawn at once in the "all" view
STATUS_AFTER = {"pause": "paused", "resume": "running", "stop": "stopping", "stop_now": "stopping"}
LIVE = ("running", "paused", "stopping")  # a coordinator works: an answered control's state may be ahead


@dataclass
class Dirty:
    """What one delta changed, in the terms of what the screen shows."""

    title: bool = False
    direction: bool = False  # the study appeared: its directions (or its objectives' metrics) are known
    trials: bool = False  # rows new or changed
    follow_to: int | None = None  # follow is on: move the cursor to this (newest) trial
    curves: bool = False
    layers: bool = False
    history: bool = False
    detail: bool = False
    log: bool = False
    new_log_lines: list[str] | None = None  # with `log`: lines to append; None: the log is another trial's


class StudyModel:
    def __init__(self, study_name: str) -> None:
        self.study_name = study_name
        self.study_id: int | None = None
        self.maximizing = True
        self.objectives = 1
        self.directions: list[str] = ["MAXIMIZE"]  # one per objective
        self.status = "waiting"
        self.user_attrs: dict = {}
        self.coordinators: list[dict] = []
        self.rows: dict[int, TrialRow] = {}
        self.best: int | None = None  # the best complete trial (one objective only)
        self.epochs: dict[int, list[dict]] = {}
        self.reported = False  # the epochs are what trial.report wrote (a store Optuna alone made)
        self.steps_for: int | None = None
        self.steps: list[dict] = []
        self.layer_rows_for: int | None = None
        self.layer_rows: list[dict] = []
        self.logs_for: int | None = None
        self.log_lines: list[str] = []
        self.details: dict[int, TrialDetail] = {}
        self.selected: int | None = None
        self.pinned: int | None = None
        self.view = "selected"
        self.follow = False
        self.error: str | None = None
        self.expected: str | None = None  # the state an answered control leads to, until the store agrees
        self.polled_at = 0.0  # when the latest delta was read
        self.estimate: Estimate | None = None  # the terminator's estimate asked for with `T`

    # ------------------------------------------------------------ data in
    def apply(self, delta: StudyDelta) -> Dirty:
        dirty = Dirty()
        self.error = None
        shown = (self.shown_status(), self.study_id)
        self.status, self.coordinators = delta.status, delta.coordinators
        stored = self._stored_status()
        if self.expected is not None and (stored == self.expected or stored not in LIVE):
            self.expected = None  # the heartbeat caught up, or the run ended
        changed_status = (self.shown_status(), delta.study_id) != shown
        if delta.study_id is not None and self.study_id is None:
            self.study_id = delta.study_id
            self.maximizing = delta.direction == "MAXIMIZE"
            self.objectives = len(delta.directions)
            self.directions = list(delta.directions)
            dirty.direction = True
        if delta.user_attrs is not None:
            metrics = self.objective_metrics
            self.user_attrs = delta.user_attrs
            dirty.direction = dirty.direction or self.objective_metrics != metrics  # a run recorded them
        self.polled_at = delta.polled_at
        best_before = self.best
        for row in delta.trials:
            self.rows[row.number] = row
            best = self.rows.get(self.best) if self.best is not None else None
            if counts_as_best(row) and is_better(row.value, best.value if best else None, self.maximizing):
                self.best = row.number
        dirty.trials = bool(delta.trials)
        if self.follow and delta.trials:
            dirty.follow_to = max(self.rows)
        dirty.curves = dirty.trials and (self.view == "all" or self.best != best_before)
        if delta.study_id is not None and delta.reported != self.reported:
            self.reported, dirty.curves = delta.reported, True
        for number, rows in delta.epochs.items():
            self.epochs.setdefault(number, []).extend(rows)
            dirty.curves = True
        for number, rows in delta.steps.items():
            if number == self.steps_for:
                self.steps.extend(rows)
            else:
                self.steps_for, self.steps = number, list(rows)
            dirty.curves = True
        for number, rows in delta.layers.items():
            if number == self.layer_rows_for:
                self.layer_rows.extend(rows)
            else:
                self.layer_rows_for, self.layer_rows = number, list(rows)
            dirty.layers = True
        for number, rows in delta.logs.items():
            lines = [f"{time.strftime('%H:%M:%S', time.localtime(r['ts'] or 0))} {safe(r['line'])}" for r in rows]
            if number == self.logs_for:
                self.log_lines.extend(lines)
                dirty.new_log_lines = lines
            else:
                self.logs_for, self.log_lines, dirty.new_log_lines = number, lines, None
            dirty.log = True
        for detail in delta.details:
            self.details[detail.number] = detail
        dirty.detail = bool(delta.details) or (self.selected is not None and self.selected in
                                               {r.number for r in delta.trials})  # fmt: skip
        dirty.title = dirty.trials or changed_status or delta.first or delta.user_attrs is not None
        dirty.history = dirty.trials or delta.first
        return dirty

    @property
    def objective_metrics(self) -> tuple[str, ...]:
        """The metric of each objective, as the study records them (none in a study Optuna alone made)."""
        identity = self.user_attrs.get(IDENTITY)
        metrics = identity.get("metrics") if isinstance(identity, dict) else [self.user_attrs.get("metric")]
        return tuple(m for m in metrics if isinstance(m, str)) if isinstance(metrics, list) else ()

    def _stored_status(self) -> str:
        """The store's status; "stopping" when every live coordinator's heartbeat says so (the store's
        status counts a stopping coordinator as running)."""
        alive = [c for c in self.coordinators if c.get("alive")]
        if self.status == "running" and alive and all(c.get("state") == "stopping" for c in alive):
            return "stopping"
        return self.status

    def shown_status(self) -> str:
        """What the header says: an answered control's state at once, else the store's."""
        return self.expected or self._stored_status()

    def answered(self, action: str) -> bool:
        """The coordinator accepted `action`: its state shows now, before the next heartbeat (~2 s).
        True when the shown status changed."""
        status = STATUS_AFTER.get(action)
        if status is None or self._stored_status() not in LIVE:
            return False
        before = self.shown_status()
        self.expected = status if status != self._stored_status() else None
        return self.shown_status() != before

    def fail(self, error: str) -> None:
        """The last poll could not read the store (the title says so until a poll succeeds)."""
        self.error = error

    # ------------------------------------------------------------ what to read and to show
    def curve_numbers(self) -> list[int]:
        """The trials whose curves are drawn in the current view."""
        if self.view == "compare" and self.pinned is not None and self.selected is not None:
            return [self.pinned, self.selected] if self.pinned != self.selected else [self.selected]
        if self.view == "best":
            return [self.best] if self.best is not None else []
        if self.view == "all":
            return sorted(self.rows)[-MAX_OVERLAY:]
        return [self.selected] if self.selected is not None else []

    def want(self) -> Want:
        """What the watcher should read beyond the trial rows: these trials' epochs, steps and detail."""
        numbers = self.curve_numbers()
        return Want(curves=tuple(numbers), steps=numbers[0] if len(numbers) == 1 else None, detail=self.selected)

    def steps_shown(self) -> list[dict] | None:
        """Step rows, when one trial's curves are drawn and they are that trial's."""
        numbers = self.curve_numbers()
        return self.steps if len(numbers) == 1 and self.steps_for == numbers[0] else None

    def selected_layers(self) -> list[dict]:
        return self.layer_rows if self.layer_rows_for == self.selected else []

    def complete_count(self) -> int:
        return sum(1 for r in self.rows.values() if r.state == "COMPLETE")

    def progress(self) -> RunProgress | None:
        """The live runs' trials against their targets, with an ETA (None when no run is active)."""
        return run_progress(self.rows.values(), self.user_attrs, self.coordinators, self.polled_at)

    def improvement(self) -> Estimate | None:
        """The terminator's latest estimate: the run's recorded one, or the one `T` asked for (if as recent)."""
        stored = recorded(self.user_attrs)
        if self.estimate is None or (stored is not None and stored.complete > self.estimate.complete):
            return stored
        return self.estimate

    def status_text(self) -> str:
        """The status word, with an active run's progress ("running 23/50 ETA 4m10s": early, so 80 columns
        show it); a run the terminator's estimate stopped reads "stopped: terminator"."""
        status = self.shown_status()
        why = stopped_by(self.user_attrs, self.coordinators)
        if status == "stopped" and why:
            return f"stopped: {why.partition(':')[0]}"
        progress = self.progress() if self.study_id is not None else None
        return status if progress is None else f"{status} {progress.short()}"

    def clip(self, number: int | None) -> float | None:
        """The gradient clip threshold of a trial: its clip_norm/clip param, else the user attr."""
        if number is None:
            return None
        row = self.rows.get(number)
        for source in (
            (row.params if row else {}),
            (self.details[number].attrs if number in self.details else {}),
        ):
            for key in ("clip_norm", "clip"):
                value = source.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    return float(value)
        return None

    def title(self) -> str:
        """name · status · best · gain left · trials by state · view (markup; outside text escaped), fit for 80
        columns."""
        counts: dict[str, int] = {}
        for row in self.rows.values():
            key = count_key(row)
            counts[key] = counts.get(key, 0) + 1
        best = self.rows.get(self.best) if self.best is not None else None
        parts = [f"[b]{markup_safe(self.study_name)}[/b]", self.status_text()]
        if self.study_id is None:
            parts.append("waiting for the study to appear in the store")
        else:
            parts.append(f"best {format_value(best.value)} #{best.number}" if best else "best -")
            estimate = self.improvement()
            if estimate is not None:  # beside the best it bounds, before the counts: 80 columns show it
                parts.append(estimate.short())
            parts.append(f"trials {trial_letters(counts)}")
        view = self.view if self.view != "compare" else f"compare #{self.pinned}"
        parts.append(f"view {view}" + (" +follow" if self.follow else ""))
        if self.error:
            parts.append(f"[b]store error[/b]: {markup_safe(self.error)}")
        return " · ".join(parts)

    # ------------------------------------------------------------ what the user does
    def next_view(self) -> None:
        """`v`: selected -> best -> all -> selected; from compare back to selected (the pin dropped)."""
        if self.view == "compare":
            self.pinned, self.view = None, "selected"
        else:
            self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]

    def compare(self) -> str:
        """`c`: pin the selected trial, then compare it with the next selected one, then off.
        Returns what happened: "pinned", "compare" or "off" ("" with nothing selected)."""
        if self.selected is None:
            return ""
        if self.view == "compare" or (self.pinned is not None and self.pinned == self.selected):
            self.pinned, self.view = None, "selected"
            return "off"
        if self.pinned is None:
            self.pinned = self.selected
            return "pinned"
        self.view = "compare"
        return "compare"

    def moved_by_hand(self) -> bool:
        """The user moved the cursor: follow goes off (`f` turns it on again). True when it was on."""
        was_on, self.follow = self.follow, False
        return was_on

    def killable(self) -> TrialRow | None:
        """The selected trial when it is running (only a running trial can be killed)."""
        row = self.rows.get(self.selected) if self.selected is not None else None
        return row if row is not None and row.state == "RUNNING" else None
