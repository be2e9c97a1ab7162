"""The analysis views drawn for a terminal: plotext charts (parallel coordinates, slice, EDF, intermediate
values) and rich text (contour heat map, rank table, timeline bars). The numbers come from engine/analysis.py.
Series are told apart by marker and legend, never by colour alone (NO_COLOR keeps every marker)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual_plotext import PlotextPlot

from engine import analysis
from engine.store import TrialRow
from engine.text import safe
from tui.data import downsample
from tui.formatting import format_duration, format_value
from tui.widgets.curves import set_whole_x_ticks

MARKERS = ("o", "x", "+", "*", "#", "@", "%", "&")  # intermediate values: one per trial shown
PALETTE = ("cyan", "orange", "green", "magenta", "blue", "yellow", "red", "gray")
SHADES = "░▒▓█"  # contour levels, low to high value
STATE_MARKS = {"COMPLETE": "█", "PRUNED": "▒", "FAIL": "x", "RUNNING": ">", "WAITING": "·"}
MAX_LINES = 200  # parallel coordinates: trials drawn besides the best (evenly picked)
MAX_ROWS = 500  # rank table and timeline rows

Draw = Callable[[object], None]  # given plotext's `plt`, draws one view


class AnalysisPlot(PlotextPlot):
    """A plotext chart whose drawing is a function set by the screen; `draws` counts builds (tests)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.draw: Draw | None = None
        self.draws = 0

    def show(self, draw: Draw) -> None:
        self.draw = draw
        self.refresh()

    def render(self):
        self.draws += 1
        self.plt.clear_figure()
        if self.draw is not None:
            self.draw(self.plt)
        return super().render()


def _short(name: str, width: int) -> str:
    name = safe(name)
    return name if len(name) <= width else name[: width - 1] + "…"


def parallel_draw(par: analysis.Parallel) -> Draw:
    """One x position per axis (the objective first), each axis scaled 0..1; the best trials drawn last
    with `*`, the others with `.` (at most MAX_LINES of them)."""
    others = [line for line in par.lines if not line.best]
    if len(others) > MAX_LINES:
        others = [others[round(i * (len(others) - 1) / (MAX_LINES - 1))] for i in range(MAX_LINES)]
    best = [line for line in par.lines if line.best]

    def draw(plt) -> None:
        for group, marker, color, label in ((others, ".", "gray", f"other trials ({len(others)})"),
                                            (best, "*", "orange", f"best {len(best)}")):  # fmt: skip
            for i, line in enumerate(group):
                xs = [x for x, y in enumerate(line.ys) if y is not None]
                ys = [y for y in line.ys if y is not None]
                plt.plot(xs, ys, marker=marker, color=color, label=label if i == 0 else None)
        width = max(4, 70 // max(1, len(par.axes)))
        plt.xticks(list(range(len(par.axes))), [_short(a.name, width) for a in par.axes])
        plt.yticks([0, 1], ["low", "high"])
        plt.ylim(-0.05, 1.05)
        plt.title(f"parallel coordinates ({len(par.lines)} complete trials)")

    return draw


def parallel_ranges(par: analysis.Parallel) -> str:
    """Each axis's range as text (the chart's y axis is 0..1 for every axis)."""
    parts = []
    for axis, low, high in zip(par.axes, par.lows, par.highs, strict=True):
        if axis.categories:
            parts.append(f"{safe(axis.name)}: {' < '.join(safe(c) for c in axis.categories)}")
        else:
            parts.append(f"{safe(axis.name)}: {axis.label(low)}..{axis.label(high)}{' (log)' if axis.log else ''}")
    return "   ".join(parts)


def slice_draw(axis: analysis.Axis, points: list[analysis.SlicePoint], best: int | None) -> Draw:
    """The value against one parameter: `o` every trial, `*` the best one."""

    def draw(plt) -> None:
        rest = [p for p in points if p.number != best]
        top = [p for p in points if p.number == best]
        for group, marker, color, label in ((rest, "o", "cyan", "trial"), (top, "*", "orange", f"best #{best}")):
            if group:
                plt.scatter([p.x for p in group], [p.value for p in group], marker=marker, color=color, label=label)
        _axis_ticks(plt, axis, [p.x for p in points])
        plt.title(f"{_short(axis.name, 24)}{' (log)' if axis.log else ''}")

    return draw


def _axis_ticks(plt, axis: analysis.Axis, positions: list[float]) -> None:
    if axis.categories:
        ticks = list(range(len(axis.categories)))
        plt.xticks(ticks, [_short(c, 8) for c in axis.categories])
        plt.xlim(-0.5, len(axis.categories) - 0.5)
    elif axis.log and positions:
        low, high = min(positions), max(positions)
        ticks = [low, (low + high) / 2, high] if high > low else [low]
        plt.xticks(ticks, [axis.label(t) for t in ticks])


def edf_draw(steps: list[tuple[float, float]], maximize: bool) -> Draw:
    """The share of complete trials with a value at most x, as a step line."""
    xs, ys = [], []
    previous = 0.0
    for value, share in steps:
        xs += [value, value]
        ys += [previous, share]
        previous = share

    def draw(plt) -> None:
        plt.plot(xs, ys, marker="braille", color="cyan", label=f"{len(steps)} distinct values")
        plt.ylim(0, 1)
        plt.title(f"empirical distribution of the value ({'higher' if maximize else 'lower'} is better)")
        plt.xlabel("value")

    return draw


def intermediate_draw(series: Sequence[tuple[str, list, list]], what: str) -> Draw:
    """Several trials' per-epoch values, each with its own marker and a legend entry naming it."""

    def draw(plt) -> None:
        for i, (label, xs, ys) in enumerate(series):
            keep = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None and math.isfinite(y)]
            if not keep:
                continue
            px, py = downsample([x for x, _ in keep], [y for _, y in keep], 400)
            plt.plot(px, py, marker=MARKERS[i % len(MARKERS)], color=PALETTE[i % len(PALETTE)], label=label)
        plt.title(f"{safe(what)} per epoch")
        plt.xlabel("epoch (step of trial.report)")
        set_whole_x_ticks(plt, [x for _, xs, ys in series for x, y in zip(xs, ys, strict=False)
                                if y is not None and math.isfinite(y)])  # fmt: skip

    return draw


def contour_text(grid: analysis.ContourGrid, maximize: bool, best: TrialRow | None) -> RenderableType:
    """A heat map of the binned mean value: one shade per quarter of the value range (legend below), `··`
    where no trial fell, `★` on the best trial's cell."""
    values = [v for row in grid.cells for v in row if v is not None]
    low, high = min(values), max(values)

    def level(v: float) -> int:
        return 0 if high == low else min(len(SHADES) - 1, int((v - low) / (high - low) * len(SHADES)))

    best_cell = None
    if best is not None:
        bx, by = grid.x.position(best.params.get(grid.x.name)), grid.y.position(best.params.get(grid.y.name))
        if bx is not None and by is not None:
            best_cell = (analysis.bin_index(grid.y_edges, by), analysis.bin_index(grid.x_edges, bx))
    label_width = 9
    cols = len(grid.cells[0])
    # a categorical x axis names each column under it: its cells are as wide as the names (up to 10, 66 in all)
    names = [grid.x.label(c) for c in grid.x_centers] if grid.x.categories else []
    cell = max(2, min(10, 66 // cols, max((len(n) for n in names), default=0) + 1))
    out = Text()
    out.append(f"mean value per cell: {_short(grid.y.name, 20)} ↑ against {_short(grid.x.name, 20)} →, "
               f"{grid.count} trials\n", style="bold")  # fmt: skip
    for r in range(len(grid.cells) - 1, -1, -1):
        out.append(f"{_short(grid.y.label(grid.y_centers[r]), label_width):>{label_width}} │")
        for c, v in enumerate(grid.cells[r]):
            if (r, c) == best_cell:
                out.append("★" + SHADES[level(v)] * (cell - 1) if v is not None else "★ ", style="bold")
            elif v is None:
                out.append("·" * cell, style="dim")
            else:
                out.append(SHADES[level(v)] * cell)
        out.append("\n")
    out.append(" " * label_width + " └" + "─" * (cell * cols) + "\n")
    if names:
        out.append(" " * (label_width + 2) + "".join(_short(n, cell - 1).ljust(cell) for n in names).rstrip() + "\n")
    else:
        first, last = grid.x.label(grid.x_centers[0]), grid.x.label(grid.x_centers[-1])
        out.append(" " * (label_width + 2) + first + " " * max(1, 2 * cols - len(first) - len(last)) + last + "\n")
    step = (high - low) / len(SHADES)
    for i, shade in enumerate(SHADES):
        out.append(f"{shade * 2} {format_value(low + i * step)}..{format_value(low + (i + 1) * step)}  ")
    out.append(f"\n·· no trial  ★ the best trial ({'higher' if maximize else 'lower'} is better)")
    return out


def rank_table(ranked: list[tuple[int, TrialRow]], names: Sequence[str]) -> RenderableType:
    table = Table(title=f"trials ranked by value, best first ({len(ranked)} complete)", expand=False,
                  show_edge=False, pad_edge=False)  # fmt: skip
    for column in ("rank", "#", "value", *(safe(n) for n in names)):
        table.add_column(column, justify="right", no_wrap=True, max_width=12)
    for rank, row in ranked[:MAX_ROWS]:
        table.add_row(str(rank), str(row.number), format_value(row.value),
                      *(safe(format_value(row.params.get(n))) for n in names))  # fmt: skip
    if len(ranked) > MAX_ROWS:
        table.caption = f"the best {MAX_ROWS} of {len(ranked)}"
    return table


def timeline_text(spans: list[analysis.Span], width: int) -> RenderableType:
    """One row per trial (the newest MAX_ROWS), a bar from its start to its end, drawn with its state's mark."""
    started = [s for s in spans if s.start is not None]
    total = max((s.end or 0.0) for s in started) or 1.0
    bar_width = max(10, width - 22)
    out = Text()
    out.append("legend: " + "  ".join(f"{mark} {state.lower()}" for state, mark in STATE_MARKS.items()) + "\n")
    out.append(f"{'':>14}0s{format_duration(total):>{bar_width - 2}}\n", style="dim")
    for s in spans[-MAX_ROWS:]:
        mark = STATE_MARKS.get(s.state, "?")
        out.append(f"#{s.number:<5}{s.state.lower():<9}│")
        if s.start is None:
            out.append("(not started)", style="dim")
        else:
            left = int(s.start / total * (bar_width - 1))
            right = max(left + 1, math.ceil((s.end or s.start) / total * (bar_width - 1)))
            out.append(" " * left + mark * (right - left))
        out.append("\n")
    if len(spans) > MAX_ROWS:
        out.append(f"the newest {MAX_ROWS} of {len(spans)} trials", style="dim")
    return out


def objective_label(index: int, direction: str, names: Sequence[str] | None = None) -> str:
    """How an objective is named on axes and columns: its metric when the study recorded one (else its index)
    and which way is better."""
    name = names[index] if names else f"objective {index}"
    return f"{name} ({'max' if str(direction).upper() == 'MAXIMIZE' else 'min'})"


def pareto_draw(done: list[TrialRow], front: list[TrialRow], directions: Sequence[str],
                names: Sequence[str] | None = None) -> Draw:  # fmt: skip
    """Two objectives: every complete trial as `o`, the trials on the Pareto front as `*`."""
    on_front = {r.number for r in front}

    def draw(plt) -> None:
        for group, marker, color, label in (([r for r in done if r.number not in on_front], "o", "cyan", "trial"),
                                            (front, "*", "orange", "Pareto front")):  # fmt: skip
            if group:
                plt.scatter([r.values[0] for r in group], [r.values[1] for r in group], marker=marker, color=color,
                            label=f"{label} ({len(group)})")  # fmt: skip
        plt.xlabel(f"→ {objective_label(0, directions[0], names)}")
        plt.title(f"Pareto front of {len(done)} complete trials: ↑ {objective_label(1, directions[1], names)}")

    return draw


def pareto_table(front: list[TrialRow], directions: Sequence[str], names: Sequence[str],
                 objectives: Sequence[str] | None = None) -> RenderableType:  # fmt: skip
    """Three or more objectives: the front's trials, each objective's value and the parameters."""
    table = Table(title=f"Pareto front: {len(front)} trials", expand=False, show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    for i, direction in enumerate(directions):
        table.add_column(Text(objective_label(i, direction, objectives).replace("objective", "obj")), justify="right",
                         no_wrap=True)  # fmt: skip
    for name in names:
        table.add_column(safe(name), justify="right", no_wrap=True, max_width=12)
    for row in front[:MAX_ROWS]:
        table.add_row(str(row.number), *(format_value(v) for v in row.values),
                      *(safe(format_value(row.params.get(n))) for n in names))  # fmt: skip
    if len(front) > MAX_ROWS:
        table.caption = f"the first {MAX_ROWS} of {len(front)}"
    return table


def _steps(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """A line that holds each y until the next x (best so far, hypervolume)."""
    out_x: list[float] = []
    out_y: list[float] = []
    for x, y in zip(xs, ys, strict=True):
        if out_y:
            out_x.append(x)
            out_y.append(out_y[-1])
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y


def objective_history_draw(history: analysis.ObjectiveHistory, index: int, direction: str,
                           names: Sequence[str] | None = None) -> Draw:  # fmt: skip
    """One objective's value per trial (`o`) and the best so far (a step line)."""

    def draw(plt) -> None:
        xs, ys = downsample(list(history.numbers), list(history.values), 1000)
        plt.scatter(xs, ys, marker="o", color="cyan", label="value")
        bx, by = downsample(*_steps(history.numbers, history.best), 1000)
        plt.plot(bx, by, marker="braille", color="orange", label="best so far")
        plt.title(f"{objective_label(index, direction, names)}: best {format_value(history.best[-1])}")
        plt.xlabel("trial")
        set_whole_x_ticks(plt, history.numbers)

    return draw


def hypervolume_draw(history: analysis.HypervolumeHistory) -> Draw:
    """The front's hypervolume after each complete trial, as steps."""

    def draw(plt) -> None:
        px, py = downsample(*_steps(history.numbers, history.volumes), 1000)
        plt.plot(px, py, marker="braille", color="cyan", label="hypervolume")
        plt.title(f"hypervolume history (now {format_value(history.volumes[-1])})")
        plt.xlabel("trial")
        set_whole_x_ticks(plt, history.numbers)

    return draw


def compare_draw(studies: Sequence[tuple[str, analysis.ObjectiveHistory]]) -> Draw:
    """Two studies' histories overlaid: values as `o` / `x`, the best so far as lines of `*` / `+`."""

    def draw(plt) -> None:
        for (name, history), (marker, line, color) in zip(studies, (("o", "*", "cyan"), ("x", "+", "orange")),
                                                          strict=False):  # fmt: skip
            if not history.numbers:
                continue
            xs, ys = downsample(list(history.numbers), list(history.values), 1000)
            plt.scatter(xs, ys, marker=marker, color=color, label=_short(name, 20))
            bx, by = downsample(*_steps(history.numbers, history.best), 1000)
            plt.plot(bx, by, marker=line, color=color, label=f"{_short(name, 14)} best")
        plt.title("optimization history of both studies")
        plt.xlabel("trial")
        set_whole_x_ticks(plt, [n for _, history in studies for n in history.numbers])

    return draw


def space_diff_text(diff: Sequence[str], source: str) -> RenderableType:
    """A unified diff of two search spaces, `-` the first study's lines and `+` the second's."""
    if not diff:
        return Text(f"search space: the same ({source})")
    out = Text(f"search space differences ({source}; - first, + second):\n", style="bold")
    for line in diff[2:200]:
        out.append(safe(line) + "\n", style="green" if line.startswith("+") else "red" if line.startswith("-") else "dim")
    return out
