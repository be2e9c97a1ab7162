"""The Study screen: the live trial table, curves, history, importance, detail, gradients and log of one study."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Log, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from engine.store import StoreError, TrialRow
from engine.text import markup_safe, safe
from tui.data import StudyDelta, StudyWatcher, TrialDetail, Want, open_store, param_importances
from tui.formatting import format_value, trial_letters
from tui.messages import (
    ChooseSpecToStart,
    Confirm,
    ExportStudy,
    ImportancesComputed,
    PollFailed,
    StudyUpdated,
)
from tui.widgets.curves import MAX_OVERLAY, PLOTS, CurvesPanel, charts_for
from tui.widgets.diagnosis import trial_detail
from tui.widgets.histogram import GradientPanel
from tui.widgets.history_plot import HistoryPlot, ImportancePlot
from tui.widgets.trial_table import TrialTable

TABS = ("curves", "history", "importance", "detail", "grads", "log")
VIEWS = ("selected", "best", "all")
MIN_IMPORTANCE_TRIALS = 8
IMPORTANCE_EVERY_S = 10.0
WIDE = 120  # columns from which the table and the panels sit side by side
DRAW_EVERY_S = 1.0  # charts redraw at most this often while data streams in
CHART_EVERY_S = 0.4  # ...and each visible chart adds this much (a chart costs ~12 ms to build and paint)
SETTLE_S = 0.12  # after the cursor stops for this long, the panels show the new trial


class StudyScreen(Screen):
    HELP_TITLE = "Study"
    BINDINGS = [
        Binding("escape", "back", "Back", show=False),
        Binding("s", "start", "Start", tooltip="Start the study's coordinator (detached), or resume it"),
        Binding("p", "pause", "Pause", tooltip="Pause the study (running trials finish); p again resumes"),
        Binding("x", "stop", "Stop", tooltip="Stop starting trials; running ones finish"),
        Binding("X", "stop_now", "Stop now", show=False, tooltip="Stop and kill running trials (asks first)"),
        Binding("k", "kill", "Kill", tooltip="Kill the selected running trial (asks first)"),
        Binding("e", "export", "Export", tooltip="Export trials as CSV/JSON, or the best trial as a spec"),
        Binding("c", "compare", "Compare", tooltip="Pin a trial, move to another, c again: both curves"),
        Binding("f", "follow", "Follow", tooltip="Keep the cursor on the newest trial"),
        Binding(
            "v", "view", "View", show=False, tooltip="Curves of: the selected trial / the best / all overlaid"
        ),
        Binding(
            "m",
            "metric",
            "Metric",
            show=False,
            tooltip="Next curve chart (narrow terminals show one at a time)",
        ),
        *(
            Binding(str(i + 1), f"tab('{tab}')", f"{tab.title()} tab", show=False)
            for i, tab in enumerate(TABS)
        ),
        Binding("left_square_bracket", "layer(-1)", "Prev layer (Grads tab)", key_display="[", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer (Grads tab)", key_display="]", show=False),
        Binding("comma", "epoch(-1)", "Prev epoch (Grads tab)", key_display=",", show=False),
        Binding("full_stop", "epoch(1)", "Next epoch (Grads tab)", key_display=".", show=False),
    ]

    def __init__(self, study_name: str) -> None:
        super().__init__()
        self.study_name = study_name
        self.study_id: int | None = None
        self.maximizing = True
        self.status = "waiting"
        self.user_attrs: dict = {}
        self.coordinators: list[dict] = []
        self.rows: dict[int, TrialRow] = {}
        self.epochs: dict[int, list[dict]] = {}
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
        self.want = Want()
        self.error: str | None = None
        self.importance_count = -1
        self.importance_at = 0.0
        self.importance_busy = False
        self.ticks = 0
        self.apply_s = 0.0  # time spent applying the last delta
        self.tick_costs: deque[tuple[float, float]] = deque(maxlen=2000)  # (query s, apply s): the benchmark
        self._wake = threading.Event()
        self._settle: Timer | None = None
        self._filled = {"curves"}  # tabs whose widgets are mounted
        self._filling = {"curves"}  # ... or being mounted
        self._drawn_at: dict[str, float] = {}
        self._draw_timers: dict[str, Timer] = {}
        self._title_text = ""
        self._closing = False  # set on unmount: the polling thread ends now, not after its sleep

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        self.set_class(self.app.size.width >= WIDE, "-wide")  # laid out right the first time
        yield Static(Text(safe(self.study_name)), id="study-title", classes="title")
        with Container(id="study-body"):
            yield TrialTable(clock=self.app.clock, id="trials")
            with TabbedContent(id="tabs", initial="curves"):
                with TabPane("Curves", id="curves"):
                    yield CurvesPanel(id="curves-panel")
                for tab in TABS[1:]:  # their widgets are mounted when first shown: a faster first paint
                    yield TabPane(tab.title(), id=tab)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(TrialTable).focus()
        self._layout()
        self._title()
        self.poll()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")

    # ------------------------------------------------------------ polling (a thread)
    @work(thread=True, exclusive=True, group="study-poll")
    def poll(self) -> None:
        worker = get_current_worker()
        watcher = StudyWatcher(self.app.storage_url, self.study_name)
        try:
            while not worker.is_cancelled and not self._closing:
                try:
                    delta = watcher.poll(self.want)
                except StoreError as err:
                    self.post_message(PollFailed(str(err)))
                    watcher.close()
                    watcher = StudyWatcher(self.app.storage_url, self.study_name)
                else:
                    self.post_message(StudyUpdated(delta))
                    if delta.partial:
                        continue  # the rest of a big first read: no pause
                self._wake.wait(self.app.poll_s)
                self._wake.clear()
        finally:
            watcher.close()

    def on_unmount(self) -> None:
        self._closing = True
        self._wake.set()

    def _set_want(self) -> None:
        numbers = self._curve_numbers()
        single = numbers[0] if len(numbers) == 1 else None
        want = Want(curves=tuple(numbers), steps=single, detail=self.selected)
        if want != self.want:
            self.want = want
            self._wake.set()

    def _curve_numbers(self) -> list[int]:
        if self.view == "compare" and self.pinned is not None and self.selected is not None:
            return [self.pinned, self.selected] if self.pinned != self.selected else [self.selected]
        if self.view == "best":
            best = self.query_one(TrialTable).best
            return [best] if best is not None else []
        if self.view == "all":
            return sorted(self.rows)[-MAX_OVERLAY:]
        return [self.selected] if self.selected is not None else []

    # ------------------------------------------------------------ applying deltas (UI thread)
    def on_poll_failed(self, message: PollFailed) -> None:
        self.error = message.error
        self._title()

    def on_study_updated(self, message: StudyUpdated) -> None:
        start = time.perf_counter()
        delta: StudyDelta = message.delta
        self.ticks += 1
        self.error = None
        changed_status = (delta.status, delta.study_id) != (self.status, self.study_id)
        self.status, self.coordinators = delta.status, delta.coordinators
        if delta.study_id is not None and self.study_id is None:
            self.study_id = delta.study_id
            self.maximizing = delta.direction == "MAXIMIZE"
            self.query_one(TrialTable).set_direction(self.maximizing, len(delta.directions))
        if delta.user_attrs is not None:
            self.user_attrs = delta.user_attrs
        table = self.query_one(TrialTable)
        best_before = table.best
        if delta.trials:
            for row in delta.trials:
                self.rows[row.number] = row
            table.update_rows(delta.trials)
            if self.follow and self.rows:
                newest = max(self.rows)
                if newest != table.current:
                    table.move_to(newest)
        curves_dirty = bool(delta.trials) and (self.view == "all" or table.best != best_before)
        for number, rows in delta.epochs.items():
            self.epochs.setdefault(number, []).extend(rows)
            curves_dirty = True
        for number, rows in delta.steps.items():
            if number == self.steps_for:
                self.steps.extend(rows)
            else:
                self.steps_for, self.steps = number, list(rows)
            curves_dirty = True
        layers_dirty = False
        for number, rows in delta.layers.items():
            if number == self.layer_rows_for:
                self.layer_rows.extend(rows)
            else:
                self.layer_rows_for, self.layer_rows = number, list(rows)
            layers_dirty = True
        for number, rows in delta.logs.items():
            lines = [f"{time.strftime('%H:%M:%S', time.localtime(r['ts'] or 0))} {safe(r['line'])}" for r in rows]
            if number == self.logs_for:
                self.log_lines.extend(lines)
                new_lines = lines
            else:
                self.logs_for, self.log_lines, new_lines = number, lines, None
            if "log" in self._filled and self.query_one(TabbedContent).active == "log":  # else when it opens
                self._show_log(new_lines)
        for detail in delta.details:
            self.details[detail.number] = detail
        detail_dirty = bool(delta.details) or (self.selected is not None and self.selected in
                                               {r.number for r in delta.trials})  # fmt: skip
        self._set_want()
        if delta.trials or changed_status or delta.first:
            self._title()
        active = self.query_one(TabbedContent).active
        if active not in self._filled:
            pass  # mounting: shown when ready
        elif active == "curves" and (curves_dirty or layers_dirty):
            self._draw_soon("curves")
        elif active == "history" and (delta.trials or delta.first):
            self._draw_soon("history")
        elif active == "importance":
            self._maybe_importance()
        elif active == "detail" and detail_dirty:
            self._show_detail()
        elif active == "grads" and layers_dirty:
            self._draw_soon("grads")
        self.apply_s = time.perf_counter() - start
        self.tick_costs.append((delta.elapsed_s, self.apply_s))

    # ------------------------------------------------------------ panels
    def _draw_soon(self, panel: str) -> None:
        """Charts follow streaming data at a bounded rate (plotext builds and paints cost ~12 ms a chart);
        what the user does (select, switch tab or view) draws at once."""
        charts = len(PLOTS) if panel == "curves" and self.has_class("-wide") else 1
        every = max(DRAW_EVERY_S, CHART_EVERY_S * charts)  # wide screens show five charts at once
        wait = every - (time.monotonic() - self._drawn_at.get(panel, 0.0))
        if wait <= 0:
            self._draw(panel)
        elif panel not in self._draw_timers:
            self._draw_timers[panel] = self.set_timer(wait, lambda: self._draw(panel))

    def _draw(self, panel: str) -> None:
        timer = self._draw_timers.pop(panel, None)
        if timer is not None:
            timer.stop()  # drawn now: the scheduled draw would repeat it
        self._drawn_at[panel] = time.monotonic()
        if panel == "curves":
            self._show_curves()
        elif panel == "history":
            self._show_history()
        elif panel == "grads":
            self._show_grads()

    def _title(self) -> None:
        """name · status · best · trials by state · view, short enough for 80 columns."""
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row.state] = counts.get(row.state, 0) + 1
        table = self.query_one(TrialTable)
        best = self.rows.get(table.best) if table.best is not None else None
        parts = [f"[b]{markup_safe(self.study_name)}[/b]", self.status]
        if self.study_id is None:
            parts.append("waiting for the study to appear in the store")
        else:
            parts.append(f"best {format_value(best.value)} #{best.number}" if best else "best -")
            parts.append(f"trials {trial_letters(counts)}")
        view = self.view if self.view != "compare" else f"compare #{self.pinned}"
        parts.append(f"view {view}" + (" +follow" if self.follow else ""))
        if self.error:
            parts.append(f"[b]store error[/b]: {markup_safe(self.error)}")
        text = " · ".join(parts)
        if text != self._title_text:  # one line, fixed height: no layout pass needed
            self._title_text = text
            self.query_one("#study-title", Static).update(text, layout=False)

    def _clip(self, number: int | None) -> float | None:
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

    def _show_curves(self) -> None:
        numbers = self._curve_numbers()
        single = numbers[0] if len(numbers) == 1 else None
        steps = self.steps if single is not None and self.steps_for == single else None
        layers = self.layer_rows if self.layer_rows_for == self.selected else []
        charts = charts_for(
            self.view, numbers, self.epochs, steps, layers, self._clip(single or self.selected)
        )
        charts["layers"].title = f"per-layer grad norm #{self.selected}" if self.selected is not None else ""
        self.query_one(CurvesPanel).show(charts)

    def _show_history(self) -> None:
        self.query_one(HistoryPlot).set_trials(self.rows.values(), self.maximizing)

    def _show_detail(self) -> None:
        row = self.rows.get(self.selected) if self.selected is not None else None
        detail = self.details.get(self.selected) if self.selected is not None else None
        duration = None
        if row is not None and row.started is not None:
            duration = (row.finished or self.app.clock()) - row.started
        view = trial_detail(row, detail.attrs if detail else {}, detail.findings if detail else [], duration)
        self.query_one("#detail-view", Static).update(view)

    def _show_grads(self) -> None:
        rows = self.layer_rows if self.layer_rows_for == self.selected else []
        self.query_one(GradientPanel).set_rows(self.selected, rows)

    def _show_log(self, new_lines: list[str] | None) -> None:
        log = self.query_one("#log-view", Log)
        if new_lines is None and self.logs_for != self.selected:
            log.clear()
            log.write_line(f"reading the log of trial #{self.selected}...")
        elif new_lines is None:
            log.clear()
            log.write_lines(self.log_lines[-1000:] or [f"no log lines for trial #{self.selected}"])
        elif new_lines:
            log.write_lines(new_lines)

    def _show_active(self) -> None:
        active = self.query_one(TabbedContent).active
        if active not in self._filled:
            return  # its widgets are being mounted; the tab handler shows it then
        if active in ("curves", "history", "grads"):
            self._draw(active)
        elif active == "importance":
            self._maybe_importance(force=True)
        elif active == "detail":
            self._show_detail()
        elif active == "log":
            self._show_log(None)

    @on(TabbedContent.TabActivated)
    async def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane
        if pane.id not in self._filling:
            self._filling.add(pane.id)
            await pane.mount(*self._pane_widgets(pane.id))
            self._filled.add(pane.id)
        self._show_active()
        self.refresh_bindings()

    @staticmethod
    def _pane_widgets(tab: str) -> list:
        if tab == "history":
            return [HistoryPlot(id="history-plot")]
        if tab == "importance":
            return [ImportancePlot(id="importance-plot")]
        if tab == "detail":
            return [VerticalScroll(Static("no trial selected", id="detail-view"), id="detail-scroll")]
        if tab == "grads":
            return [GradientPanel(id="grads-panel")]
        if tab == "log":
            return [Log(id="log-view", max_lines=1000)]
        return []

    @on(TrialTable.Highlighted)
    def _highlighted(self, event: TrialTable.Highlighted) -> None:
        self.selected = event.number
        self._set_want()
        # redraw once the cursor settles: holding a key must not build five charts per row passed
        if self._settle is not None:
            self._settle.stop()
        self._settle = self.set_timer(SETTLE_S, self._show_active)

    # ------------------------------------------------------------ importance (a thread)
    def _maybe_importance(self, force: bool = False) -> None:
        complete = sum(1 for r in self.rows.values() if r.state == "COMPLETE")
        plot = self.query_one(ImportancePlot)
        if complete < MIN_IMPORTANCE_TRIALS:
            plot.set_importances(None, f"needs {MIN_IMPORTANCE_TRIALS} complete trials ({complete} so far)")
            return
        due = time.monotonic() - self.importance_at >= IMPORTANCE_EVERY_S or force
        if self.importance_busy or complete == self.importance_count or not due:
            return
        self.importance_busy = True
        self.importance_at = time.monotonic()
        if not plot.importances:
            plot.set_importances(None, f"computing from {complete} complete trials...")
        self._importance(complete)

    @work(thread=True, exclusive=True, group="importance")
    def _importance(self, complete: int) -> None:
        try:
            store = open_store(self.app.storage_url)
            if store is None:
                raise StoreError("the store is gone")
            try:
                result = param_importances(store, self.study_name)
            finally:
                store.close()
            self.post_message(ImportancesComputed(result, f"{complete} complete trials", complete))
        except Exception as err:  # Optuna refuses some studies (e.g. one distinct value): say why
            self.post_message(ImportancesComputed(None, f"not available: {err}", complete))

    def on_importances_computed(self, message: ImportancesComputed) -> None:
        self.importance_busy = False
        self.importance_count = message.complete
        for plot in self.query(ImportancePlot):
            plot.set_importances(message.importances, message.note)

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("layer", "epoch"):
            return "grads" in self._filled and self.query_one(TabbedContent).active == "grads"
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_layer(self, delta: int) -> None:
        self.query_one(GradientPanel).step_layer(delta)

    def action_epoch(self, delta: int) -> None:
        self.query_one(GradientPanel).step_epoch(delta)

    def action_metric(self) -> None:
        name = self.query_one(CurvesPanel).cycle()
        if self.query_one(TabbedContent).active != "curves":
            self.query_one(TabbedContent).active = "curves"
        self.notify(f"chart: {name}", timeout=1.5)

    def action_view(self) -> None:
        if self.view == "compare":
            self.pinned = None
            self.query_one(TrialTable).pinned = None
            self.view = "selected"
        else:
            self.view = VIEWS[(VIEWS.index(self.view) + 1) % len(VIEWS)]
        self._after_view_change()

    def _after_view_change(self) -> None:
        self._set_want()
        self._title()
        self.query_one(TrialTable).refresh()
        if self.query_one(TabbedContent).active != "curves":
            self.query_one(TabbedContent).active = "curves"
        else:
            self._draw("curves")

    def action_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.rows:
            self.query_one(TrialTable).move_to(max(self.rows))
        self._title()
        self.notify("following the newest trial" if self.follow else "follow off", timeout=2)

    def action_compare(self) -> None:
        table = self.query_one(TrialTable)
        if self.selected is None:
            return
        if self.view == "compare" or (self.pinned is not None and self.pinned == self.selected):
            self.pinned = table.pinned = None
            self.view = "selected"
            self.notify("compare off", timeout=2)
        elif self.pinned is None:
            self.pinned = table.pinned = self.selected
            self.notify(f"pinned #{self.selected}: move to another trial and press c", timeout=4)
            table.refresh()
            self._title()
            return
        else:
            self.view = "compare"
        self._after_view_change()

    def _control(self, action: str, arg: str | None, done: str) -> None:
        if self.study_id is None:
            self.notify("the study is not in the store yet", severity="warning")
            return
        from tui.control import request

        try:
            request(self.app.storage_url, self.study_id, action, arg)
        except (StoreError, ValueError) as err:
            self.notify(f"{action} failed: {err}", severity="error")
            return
        self.notify(done, timeout=4)

    def action_pause(self) -> None:
        if self.status == "paused":
            self._control("resume", None, f"resume requested for {self.study_name}")
        elif self.status == "running":
            self._control("pause", None, "pause requested: no new trials start (p or s resumes)")
        else:
            self.notify(f"{self.study_name} is {self.status}: nothing to pause", severity="warning")

    def action_stop(self) -> None:
        if self.status not in ("running", "paused"):
            self.notify(f"{self.study_name} is {self.status}: nothing to stop", severity="warning")
            return
        self._control("stop", None, "stop requested: running trials finish first (X stops now)")

    def action_stop_now(self) -> None:
        if self.status not in ("running", "paused"):
            self.notify(f"{self.study_name} is {self.status}: nothing to stop", severity="warning")
            return
        done = "stop requested: running trials are killed"
        self.post_message(Confirm(f"Stop {self.study_name} now?", "Running trials are killed.", yes="Stop now",
                                  then=lambda: self._control("stop_now", None, done)))  # fmt: skip

    def action_kill(self) -> None:
        row = self.rows.get(self.selected) if self.selected is not None else None
        if row is None or row.state != "RUNNING":
            state = row.state.lower() if row else "nothing"
            self.notify(
                f"only a running trial can be killed (#{self.selected} is {state})", severity="warning"
            )
            return
        number = row.number
        done = f"kill requested for trial #{number}"
        self.post_message(Confirm(f"Kill trial #{number}?", "It stops at once and is recorded as failed (user).",
                                  yes="Kill", then=lambda: self._control("kill", str(number), done)))  # fmt: skip

    def action_start(self) -> None:
        if self.status == "running":
            self.notify(f"{self.study_name} is already running", timeout=3)
            return
        if self.status == "paused":
            self._control("resume", None, f"resume requested for {self.study_name}")
            return
        self.post_message(ChooseSpecToStart(self.study_name, self.user_attrs, self._start))

    @work(thread=True, exclusive=True, group="launch")
    def _start(self, spec: Path) -> None:
        from tui.control import launch, run_argv

        self.app.call_from_thread(self.notify, f"starting {self.study_name} from {spec.name}...", timeout=3)
        ok, text = launch(run_argv(spec), self.app.storage_url)
        if ok:
            self.app.call_from_thread(self.notify, f"started {self.study_name}", timeout=4)
        else:
            self.app.call_from_thread(
                self.notify, text or "the run command failed", severity="error", timeout=10
            )
        self._wake.set()

    def action_export(self) -> None:
        if self.study_id is None:
            self.notify("the study is not in the store yet", severity="warning")
            return
        self.post_message(ExportStudy(self.study_name))
