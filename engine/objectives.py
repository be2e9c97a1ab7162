"""Studies with several objectives: which trials are on the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


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
