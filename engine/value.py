"""How a trial's value is taken from its per-epoch metric: the spec's `[study] value` rule."""

from __future__ import annotations

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
