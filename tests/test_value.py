"""The value rules of engine/value.py on hand-made curves."""

from __future__ import annotations

import pytest

from engine.value import trial_value

CURVE = [0.5, 0.9, 0.7, 0.8, 0.75]


def test_each_rule_and_the_epoch_it_credits():
    assert trial_value(CURVE, "best", maximize=True) == (0.9, 2)
    assert trial_value(CURVE, "best", maximize=False) == (0.5, 1)
    assert trial_value(CURVE, "last", maximize=True) == (0.75, 5)
    assert trial_value(CURVE, "mean_last_3", maximize=True) == (pytest.approx(0.75), 5)
    assert trial_value([0.4, 0.6], "mean_last_3", maximize=True) == (pytest.approx(0.5), 2)  # fewer epochs


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="best, last, mean_last_3"):
        trial_value(CURVE, "median", maximize=True)
