"""The remedy of a diagnosis finding as new training values (engine/diagnose.py says what is wrong; this
says what one retry changes): pure, from the findings and the trial's values as it trained.

- vanishing gradients: relu activation and kaiming init;
- divergence (exploding gradients, lr too high): a tenth of the learning rate;
- overfitting: more dropout (+0.2, up to 0.5), or, once dropout is 0.5 or more, ten times the weight
  decay (at least 1e-4).
Other findings (lr too low, underfitting) name several possible causes: no single change is applied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DIVERGENCE = ("exploding_gradients", "lr_too_high")
DROPOUT_STEP, DROPOUT_MAX = 0.2, 0.5
WEIGHT_DECAY_FACTOR, WEIGHT_DECAY_MIN = 10.0, 1e-4


@dataclass(frozen=True)
class Remedy:
    changes: dict[str, Any]  # training value -> its new value
    labels: tuple[str, ...]  # what was done, in words ("lr/10"), for the trial's origin


def remedy_for(findings: list[dict], current: dict[str, Any]) -> Remedy:
    """The changes the findings' remedies make to `current` (the trial's training values: fixed, sampled
    and overridden). Two findings with one remedy (both kinds of divergence) apply it once."""
    kinds = [f.get("kind") for f in findings]
    steps: list[tuple[str, dict[str, Any]]] = []
    if "vanishing_gradients" in kinds:
        steps.append(("relu + kaiming init", {"activation": "relu", "init": "kaiming"}))
    if any(kind in DIVERGENCE for kind in kinds):
        steps.append(("lr/10", {"lr": _number(current.get("lr"), "lr") / 10}))
    if "overfitting" in kinds:
        dropout = _number(current.get("dropout", 0.0), "dropout")
        if dropout < DROPOUT_MAX:
            steps.append((f"dropout +{DROPOUT_STEP:g}", {"dropout": round(min(DROPOUT_MAX, dropout + DROPOUT_STEP), 6)}))
        else:
            decay = _number(current.get("weight_decay", 0.0), "weight_decay")
            steps.append((f"weight_decay x{WEIGHT_DECAY_FACTOR:g}",
                          {"weight_decay": max(decay * WEIGHT_DECAY_FACTOR, WEIGHT_DECAY_MIN)}))  # fmt: skip
    changes: dict[str, Any] = {}
    labels: list[str] = []
    for label, step in steps:
        new = {name: value for name, value in step.items() if current.get(name) != value}  # already so: no change
        if new:
            changes.update(new)
            labels.append(label)
    return Remedy(changes, tuple(labels))


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"the trial's {name} is {value!r}, not a number: no remedy can scale it")
    return float(value)
