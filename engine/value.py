"""How a trial's value is taken from its per-epoch metric: the spec's `[study] value` rule, for each objective."""

from __future__ import annotations

import math
import statistics

VALUE_RULES = ("best", "last", "mean_last_3")


def trial_value(curve: list[float], rule: str, maximize: bool) -> tuple[float, int]:
    """(value, 1-based epoch it is credited to) of a trial whose metric per epoch is `curve` (not empty).

    best: the best epoch (biased upward: the max of noisy epochs); last: the final model's own score;
    mean_last_3: the mean of the last three epochs (the final model's level, with less noise)."""
    if rule == "best":
        pick = max if maximize else min
        value = pick(curve)
        return value, curve.index(value) + 1
    if rule == "last":
        return curve[-1], len(curve)
    if rule == "mean_last_3":
        return statistics.fmean(curve[-3:]), len(curve)
    raise ValueError(f"unknown value rule {rule!r}; expected one of {', '.join(VALUE_RULES)}")


def objective_values(curves: dict[str, dict[int, float]], final: dict[str, float | None], metrics: list[str],
                     directions: list[str], rule: str) -> tuple[list[float | None], list[int | None]]:  # fmt: skip
    """Each objective's value by `rule` over its metric's finite per-epoch values (`curves`: metric -> epoch
    -> value), and the epoch it is credited to; a metric never reported per epoch falls back to the trial's
    `final` metrics, epoch None (value None: no finite value at all, the trial fails `no_metric`)."""
    values: list[float | None] = []
    epochs: list[int | None] = []
    for metric, direction in zip(metrics, directions, strict=True):
        curve = curves.get(metric)
        if curve:
            value, epoch = trial_value(list(curve.values()), rule, direction == "maximize")
        else:
            value, epoch = final.get(metric), None
            value = value if value is not None and math.isfinite(value) else None
        values.append(value)
        epochs.append(epoch)
    return values, epochs
