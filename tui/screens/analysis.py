"""The Analysis screen: parallel coordinates, slice, contour, EDF, rank, timeline and intermediate values of
one study (keys 1-7); for several objectives the Pareto front, each objective's history and the hypervolume
history (keys 8, 9, 0). One view at a time, read live on its own read-only connection."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from engine import analysis
from engine.identity import ATTR as IDENTITY_ATTR
from engine.objectives import recorded_names
from engine.text import safe
from tui.data import Want
from tui.formatting import format_value
from tui.messages import PollFailed, StudyUpdated
from tui.polling import StudyPolling
from tui.study_model import StudyModel
from tui.widgets import analysis_views as views
from tui.widgets.footer import KeyFooter

VIEWS = ("parallel", "slice", "contour", "edf", "rank", "timeline", "intermediate", "pareto", "objectives",
         "hypervolume")
KEYS = dict(zip(VIEWS, "1234567890", strict=True))
ONE_OBJECTIVE = ("parallel", "slice", "contour", "edf", "rank")  # views of the value of a one-objective study
SEVERAL_OBJECTIVES = ("pareto", "objectives", "hypervolume")
NAMES = {
    "parallel": "parallel",
    "slice": "slice",
    "contour": "contour",
    "edf": "EDF",
    "rank": "rank",
    "timeline": "timeline",
    "intermediate": "intermediate",
    "pareto": "Pareto front",
    "objectives": "objectives",
    "hypervolume": "hypervolume",
}
MAX_SLICES = 3  # slice charts side by side (two below 120 columns)
MIN_SCORED = 2  # complete trials with a value a value view needs
TRIALS_PER_PAGE = 8  # intermediate values: trials drawn at once (one marker each)
REDRAW_EVERY_S = 1.0  # streaming data redraws the view at most this often


class AnalysisScreen(Screen):
    HELP_TITLE = "Analysis"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        *(Binding(KEYS[view], f"view('{view}')", NAMES[view].capitalize(), show=False) for view in VIEWS),
        Binding("left_square_bracket", "page(-1)", "Prev", key_display="[",
                tooltip="Previous parameters (slice), x parameter (contour), trials (intermediate values)"),  # fmt: skip
        Binding("right_square_bracket", "page(1)", "Next", key_display="]",
                tooltip="Next parameters (slice), x parameter (contour), trials (intermediate values)"),  # fmt: skip
        Binding("comma", "other(-1)", "Prev y parameter (contour)", key_display=",", show=False),
        Binding("full_stop", "other(1)", "Next y parameter (contour)", key_display=".", show=False),
        # the text views (timeline, rank, the front's table) scroll with the arrows, pgup/pgdn, home/end, j/k
        Binding("j", "scroll_text(1)", "Scroll down", show=False),
        Binding("k", "scroll_text(-1)", "Scroll up", show=False),
    ]

    def __init__(self, study_name: str, view: str = "parallel") -> None:
        super().__init__()
        self.study_name = study_name
        self.model = StudyModel(study_name)
        self.view = view
        self.pages = dict.fromkeys(VIEWS, 0)
        self.other = 1  # contour: the y parameter's index (the x parameter's is the page)
        self.chosen = False  # the user picked a view (else a study with several objectives opens on its front)
        self.want = Want()
        self.loaded = False
        self.deltas = 0  # deltas applied
        self._want_from = 0  # the delta from which the current `want` has surely been read
        self._polling = StudyPolling(self, study_name, slower=3)  # these views need no 3 Hz
        self._drawn_at = 0.0
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(safe(self.study_name)), id="analysis-title", classes="title")
        yield Static("", id="analysis-views")
        with Horizontal(id="analysis-plots"):
            for i in range(MAX_SLICES):  # the slice view shows several; the other charts the first only
                yield views.AnalysisPlot(id=f"analysis-plot-{i}")
        yield Static("", id="analysis-caption")
        with VerticalScroll(id="analysis-scroll"):
            yield Static("reading the study...", id="analysis-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#analysis-scroll").focus()
        self._show()
        self.poll()

    # ------------------------------------------------------------ reading (a thread, like the Study screen)
    @work(thread=True, exclusive=True, group="analysis-poll")
    def poll(self) -> None:
        self._polling.run(lambda: self.want)

    def on_unmount(self) -> None:
        self._polling.close()


    def on_poll_failed(self, message: PollFailed) -> None:
        self.query_one("#analysis-title", Static).update(Text(f"{safe(self.study_name)} · {safe(message.error)}"))

    def on_study_updated(self, message: StudyUpdated) -> None:
        dirty = self.model.apply(message.delta)
        self.deltas += 1
        first = not self.loaded and not message.delta.partial
        self.loaded = self.loaded or first
        if dirty.direction and self.model.objectives > 1 and not self.chosen:
            self.view = "pareto"
        if first or dirty.trials or dirty.curves or dirty.direction or self.deltas == self._want_from:
            self._show_soon()

    def _show_soon(self) -> None:
        wait = REDRAW_EVERY_S - (time.monotonic() - self._drawn_at)
        if wait <= 0:
            self._show()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._show)

    # ------------------------------------------------------------ drawing
    def _show(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._drawn_at = time.monotonic()
        self._want()
        model = self.model
        self.query_one("#analysis-title", Static).update(model.title(), layout=False)  # markup, names escaped
        tabs = Text()
        hidden = ONE_OBJECTIVE if model.objectives > 1 else SEVERAL_OBJECTIVES  # their keys still answer
        for view in VIEWS:
            if view not in hidden or view == self.view:
                tabs.append(f" {KEYS[view]} {NAMES[view]} ", style="reverse bold" if view == self.view else "")
        self.query_one("#analysis-views", Static).update(tabs)
        charts, caption, text = self._render_view() if self.loaded else ([], "", "reading the study...")
        for i, plot in enumerate(self.query(views.AnalysisPlot)):
            plot.display = i < len(charts)
            if i < len(charts):
                plot.show(charts[i])
        self.query_one("#analysis-plots").display = bool(charts)
        self.query_one("#analysis-caption", Static).update(caption)
        self.query_one("#analysis-caption").display = bool(caption)
        scroll = self.query_one("#analysis-scroll")
        scroll.display = not charts
        if not charts:
            self.query_one("#analysis-text", Static).update(text)
            scroll.focus()  # hidden while a chart showed, it lost the focus: its scroll keys answer again

    def _render_view(self):
        """(plotext drawings, a caption, a text renderable shown when there is no drawing): the current view."""
        model, view = self.model, self.view
        rows = list(model.rows.values())
        if view == "timeline":
            spans = analysis.timeline(rows, self.app.clock())
            if not any(s.start is not None for s in spans):
                return [], "", "no trial has started yet"
            return [], "", views.timeline_text(spans, self.size.width)
        if view == "intermediate":
            return self._intermediate()
        if view in SEVERAL_OBJECTIVES:
            return self._several_objectives()
        if model.objectives > 1:
            return [], "", (f"this view needs one objective; the study has {model.objectives}: "
                            "8 Pareto front, 9 objectives, 0 hypervolume")  # fmt: skip
        done = analysis.scored(rows)
        if len(done) < MIN_SCORED:
            return [], "", (f"not enough trials: {len(done)} complete with a value "
                              f"({MIN_SCORED} needed for the {NAMES[view]} view)")  # fmt: skip
        names = analysis.param_names(done)
        best = analysis.best_first(done, model.maximizing)[0]
        if view == "edf":
            return [views.edf_draw(analysis.edf(done), model.maximizing)], "", ""
        if view == "rank":
            return [], "", views.rank_table(analysis.ranked(done, model.maximizing), names)
        if not names:
            return [], "", "the trials have no parameters"
        if view == "parallel":
            par = analysis.parallel(done, names, model.maximizing)
            return [views.parallel_draw(par)], views.parallel_ranges(par), ""
        if view == "slice":
            per_page = MAX_SLICES if self.size.width >= 120 else 2
            pages = (len(names) + per_page - 1) // per_page
            page = self.pages["slice"] % pages
            shown = names[page * per_page : (page + 1) * per_page]
            charts = [views.slice_draw(*analysis.slice_points(done, n), best.number) for n in shown]
            return charts, f"parameters {', '.join(map(safe, shown))}: page {page + 1}/{pages} ([ ] pages)", ""
        if len(names) < 2:
            return [], "", "the contour view needs two parameters"
        x_name = names[self.pages["contour"] % len(names)]
        y_name = names[self.other % len(names)]
        if x_name == y_name:
            y_name = names[(self.other + 1) % len(names)]
        nx = max(4, min(30, (self.size.width - 14) // 2))
        ny = max(3, min(12, self.size.height - 11))
        grid = analysis.contour(done, x_name, y_name, nx, ny)
        if grid is None:
            return [], "", f"no complete trial has both {safe(x_name)} and {safe(y_name)}"
        return [], "", views.contour_text(grid, model.maximizing, best)

    def _several_objectives(self):
        """The Pareto front, each objective's history, or the hypervolume history."""
        model, view = self.model, self.view
        if model.objectives < 2:
            return [], "", f"this view needs several objectives; the study has {model.objectives}"
        directions = model.directions
        names = recorded_names(model.user_attrs.get(IDENTITY_ATTR), model.objectives)  # None: Optuna made it
        done = analysis.scored_all(model.rows.values(), model.objectives)
        if len(done) < MIN_SCORED:
            return [], "", (f"not enough trials: {len(done)} complete with a value for every objective "
                            f"({MIN_SCORED} needed for the {NAMES[view]} view)")  # fmt: skip
        if view == "pareto":
            front = analysis.front(done, directions)
            if model.objectives == 2:
                return [views.pareto_draw(done, front, directions, names)], "`*` on the Pareto front, `o` the others", ""
            return [], "", views.pareto_table(front, directions, analysis.param_names(front), names)
        if view == "objectives":
            per_page = MAX_SLICES if self.size.width >= 120 else 2
            pages = (model.objectives + per_page - 1) // per_page
            page = self.pages["objectives"] % pages
            shown = range(page * per_page, min(model.objectives, (page + 1) * per_page))
            charts = [views.objective_history_draw(analysis.objective_history(done, i, directions[i]), i,
                                                   directions[i], names) for i in shown]  # fmt: skip
            more = f": page {page + 1}/{pages} ([ ] pages)" if pages > 1 else ""
            return charts, f"each objective by trial, `o` its value, the line its best so far{more}", ""
        history = analysis.hypervolume_history(done, directions)
        assert history is not None  # done is not empty
        reference = ", ".join(format_value(v) for v in history.reference)
        return [views.hypervolume_draw(history)], (f"reference point ({reference}): the worst value per "
                                                   "objective among complete trials, 10% of its range further"), ""  # fmt: skip

    def _intermediate_numbers(self) -> list[int]:
        started = sorted((n for n, r in self.model.rows.items() if r.started is not None), reverse=True)
        pages = max(1, (len(started) + TRIALS_PER_PAGE - 1) // TRIALS_PER_PAGE)
        page = self.pages["intermediate"] % pages
        return started[page * TRIALS_PER_PAGE : (page + 1) * TRIALS_PER_PAGE]

    def _intermediate(self):
        numbers = self._intermediate_numbers()
        epochs = self.model.epochs
        rows = [r for n in numbers for r in epochs.get(n, [])]
        if not rows:
            reading = self.deltas < self._want_from
            return [], "", "reading the trials' epochs..." if reading else "no trial has reported a value per epoch yet"
        metric = self.model.user_attrs.get("metric")
        # what trial.report wrote (Optuna alone), else the study's metric, else tunetui's defaults
        candidates = ("intermediate", metric if isinstance(metric, str) else "", "val_acc", "val_loss")
        key = next((c for c in candidates if c and any(c in r for r in rows)), "val_loss")
        series = []
        for n in numbers:
            trial_rows = epochs.get(n, [])
            state = self.model.rows[n].state.lower()
            series.append((f"#{n} {state}", [r["epoch"] for r in trial_rows], [r.get(key) for r in trial_rows]))
        older = "" if len(self.model.rows) <= TRIALS_PER_PAGE else ", [ ] older/newer trials"
        caption = f"trials #{min(numbers)}-#{max(numbers)}, the newest first{older}"
        what = "intermediate value" if key == "intermediate" else key
        return [views.intermediate_draw(series, what)], caption, ""

    def _want(self) -> None:
        want = Want(curves=tuple(self._intermediate_numbers())) if self.view == "intermediate" else Want()
        if want != self.want:
            self.want = want
            self._want_from = self.deltas + 2  # the poll under way may have read the old one
            self._polling.wake.set()

    # ------------------------------------------------------------ keys
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_view(self, view: str) -> None:
        self.view = view
        self.chosen = True
        self._show()
        self.refresh_bindings()  # [ ] and , . apply to some views only

    def action_page(self, step: int) -> None:
        self.pages[self.view] += step
        self._show()

    def action_scroll_text(self, step: int) -> None:
        self.query_one("#analysis-scroll").scroll_relative(y=step, animate=False)

    def action_other(self, step: int) -> None:
        self.other += step
        self._show()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "other":
            return self.view == "contour"
        if action == "page":
            return self.view in ("slice", "contour", "intermediate", "objectives")
        return True
