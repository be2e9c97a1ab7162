"""What each column of the trial table holds for one trial, and how the column sorts: one place for the
table, its sort and its filter (tui/trial_filter.py). Pure: no Textual."""

from __future__ import annotations

import math
from typing import Any

from engine.store import TrialRow
from tui.formatting import state_text

STATE_ORDER = {"RUNNING": 0, "WAITING": 1, "COMPLETE": 2, "PRUNED": 3, "FAIL": 4}
# metrics where higher is better, by their name's last word (val_acc, val_f1, test_r2): sorted highest first;
# every other metric (losses, errors, latency, params) sorts lowest first, which is best first for those
HIGHER_IS_BETTER = ("acc", "accuracy", "f1", "auc", "r2", "precision", "recall", "iou", "map", "bleu")


def cell(row: TrialRow, key: str, now: float) -> Any:
    """The trial's value in column `key` ("number", "state", "value", "epochs", "duration", "flags",
    "metric:NAME" (its last epoch's) or "param:NAME"); None: nothing. Several objectives: "value" is the
    first."""
    if key == "number":
        return row.number
    if key == "state":
        return state_text(row.state, row.reason)
    if key == "value":
        return row.values[0] if row.values else row.value
    if key == "epochs":  # a study run by Optuna alone: the steps it reported, its only measure of progress
        return row.epochs if row.reported is None else row.reported
    if key == "duration":
        return None if row.started is None else (row.finished or now) - row.started
    if key == "flags":
        return row.flags
    if key.startswith("metric:"):
        return row.metrics.get(key.removeprefix("metric:"))
    return row.params.get(key.removeprefix("param:"))


def sort_key(row: TrialRow, column: str, now: float) -> Any:
    """The trial's key when sorting by `column`; None: no value there (such trials go last either way).
    Numbers before texts; several objectives sort by the first, then the next."""
    if column == "number":
        return row.number
    if column == "state":
        return STATE_ORDER.get(row.state, 9)
    if column == "value" and len(row.values) > 1:
        keys = [_ordered(v) for v in row.values]
        return None if any(k is None for k in keys) else tuple(keys)
    return _ordered(cell(row, column, now))


def best_first_descending(column: str, maximizing: bool) -> bool:
    """Whether `o` sorts `column` highest first: the value as the study's direction says, a metric whose
    name says higher is better (val_acc, val_f1, val_r2); everything else lowest first."""
    if column == "value":
        return maximizing
    if column.startswith("metric:"):
        return column.removeprefix("metric:").lower().rsplit("_", 1)[-1] in HIGHER_IS_BETTER
    return False


def _ordered(value: Any) -> tuple | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))
