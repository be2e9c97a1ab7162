"""How the TUI writes values, durations, states and trial counts (one place, so every screen agrees)."""

from __future__ import annotations

from typing import Any

from engine.report import KILLED, best_text, duration_text, short_number
from engine.store import TrialRow
from engine.text import safe

STATE_TEXT = {  # every Optuna TrialState; each has a trial-table--<text> style
    "COMPLETE": "complete",
    "RUNNING": "running",
    "PRUNED": "pruned",
    "FAIL": "fail",
    "WAITING": "waiting",
}
COUNT_LABELS = (("COMPLETE", "done"), ("RUNNING", "run"), ("PRUNED", "pruned"), ("FAIL", "fail"))
COUNT_LETTERS = (("COMPLETE", "c"), ("RUNNING", "r"), ("PRUNED", "p"), ("FAIL", "f"), ("KILLED", "k"),
                 ("WAITING", "w"))  # fmt: skip


def state_text(state: str, reason: str | None = None) -> str:
    """The state as a word; a trial the user killed (`FAIL killed`) reads "killed", never plain fail."""
    if state == "FAIL" and reason == KILLED:
        return KILLED
    return STATE_TEXT.get(state, state.lower())


def count_key(row: TrialRow) -> str:
    """The state a trial counts under in the header's letters: killed trials apart from other failures."""
    return "KILLED" if row.state == "FAIL" and row.reason == KILLED else row.state


def format_value(value: Any) -> str:
    """A param, attr or objective value: empty for none, 4 significant digits for a float."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return short_number(value)
    return safe(value)  # params and attrs come from the store: no control byte reaches the terminal


def format_values(row: TrialRow) -> str:
    """The value column: every objective's value when there are several, never objective 0 alone."""
    if len(row.values) > 1:
        return ", ".join(format_value(v) for v in row.values)
    return format_value(row.value)


def format_duration(seconds: float | None) -> str:
    return "" if seconds is None else duration_text(seconds)


def format_best(study: dict) -> str:
    """The Studies screen's best column: 4 significant digits, or the Pareto front's size."""
    return best_text(study, lambda value: "-" if value is None else short_number(value))


def trial_summary(counts: dict[str, int]) -> str:
    """12 (10 done, 1 pruned, 1 fail)"""
    total = sum(counts.values())
    parts = [f"{counts[state]} {label}" for state, label in COUNT_LABELS if counts.get(state)]
    return f"{total}" + (f" ({', '.join(parts)})" if parts else "")


def diagnosis_summary(kinds: dict[str, int], counts: dict[str, int], short: bool = False) -> str:
    """The most common finding among a study's ended trials: "3/12 trials: vanishing gradients" ("3/12
    vanishing gradients" when `short`, for narrow terminals)."""
    if not kinds:
        return ""
    kind, trials = min(kinds.items(), key=lambda item: (-item[1], item[0]))  # most trials; ties by name
    ended = sum(n for state, n in counts.items() if state not in ("RUNNING", "WAITING"))
    return f"{trials}/{max(ended, trials)}{'' if short else ' trials:'} {kind.replace('_', ' ')}"


def trial_letters(counts: dict[str, int]) -> str:
    """12: 10c 1p 1f (complete, running, pruned, failed, killed, waiting)"""
    parts = [f"{counts[state]}{letter}" for state, letter in COUNT_LETTERS if counts.get(state)]
    return f"{sum(counts.values())}" + (f": {' '.join(parts)}" if parts else "")
