"""engine/report.py: the best trial and the number formats that `tunetui show`, `run`'s summary, the best-spec
export and the TUI share."""

from __future__ import annotations

import math

from engine.report import best_text, best_trial, fixed_number, short_number
from engine.store import TrialRow


def row(number: int, value: float | None, state: str = "COMPLETE") -> TrialRow:
    return TrialRow(number, number + 100, state, value, {}, None, None, None, 0, 0)


def test_best_trial_is_the_highest_or_lowest_complete_value():
    trials = [row(0, 0.5), row(1, 0.9, "PRUNED"), row(2, 0.7), row(3, None, "RUNNING"), row(4, 0.1)]
    assert best_trial(trials, maximize=True).number == 2
    assert best_trial(trials, maximize=False).number == 4


def test_best_trial_keeps_the_earliest_of_equal_values():
    assert best_trial([row(0, 0.5), row(1, 0.5)], maximize=True).number == 0
    assert best_trial([row(0, 0.5), row(1, 0.5)], maximize=False).number == 0


def test_best_trial_skips_nan_but_not_infinity():
    assert best_trial([row(0, math.nan), row(1, 0.2)], maximize=True).number == 1
    assert best_trial([row(0, 0.2), row(1, -math.inf)], maximize=False).number == 1


def test_no_best_before_a_trial_completes():
    assert best_trial([row(0, None, "RUNNING"), row(1, 0.3, "FAIL")], maximize=True) is None
    assert best_trial([], maximize=False) is None


def test_numbers_read_the_same_everywhere():
    assert short_number(0.00034567) == "0.0003457" and short_number(1.234567e-5) == "1.235e-05"
    assert short_number(math.inf) == "inf" and short_number(64) == "64" and short_number("adam") == "adam"
    assert fixed_number(None) == "-" and fixed_number(0.98765) == "0.9877"


def test_a_study_with_several_objectives_has_a_front_not_a_best():
    assert best_text({"directions": ["MAXIMIZE", "MINIMIZE"], "pareto_front": 3, "best": None}) == "2 obj, 3 Pareto"
    assert best_text({"directions": ["MAXIMIZE"], "best": 0.98765}) == "0.9877"
