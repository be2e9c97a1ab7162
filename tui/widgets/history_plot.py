"""Study-level charts: the optimization history (value per trial, best so far) and parameter importance."""

from __future__ import annotations

import math
from collections.abc import Iterable

from textual_plotext import PlotextPlot

from engine.store import TrialRow
from engine.text import safe
from tui.data import best_so_far, downsample


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
        plt.scatter(xs, ys, color="cyan", label="value")
        bx, by = downsample(self.numbers, best, 1000)
        plt.plot(bx, by, color="orange", label="best so far")
        plt.title(f"optimization history ({len(self.numbers)} complete, best {best[-1]:.4g})")
        plt.xlabel("trial")
        return super().render()


class ImportancePlot(PlotextPlot):
    """fANOVA parameter importances as horizontal bars (computed elsewhere, in a thread)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.importances: dict[str, float] = {}
        self.note = "needs at least 8 complete trials"

    def set_importances(self, importances: dict[str, float] | None, note: str = "") -> None:
        self.importances = importances or {}
        self.note = note
        self.refresh()

    def render(self):
        plt = self.plt
        plt.clear_figure()
        if not self.importances:
            plt.title(f"parameter importance: {safe(self.note)}")
            return super().render()
        names = [safe(n) for n in self.importances][::-1]  # largest at the top; param names from the store
        plt.bar(
            names, list(self.importances.values())[::-1], orientation="horizontal", color="cyan", width=0.6
        )
        plt.title(f"parameter importance (fANOVA){', ' + self.note if self.note else ''}")
        return super().render()
