"""The numbers behind the analysis views (parallel coordinates, slice, contour, EDF, rank, timeline; for several
objectives the Pareto front, each objective's history and the hypervolume history), from
TrialRows alone: what optuna.visualization plots, computed here so a terminal can draw it. Pure: no store,
no Textual, no torch; only complete trials with a finite value count as scored."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine import objectives
from engine.objectives import as_costs, pareto_front, reference_point
from engine.store import TrialRow

LOG_SPAN = 100.0  # a positive numeric parameter spanning this factor or more is drawn on a log axis


def scored(rows: Iterable[TrialRow]) -> list[TrialRow]:
    """Complete trials with one finite value, by number."""
    done = [r for r in rows if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)]
    return sorted(done, key=lambda r: r.number)


def param_names(rows: Iterable[TrialRow]) -> list[str]:
    """Every parameter any of these trials has, sorted."""
    return sorted({name for r in rows for name in r.params})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Axis:
    """One parameter as an axis: numeric (log10 when it spans LOG_SPAN or more) or categorical (the
    categories in sorted order at positions 0, 1, ...)."""

    name: str
    categories: tuple[str, ...] = ()
    log: bool = False

    def position(self, value: Any) -> float | None:
        """Where a value sits on this axis; None for a missing or unplaceable value."""
        if value is None:
            return None
        if self.categories:
            text = str(value)
            return float(self.categories.index(text)) if text in self.categories else None
        if not _is_number(value) or (self.log and value <= 0):
            return None
        return math.log10(value) if self.log else float(value)

    def label(self, position: float) -> str:
        """A position written back as the parameter's value (a category's name, 10**x on a log axis)."""
        if self.categories:
            index = round(position)
            return self.categories[index] if 0 <= index < len(self.categories) else ""
        return f"{10**position:.3g}" if self.log else f"{position:.4g}"


def axis_of(name: str, rows: Iterable[TrialRow]) -> Axis:
    values = [r.params[name] for r in rows if r.params.get(name) is not None]
    if values and all(_is_number(v) for v in values):
        low, high = min(values), max(values)
        return Axis(name, log=low > 0 and high / low >= LOG_SPAN)
    return Axis(name, categories=tuple(sorted({str(v) for v in values})))


@dataclass(frozen=True)
class SlicePoint:
    x: float  # the position on the parameter's axis
    value: float
    number: int


def slice_points(rows: Iterable[TrialRow], name: str) -> tuple[Axis, list[SlicePoint]]:
    """The objective against one parameter: one point per scored trial that has the parameter."""
    done = scored(rows)
    axis = axis_of(name, done)
    points = []
    for r in done:
        x = axis.position(r.params.get(name))
        if x is not None:
            points.append(SlicePoint(x, r.value, r.number))  # type: ignore[arg-type]  # scored: a float
    return axis, points


def best_first(rows: Iterable[TrialRow], maximize: bool) -> list[TrialRow]:
    """Scored trials, the best first (ties: the lower number first)."""
    return sorted(scored(rows), key=lambda r: (-r.value if maximize else r.value, r.number))  # type: ignore[operator]


def ranked(rows: Iterable[TrialRow], maximize: bool) -> list[tuple[int, TrialRow]]:
    """(rank, trial), the best first; equal values share a rank and the next rank skips ("1224")."""
    out: list[tuple[int, TrialRow]] = []
    for i, r in enumerate(best_first(rows, maximize)):
        rank = out[-1][0] if out and out[-1][1].value == r.value else i + 1
        out.append((rank, r))
    return out


@dataclass(frozen=True)
class ParallelLine:
    number: int
    ys: tuple[float | None, ...]  # per axis, 0..1 between that axis's low and high; None: no such param
    best: bool


@dataclass(frozen=True)
class Parallel:
    axes: tuple[Axis, ...]  # the objective first (named "value"), then the parameters
    lows: tuple[float, ...]  # each axis's range, in axis positions
    highs: tuple[float, ...]
    lines: tuple[ParallelLine, ...]


def parallel(rows: Iterable[TrialRow], names: Sequence[str], maximize: bool, best_share: float = 0.1) -> Parallel:
    """Every scored trial as a line across the objective's axis and one axis per parameter, each axis
    scaled to 0..1; the best `best_share` of the trials (at least one) are marked best."""
    ordered = best_first(rows, maximize)
    best = {r.number for r in ordered[: max(1, round(len(ordered) * best_share))]} if ordered else set()
    axes = (Axis("value"), *(axis_of(n, ordered) for n in names))
    positions = [[r.value, *(a.position(r.params.get(a.name)) for a in axes[1:])] for r in ordered]
    lows, highs = [], []
    for i, axis in enumerate(axes):
        seen = [p[i] for p in positions if p[i] is not None]
        if axis.categories:
            lows.append(0.0)
            highs.append(float(max(len(axis.categories) - 1, 0)))
        else:
            lows.append(min(seen) if seen else 0.0)
            highs.append(max(seen) if seen else 0.0)

    def scale(i: int, p: float | None) -> float | None:
        if p is None:
            return None
        span = highs[i] - lows[i]
        return (p - lows[i]) / span if span else 0.5

    lines = tuple(
        ParallelLine(r.number, tuple(scale(i, p) for i, p in enumerate(pos)), r.number in best)
        for r, pos in sorted(zip(ordered, positions, strict=True), key=lambda rp: rp[0].number)
    )
    return Parallel(axes, tuple(lows), tuple(highs), lines)


@dataclass(frozen=True)
class ContourGrid:
    x: Axis
    y: Axis
    x_edges: tuple[float, ...]  # nx + 1 edges in axis positions (one bin per category or distinct value
    y_edges: tuple[float, ...]  # when there are no more of those than bins)
    x_centers: tuple[float, ...]  # each bin's label position: the category, the distinct value, the middle
    y_centers: tuple[float, ...]
    cells: tuple[tuple[float | None, ...], ...]  # cells[row][col], row 0 = the lowest y; None: no trial there
    count: int  # trials placed


def _bins(axis: Axis, positions: list[float], bins: int) -> tuple[list[float], list[float]]:
    """(edges, centers) of an axis's bins: one per category, one per distinct value when there are at most
    `bins` of them (an integer parameter's 1, 2, 3), else `bins` equal ones."""
    if axis.categories:
        return [i - 0.5 for i in range(len(axis.categories) + 1)], [float(i) for i in range(len(axis.categories))]
    distinct = sorted(set(positions))
    if len(distinct) <= bins:
        if len(distinct) == 1:
            return [distinct[0] - 0.5, distinct[0] + 0.5], distinct
        middles = [(a + b) / 2 for a, b in zip(distinct, distinct[1:], strict=False)]
        first, last = distinct[0] - (middles[0] - distinct[0]), distinct[-1] + (distinct[-1] - middles[-1])
        return [first, *middles, last], distinct
    low, high = distinct[0], distinct[-1]
    edges = [low + (high - low) * i / bins for i in range(bins + 1)]
    return edges, [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]


def bin_index(edges: Sequence[float], position: float) -> int:
    for i in range(len(edges) - 2, -1, -1):
        if position >= edges[i]:
            return i
    return 0


def contour(rows: Iterable[TrialRow], x_name: str, y_name: str, nx: int, ny: int) -> ContourGrid | None:
    """The mean objective of the scored trials falling in each cell of an nx by ny grid over two
    parameters (binned mean: no interpolation, so an empty cell stays empty); None when no trial has both."""
    done = scored(rows)
    x_axis, y_axis = axis_of(x_name, done), axis_of(y_name, done)
    placed = []
    for r in done:
        px, py = x_axis.position(r.params.get(x_name)), y_axis.position(r.params.get(y_name))
        if px is not None and py is not None:
            placed.append((px, py, r.value))
    if not placed:
        return None
    x_edges, x_centers = _bins(x_axis, [p[0] for p in placed], nx)
    y_edges, y_centers = _bins(y_axis, [p[1] for p in placed], ny)
    sums: dict[tuple[int, int], list[float]] = {}
    for px, py, value in placed:
        sums.setdefault((bin_index(y_edges, py), bin_index(x_edges, px)), []).append(value)  # type: ignore[arg-type]
    cells = tuple(
        tuple(
            (sum(v) / len(v)) if (v := sums.get((row, col))) else None for col in range(len(x_edges) - 1)
        )
        for row in range(len(y_edges) - 1)
    )
    return ContourGrid(x_axis, y_axis, tuple(x_edges), tuple(y_edges), tuple(x_centers), tuple(y_centers), cells,
                       len(placed))  # fmt: skip


def edf(rows: Iterable[TrialRow]) -> list[tuple[float, float]]:
    """The empirical distribution of the objective: (value, share of scored trials with a value at most
    this), one step per distinct value, ascending."""
    values = sorted(r.value for r in scored(rows))  # type: ignore[type-var]
    steps: list[tuple[float, float]] = []
    for i, value in enumerate(values):
        share = (i + 1) / len(values)
        if steps and steps[-1][0] == value:
            steps[-1] = (value, share)
        else:
            steps.append((value, share))
    return steps


@dataclass(frozen=True)
class Span:
    number: int
    state: str
    start: float | None  # seconds after the first trial started; None: not started (WAITING)
    end: float | None  # a running trial ends at `now`


def timeline(rows: Iterable[TrialRow], now: float) -> list[Span]:
    """Every trial as a span over wall-clock time, by number, measured from the first start."""
    rows = sorted(rows, key=lambda r: r.number)
    starts = [r.started for r in rows if r.started is not None]
    if not starts:
        return [Span(r.number, r.state, None, None) for r in rows]
    origin = min(starts)
    spans = []
    for r in rows:
        if r.started is None:
            spans.append(Span(r.number, r.state, None, None))
            continue
        end = r.finished if r.finished is not None else max(now, r.started)
        spans.append(Span(r.number, r.state, r.started - origin, end - origin))
    return spans


# ------------------------------------------------------------ several objectives
def scored_all(rows: Iterable[TrialRow], objectives: int) -> list[TrialRow]:
    """Complete trials with a finite value for each of `objectives` objectives, by number."""
    done = [r for r in rows if r.state == "COMPLETE" and len(r.values) == objectives
            and all(v is not None and math.isfinite(v) for v in r.values)]  # fmt: skip
    return sorted(done, key=lambda r: r.number)


def front(rows: Iterable[TrialRow], directions: Sequence[str]) -> list[TrialRow]:
    """The complete trials on the Pareto front, by number."""
    done = scored_all(rows, len(directions))
    on_front = set(pareto_front({r.number: r.values for r in done}, directions))
    return [r for r in done if r.number in on_front]


@dataclass(frozen=True)
class ObjectiveHistory:
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    best: tuple[float, ...]  # the best value so far, after each trial


def objective_history(rows: Iterable[TrialRow], objective: int, direction: str) -> ObjectiveHistory:
    """One objective's value per complete trial (those with a finite value for it), and the best so far."""
    points = [(r.number, r.values[objective]) for r in sorted(rows, key=lambda r: r.number)
              if r.state == "COMPLETE" and len(r.values) > objective and r.values[objective] is not None
              and math.isfinite(r.values[objective])]  # type: ignore[arg-type]  # fmt: skip
    maximize = str(direction).upper() == "MAXIMIZE"
    best: list[float] = []
    for _, value in points:
        best.append(value if not best else (max if maximize else min)(best[-1], value))  # type: ignore[type-var]
    return ObjectiveHistory(tuple(n for n, _ in points), tuple(v for _, v in points), tuple(best))  # type: ignore[arg-type]


@dataclass(frozen=True)
class HypervolumeHistory:
    reference: tuple[float, ...]  # in the objectives' own terms (not negated)
    numbers: tuple[int, ...]
    volumes: tuple[float, ...]  # the front's hypervolume after each complete trial


def hypervolume_history(rows: Iterable[TrialRow], directions: Sequence[str]) -> HypervolumeHistory | None:
    """The hypervolume of the Pareto front after each complete trial, against one reference point for the
    whole history: per objective the worst value among complete trials, moved 10% of the range further
    (Optuna's plot_hypervolume_history asks the user for that point). None without a complete trial."""
    done = scored_all(rows, len(directions))
    if not done:
        return None
    costs = [as_costs(r.values, directions) for r in done]  # type: ignore[arg-type]  # scored: floats
    reference = reference_point(costs)
    volumes = objectives.hypervolume_history(costs, reference)
    return HypervolumeHistory(as_costs(reference, directions), tuple(r.number for r in done), tuple(volumes))
