"""The Study screen: the live trial table, curves, history, importance, detail, gradients and log of one study."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Log, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from engine.store import Store, StoreError
from engine.store.control import NO_COORDINATOR
from engine.text import safe
from tui.data import Want
from tui.improvement import EstimateKey
from tui.messages import (
    ChooseSpecToStart,
    Confirm,
    ControlSent,
    ExportStudy,
    OpenAnalysis,
    PollFailed,
    StudyUpdated,
)
from tui.polling import StudyPolling
from tui.study_model import StudyModel
from tui.trial_actions import TRIAL_ACTION_BINDINGS, TrialActions
from tui.widgets.curves import PLOTS, CurvesPanel, charts_for
from tui.widgets.diagnosis import trial_detail
from tui.widgets.filter_bar import FilterBar
from tui.widgets.footer import KeyFooter
from tui.widgets.histogram import GradientPanel
from tui.widgets.history_plot import HistoryPlot, ImportancePlot
from tui.widgets.tab_panes import tab_widgets
from tui.widgets.trial_table import TrialTable

TABS = ("curves", "history", "importance", "detail", "grads", "log")
WIDE = 120  # columns from which the table and the panels sit side by side
DRAW_EVERY_S = 1.0  # charts redraw at most this often while data streams in
CHART_EVERY_S = 0.4  # ...and each visible chart adds this much (a chart costs ~12 ms to build and paint)
SETTLE_S = 0.12  # after the cursor stops for this long, the panels show the new trial


class StudyScreen(EstimateKey, TrialActions, Screen):
    HELP_TITLE = "Study"
    BINDINGS = [
        Binding("escape", "back", "Back", show=False),
        Binding("s", "start", "Start", tooltip="Start the study's coordinator (detached), or resume it"),
        Binding("p", "pause", "Pause", tooltip="Pause the study (running trials finish); p again resumes"),
        Binding("p", "resume", "Resume", tooltip="Resume the paused study"),  # the footer shows one of the two
        Binding("x", "stop", "Stop", tooltip="Stop starting trials; running ones finish"),
        Binding("X", "stop_now", "Stop now", show=False, tooltip="Stop and kill running trials (asks first)"),
        # never a movement key: `j`/`k` move in the table (k9s kills with ctrl+k too)
        Binding("ctrl+k", "kill", "Kill", tooltip="Kill the selected running trial (asks first)"),
        Binding("e", "export", "Export", tooltip="Export trials as CSV/JSON, or the best trial as a spec"),
        Binding("c", "compare", "Compare", tooltip="Pin a trial, move to another, c again: both curves"),
        Binding("f", "follow", "Follow", tooltip="Keep the cursor on the newest trial"),
        Binding("T", "estimate", "Gain left", show=False, tooltip="Estimate the improvement left now (Optuna's terminator)"),
        Binding("a", "analysis", "Plots", tooltip="Analysis views: parallel coordinates, slice, contour, EDF, rank, timeline..."),
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
        *TRIAL_ACTION_BINDINGS,  # N, Q, R, F: tui/trial_actions.py
    ]

    def __init__(self, study_name: str) -> None:
        super().__init__()
        self.study_name = study_name
        self.model = StudyModel(study_name)
        self.want = Want()
        self.ticks = 0
        self.apply_s = 0.0  # time spent applying the last delta
        self.tick_costs: deque[tuple[float, float]] = deque(maxlen=2000)  # (query s, apply s): the benchmark
        self._polling = StudyPolling(self, study_name, paints_partial=True)
        self._controls: queue.Queue[tuple[str, str | None, str]] = queue.Queue()  # requests to send
        self._control_lock = threading.Lock()
        self._settle: Timer | None = None
        self._filled = {"curves"}  # tabs whose widgets are mounted
        self._filling = {"curves"}  # ... or being mounted
        self._drawn_at: dict[str, float] = {}
        self._draw_timers: dict[str, Timer] = {}
        self._title_text = ""
        self._status_shown = ""

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        self.poll()  # the first read overlaps building the screen (~0.05-0.1 s of a 10,000-trial first paint)
        self.set_class(self.app.size.width >= WIDE, "-wide")  # laid out right the first time
        yield Static(Text(safe(self.study_name)), id="study-title", classes="title")
        yield FilterBar(id="trial-filter")
        with Container(id="study-body"):
            yield TrialTable(clock=self.app.clock, id="trials")
            with TabbedContent(id="tabs", initial="curves"):
                with TabPane("Curves", id="curves"):
                    yield CurvesPanel(id="curves-panel")
                for tab in TABS[1:]:  # their widgets are mounted when first shown: a faster first paint
                    yield TabPane(tab.title(), id=tab)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one(TrialTable).focus()
        self._layout()
        self._title()

    def on_resize(self) -> None:
        self._layout()

    def _layout(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")

    # ------------------------------------------------------------ polling (a thread)
    @work(thread=True, exclusive=True, group="study-poll")
    def poll(self) -> None:
        self._polling.run(lambda: self.want)

    def on_unmount(self) -> None:
        self._polling.close()

    def _set_want(self) -> None:
        want = self.model.want()
        if want != self.want:
            self.want = want
            self._polling.wake.set()

    # ------------------------------------------------------------ applying deltas (UI thread)
    def on_poll_failed(self, message: PollFailed) -> None:
        self.model.fail(message.error)
        self._title()

    def on_study_updated(self, message: StudyUpdated) -> None:
        start = time.perf_counter()
        self.ticks += 1
        dirty = self.model.apply(message.delta)
        table = self.query_one(TrialTable)
        if dirty.direction:
            table.set_objectives(self.model.objectives, self.model.directions[0] == "MAXIMIZE",
                                 self.model.objective_metrics)  # fmt: skip
        if dirty.trials:
            table.best = self.model.best
            table.update_rows(message.delta.trials)
            if dirty.follow_to is not None and dirty.follow_to != table.current:
                table.move_to(dirty.follow_to)
        active = self.query_one(TabbedContent).active
        if dirty.log and "log" in self._filled and active == "log":  # else when it opens
            self._show_log(dirty.new_log_lines)
        self._set_want()
        if dirty.title:
            self._title()
        if active not in self._filled:
            pass  # mounting: shown when ready
        elif active == "curves" and (dirty.curves or dirty.layers):
            self._draw_soon("curves")
        elif active == "history" and dirty.history:
            self._draw_soon("history")
        elif active == "importance":
            self.query_one(ImportancePlot).update_for(self.model.complete_count())
        elif active == "detail" and dirty.detail:
            self._show_detail()
        elif active == "grads" and dirty.layers:
            self._draw_soon("grads")
        if message.delta.partial:
            self.call_after_refresh(self._polling.painted)
        self.apply_s = time.perf_counter() - start
        self.tick_costs.append((message.delta.elapsed_s, self.apply_s))

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
        text = self.model.title()
        if text != self._title_text:  # one line, fixed height: no layout pass needed
            self._title_text = text
            self.query_one("#study-title", Static).update(text, layout=False)
        if self.model.shown_status() != self._status_shown:  # the footer's p: Pause or Resume
            self._status_shown = self.model.shown_status()
            self.refresh_bindings()

    def _show_curves(self) -> None:
        model = self.model
        numbers = model.curve_numbers()
        single = numbers[0] if len(numbers) == 1 else None
        charts = charts_for(model.view, numbers, model.epochs, model.steps_shown(), model.selected_layers(),
                            model.clip(single or model.selected), metric=model.user_attrs.get("metric"),
                            reported=model.reported)  # fmt: skip
        charts["layers"].title = f"per-layer grad norm #{model.selected}" if model.selected is not None else ""
        self.query_one(CurvesPanel).show(charts)

    def _show_history(self) -> None:
        self.query_one(HistoryPlot).set_trials(self.model.rows.values(), self.model.maximizing)

    def _show_detail(self) -> None:
        selected = self.model.selected
        row = self.model.rows.get(selected) if selected is not None else None
        detail = self.model.details.get(selected) if selected is not None else None
        duration = None
        if row is not None and row.started is not None:
            duration = (row.finished or self.app.clock()) - row.started
        view = trial_detail(row, detail.attrs if detail else {}, detail.findings if detail else [], duration,
                            self.model.epochs.get(selected), study_note=self.model.user_attrs.get("note"))  # fmt: skip
        self.query_one("#detail-view", Static).update(view)

    def _show_grads(self) -> None:
        self.query_one(GradientPanel).set_rows(self.model.selected, self.model.selected_layers())

    def _show_log(self, new_lines: list[str] | None) -> None:
        log = self.query_one("#log-view", Log)
        model = self.model
        if new_lines is None and model.logs_for != model.selected:
            log.clear()
            log.write_line(f"reading the log of trial #{model.selected}...")
        elif new_lines is None:
            log.clear()
            log.write_lines(model.log_lines[-1000:] or [f"no log lines for trial #{model.selected}"])
        elif new_lines:
            log.write_lines(new_lines)

    def _show_active(self) -> None:
        active = self.query_one(TabbedContent).active
        if active not in self._filled:
            return  # its widgets are being mounted; the tab handler shows it then
        if active in ("curves", "history", "grads"):
            self._draw(active)
        elif active == "importance":
            self.query_one(ImportancePlot).update_for(self.model.complete_count(), force=True)
        elif active == "detail":
            self._show_detail()
        elif active == "log":
            self._show_log(None)

    @on(TabbedContent.TabActivated)
    async def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane
        if pane.id not in self._filling:
            self._filling.add(pane.id)
            await pane.mount(*tab_widgets(pane.id, self.study_name))
            self._filled.add(pane.id)
        self._show_active()
        self.refresh_bindings()

    @on(TrialTable.EditFilter)
    def _edit_filter(self) -> None:
        self.query_one(FilterBar).edit(self.query_one(TrialTable))

    @on(TrialTable.Counted)
    def _counted(self, event: TrialTable.Counted) -> None:
        self.query_one(FilterBar).show_count(event.text, event.shown, event.total)

    @on(TrialTable.MovedByHand)
    def _moved_by_hand(self) -> None:
        if self.model.moved_by_hand():
            self._title()

    @on(TrialTable.Highlighted)
    def _highlighted(self, event: TrialTable.Highlighted) -> None:
        self.model.selected = event.number
        self._set_want()
        # redraw once the cursor settles: holding a key must not build five charts per row passed
        if self._settle is not None:
            self._settle.stop()
        self._settle = self.set_timer(SETTLE_S, self._show_active)

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("layer", "epoch"):
            return "grads" in self._filled and self.query_one(TabbedContent).active == "grads"
        if action in ("pause", "resume"):  # `p` reads Pause or Resume as the header's state
            return (self.model.shown_status() == "paused") == (action == "resume")
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
        self.model.next_view()
        self.query_one(TrialTable).pinned = self.model.pinned
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
        model = self.model
        model.follow = not model.follow
        if model.follow and model.rows:
            self.query_one(TrialTable).move_to(max(model.rows))
        self._title()
        self.notify("following the newest trial" if model.follow else "follow off", timeout=2)

    def action_compare(self) -> None:
        table = self.query_one(TrialTable)
        happened = self.model.compare()
        table.pinned = self.model.pinned
        if happened == "off":
            self.notify("compare off", timeout=2)
        elif happened == "pinned":
            self.notify(f"pinned #{self.model.pinned}: move to another trial and press c", timeout=4)
            table.refresh()
            self._title()
            return
        elif not happened:
            return
        self._after_view_change()

    def _control(self, action: str, arg: str | None, done: str) -> None:
        if self.model.study_id is None:
            self.notify("the study is not in the store yet", severity="warning")
            return
        self._controls.put((action, arg, done))
        self._send_controls()

    @work(thread=True, group="control")
    def _send_controls(self) -> None:
        """A control row is a store write (a busy SQLite file waits): never on the UI thread. One sender at
        a time takes the queue in order, so `p` then `x` reach the coordinator as pause, then stop; then the
        coordinator's answers are shown as they come (engine/control.py: what `tunetui pause` prints)."""
        from engine import control

        worker = get_current_worker()
        sent: list[tuple[int, str]] = []
        try:
            store = Store(self.app.storage_url, create=False)
        except StoreError as err:
            self.post_message(ControlSent(False, f"could not open the store: {err}"))
            return
        try:
            with self._control_lock:
                while True:
                    try:
                        action, arg, done = self._controls.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        sent.append((control.send(store, self.study_name, action, arg), action))
                    except (control.NoCoordinator, StoreError, ValueError) as err:
                        self.post_message(ControlSent(False, f"{action} failed: {err}"))
                    else:
                        self.post_message(ControlSent(True, done))
            for request_id, action in sent:
                answer = control.wait_for_answer(store, request_id, action, cancelled=lambda: worker.is_cancelled)
                if not worker.is_cancelled:
                    self.post_message(ControlSent(answer.ok, answer.text, action, answered=answer.answered))
        except StoreError as err:
            self.post_message(ControlSent(False, f"control failed: {err}"))
        finally:
            store.close()

    def on_control_sent(self, message: ControlSent) -> None:
        # the text may quote the store (a coordinator's answer, an error): plain text, never markup
        self.notify(safe(message.text), severity="information" if message.ok else "error", markup=False,
                    timeout=4 if message.ok else None)  # fmt: skip
        if message.answered and message.ok and self.model.answered(message.action):
            self._title()

    def _no_coordinator(self) -> bool:
        """A store Optuna alone made has no tunetui coordinator to ask: say so (not "finished: nothing to pause",
        while its own process may be running trials). True when refused."""
        if self.model.reported:
            self.notify(NO_COORDINATOR, severity="warning", markup=False)
        return self.model.reported

    def action_pause(self) -> None:
        if self._no_coordinator():
            return
        status = self.model.shown_status()
        if status == "running":
            self._control("pause", None, "pause requested: no new trials start (p or s resumes)")
        else:
            self.notify(f"{self.study_name} is {status}: nothing to pause", severity="warning")

    def action_resume(self) -> None:
        self._control("resume", None, f"resume requested for {self.study_name}")

    def action_stop(self) -> None:
        if self._no_coordinator():
            return
        status = self.model.shown_status()
        if status not in ("running", "paused"):
            self.notify(f"{self.study_name} is {status}: nothing to stop", severity="warning")
            return
        self._control("stop", None, "stop requested: running trials finish first (X stops now)")

    def action_stop_now(self) -> None:
        if self._no_coordinator():
            return
        status = self.model.shown_status()
        if status not in ("running", "paused", "stopping"):  # X while stopping: kill the running trials too
            self.notify(f"{self.study_name} is {status}: nothing to stop", severity="warning")
            return
        done = "stop requested: running trials are killed"
        self.post_message(Confirm(f"Stop {self.study_name} now?", "Running trials are killed.", yes="Stop now",
                                  then=lambda: self._control("stop_now", None, done)))  # fmt: skip

    def action_kill(self) -> None:
        row = self.model.killable()
        if row is None:
            selected = self.model.rows.get(self.model.selected) if self.model.selected is not None else None
            state = selected.state.lower() if selected else "nothing"
            self.notify(f"only a running trial can be killed (#{self.model.selected} is {state})", severity="warning")
            return
        number = row.number
        done = f"kill requested for trial #{number}"
        self.post_message(Confirm(f"Kill trial #{number}?", "It stops at once and is recorded as killed (FAIL killed).",
                                  yes="Kill", then=lambda: self._control("kill", str(number), done)))  # fmt: skip

    def action_start(self) -> None:
        status = self.model.shown_status()
        if status in ("running", "stopping"):
            self.notify(f"{self.study_name} is already {status}", timeout=3)
            return
        if status == "paused":
            self._control("resume", None, f"resume requested for {self.study_name}")
            return
        self.post_message(ChooseSpecToStart(self.study_name, self.model.user_attrs, self._start))

    @work(thread=True, exclusive=True, group="launch")
    def _start(self, spec: Path, trials: int | None = None) -> None:
        from engine.launch import RunRequest, UsageError, explain_refusal, start_detached
        from engine.spec import SpecError

        count = f", {trials} trials as last launched" if trials else ""
        self.app.call_from_thread(self.notify, f"starting {self.study_name} from {spec.name}{count}...", timeout=3)
        try:  # what `tunetui run SPEC --detach` does, with its checks and its answer
            started = start_detached(RunRequest(spec, trials=trials), self.app.storage_url)
            ok, text = started.ok, started.summary()
        except (SpecError, UsageError, StoreError) as err:
            ok, text = False, explain_refusal(err)
        if ok:
            self.app.call_from_thread(self.notify, f"started {self.study_name}", timeout=4)
        else:
            self.app.call_from_thread(self.notify, text, severity="error", markup=False, timeout=10)
        self._polling.wake.set()

    def action_analysis(self) -> None:
        self.post_message(OpenAnalysis(self.study_name))

    def action_export(self) -> None:
        if self.model.study_id is None:
            self.notify("the study is not in the store yet", severity="warning")
            return
        self.post_message(ExportStudy(self.study_name))
