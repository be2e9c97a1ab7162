"""Studies with several objectives: which trials are on the Pareto front, and the hypervolume it dominates."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from engine.text import safe


def pareto_front(points: dict[Hashable, Sequence[float | None]], directions: Sequence[str]) -> list[Hashable]:
    """The keys whose values no other point dominates (at least as good in every objective, better in one).
    Points with a missing or NaN value are left out; directions are "MAXIMIZE"/"MINIMIZE" per objective."""
    signs = [1.0 if str(d).upper() == "MINIMIZE" else -1.0 for d in directions]
    costs = {
        key: tuple(s * v for s, v in zip(signs, values, strict=True))
        for key, values in points.items()
        if len(values) == len(signs) and all(v is not None and not math.isnan(v) for v in values)
    }

    def dominates(a: tuple, b: tuple) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    # sorted by cost, a point can only be dominated by one before it
    ordered = sorted(costs, key=costs.__getitem__)
    front: list[Hashable] = []
    for key in ordered:
        if not any(dominates(costs[other], costs[key]) for other in front):
            front.append(key)
    return front


def as_costs(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    """Values turned into costs, every objective minimized (a maximized one negated)."""
    return tuple(v if str(d).upper() == "MINIMIZE" else -v for v, d in zip(values, directions, strict=True))


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The exact volume dominated by `points` and bounded by `reference`, every objective a cost (the union of
    the boxes from each point to the reference). A point not better than the reference in every objective
    adds nothing. Two objectives: one sweep; more: slices along the last objective, each a hypervolume one
    dimension lower (exact, and quick enough for fronts of a few hundred trials)."""
    pts = sorted({tuple(p) for p in points if all(x < r for x, r in zip(p, reference, strict=True))},
                 key=lambda p: p[-1])  # fmt: skip
    if not pts:
        return 0.0
    if len(reference) == 1:
        return reference[0] - pts[0][0]
    if len(reference) == 2:
        volume, floor = 0.0, reference[1]
        for x, y in sorted(pts):
            if y < floor:
                volume += (reference[0] - x) * (floor - y)
                floor = y
        return volume
    volume = 0.0
    for i, p in enumerate(pts):
        top = pts[i + 1][-1] if i + 1 < len(pts) else reference[-1]
        if top > p[-1]:
            volume += hypervolume([q[:-1] for q in pts[: i + 1]], reference[:-1]) * (top - p[-1])
    return volume


def reference_point(costs: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """Per objective (as costs): the worst value, moved 10% of the values' range further (10% of its size, or
    0.1, when every value is the same), so that every point encloses some volume."""
    out = []
    for column in zip(*costs, strict=True):
        worst, spread = max(column), max(column) - min(column)
        out.append(worst + 0.1 * (spread or abs(worst) or 1.0))
    return tuple(out)


def hypervolume_history(costs: Sequence[Sequence[float]], reference: Sequence[float]) -> list[float]:
    """The hypervolume of the front of the first i+1 points, for each i (computed again only when a point
    joins the front)."""
    front: list[tuple[float, ...]] = []
    out: list[float] = []
    volume = 0.0
    for point in map(tuple, costs):
        if not any(all(a <= b for a, b in zip(q, point, strict=True)) for q in front):
            front = [q for q in front if not all(a <= b for a, b in zip(point, q, strict=True))] + [point]
            volume = hypervolume(front, reference)
        out.append(volume)
    return out


def recorded_names(identity: Any, count: int) -> list[str] | None:
    """The metric of each of `count` objectives, as a study tunetui ran recorded them (its `tt_identity`
    attr, engine/identity.py); None when the study recorded no such list (Optuna alone made it). Store text:
    control bytes stripped."""
    metrics = identity.get("metrics") if isinstance(identity, dict) else None
    if isinstance(metrics, list) and len(metrics) == count and all(isinstance(m, str) for m in metrics):
        return [safe(m) for m in metrics]
    return None
