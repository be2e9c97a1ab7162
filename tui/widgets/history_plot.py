"""Study-level charts: the optimization history (value per trial, best so far) and parameter importance."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from textual import work
from textual_plotext import PlotextPlot

from engine.store import StoreError, TrialRow
from engine.text import safe
from tui.data import best_so_far, downsample, open_store, param_importances
from tui.messages import ImportancesComputed
from tui.widgets.curves import set_whole_x_ticks

MIN_IMPORTANCE_TRIALS = 8
IMPORTANCE_EVERY_S = 10.0


class HistoryPlot(PlotextPlot):
    """Objective value of every complete trial, and the best value so far."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.numbers: list[int] = []
        self.values: list[float] = []
        self.maximize = True
        self.draws = 0

    def set_trials(self, rows: Iterable[TrialRow], maximize: bool) -> None:
        done = sorted(
            (r.number, r.value)
            for r in rows
            if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)
        )
        self.numbers = [n for n, _ in done]
        self.values = [v for _, v in done]
        self.maximize = maximize
        self.refresh()

    def render(self):
        self.draws += 1
        plt = self.plt
        plt.clear_figure()
        if not self.numbers:
            plt.title("optimization history: no complete trial yet")
            return super().render()
        best = best_so_far(self.values, self.maximize)
        xs, ys = downsample(self.numbers, self.values, 1000)
        plt.scatter(xs, ys, marker="o", color="cyan", label="value")  # marks, not colour alone, tell them apart
        bx, by = downsample(self.numbers, best, 1000)
        plt.plot(bx, by, marker="braille", color="orange", label="best so far")
        plt.title(f"optimization history ({len(self.numbers)} complete, best {best[-1]:.4g})")
        plt.xlabel("trial")
        set_whole_x_ticks(plt, self.numbers)
        return super().render()


class ImportancePlot(PlotextPlot):
    """fANOVA parameter importances as horizontal bars, each with its number; computed in a thread from the
    study loaded read-only, once MIN_IMPORTANCE_TRIALS are complete and again when more are (at most every
    IMPORTANCE_EVERY_S)."""

    def __init__(self, study_name: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.study_name = study_name
        self.importances: dict[str, float] = {}
        self.note = f"needs at least {MIN_IMPORTANCE_TRIALS} complete trials"
        self.computed_for = -1  # complete trials of the last computation
        self.computed_at = 0.0
        self.busy = False

    def set_importances(self, importances: dict[str, float] | None, note: str = "") -> None:
        self.importances = importances or {}
        self.note = note
        self.refresh()

    def update_for(self, complete: int, force: bool = False) -> None:
        """Compute again when there are more complete trials (or `force`, the tab just opened)."""
        if complete < MIN_IMPORTANCE_TRIALS:
            self.set_importances(None, f"needs {MIN_IMPORTANCE_TRIALS} complete trials ({complete} so far)")
            return
        due = time.monotonic() - self.computed_at >= IMPORTANCE_EVERY_S or force
        if self.busy or complete == self.computed_for or not due:
            return
        self.busy = True
        self.computed_at = time.monotonic()
        if not self.importances:
            self.set_importances(None, f"computing from {complete} complete trials...")
        self._compute(complete)

    @work(thread=True, exclusive=True, group="importance")
    def _compute(self, complete: int) -> None:
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
        self.busy = False
        self.computed_for = message.complete
        self.set_importances(message.importances, message.note)

    def render(self):
        plt = self.plt
        plt.clear_figure()
        if not self.importances:
            plt.title(f"parameter importance: {safe(self.note)}")
            return super().render()
        # largest at the top; the number beside each name, so no bar is read by its length alone
        names = [f"{safe(n)} {v:.2f}" for n, v in self.importances.items()][::-1]  # param names from the store
        plt.bar(
            names, list(self.importances.values())[::-1], orientation="horizontal", color="cyan", width=0.6
        )
        plt.title(f"parameter importance (fANOVA){', ' + self.note if self.note else ''}")
        return super().render()
