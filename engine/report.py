"""What the CLI and the TUI both say about a study: its best trial and how numbers read.

Neither torch nor textual is imported here: `tunetui show`, `run`'s summary, `export --best-spec` and the
TUI share it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar


class _Trial(Protocol):
    state: str
    value: float | None


T = TypeVar("T", bound=_Trial)

KILLED = "killed"  # the fail_reason of a trial the user killed: recorded `FAIL killed`, like `FAIL timeout`


def is_better(value: float, than: float | None, maximize: bool) -> bool:
    """Strictly better: on a tie the trial that came first stays the best."""
    return than is None or (value > than if maximize else value < than)


def counts_as_best(trial: _Trial) -> bool:
    """Only a complete trial with a value can be the best (NaN is no value; +-inf is)."""
    return trial.state == "COMPLETE" and trial.value is not None and not math.isnan(trial.value)


def best_trial(trials: Iterable[T], maximize: bool) -> T | None:
    """The complete trial with the best value; the earliest of equals; None before any completes."""
    best: T | None = None
    for trial in trials:
        if counts_as_best(trial) and is_better(trial.value, best.value if best else None, maximize):
            best = trial
    return best


def short_number(value: Any) -> str:
    """4 significant digits for a float (0.0003456, 1.234e-05, inf); anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def extra_metrics(epochs: Iterable[dict]) -> list[str]:
    """The metrics in epoch rows beyond the tt_epoch columns (a regression's val_rmse, an own loop's val_f1),
    in the order first seen. Names came from a trial: text to escape, never markup."""
    from engine.store.schema import EPOCH_COLUMNS

    known = {*EPOCH_COLUMNS, "study_id", "trial_number", "epoch"}
    names: dict[str, None] = {}
    for row in epochs:
        names.update((name, None) for name in row if name not in known)
    return list(names)


def duration_text(seconds: float) -> str:
    """A duration as people read it: 4.2s, 42s, 4m10s, 1h02m."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fixed_number(value: float | None) -> str:
    """4 decimals, for values on one scale side by side (the CLI's best values); '-' for none."""
    return "-" if value is None else f"{value:.4f}"


def best_text(study: dict, number=fixed_number) -> str:
    """A study's best value; a study with several objectives has none: the size of its Pareto front."""
    directions: Sequence[str] = study.get("directions", ())
    if len(directions) > 1:
        return f"{len(directions)} obj, {study['pareto_front']} Pareto"
    return number(study["best"])


def find_study(store, name: str) -> dict:
    """The study named `name` as `Store.studies()` lists it; a StoreError naming the known ones if none."""
    from engine.store import StoreError, redact

    studies = store.studies()
    for study in studies:
        if study["study_name"] == name:
            return study
    known = ", ".join(s["study_name"] for s in studies) or "none"
    raise StoreError(f"no study named {name!r} in {redact(store.url)} (studies: {known})")


def missing_trial(study: dict, number: int) -> str | None:
    """Why trial `number` is not in the study (bad input: `show --trial`, `kill`), or None when it is there.
    Optuna numbers a study's trials 0, 1, 2, ... as it creates them, so trial N exists when N < their count."""
    total = sum(study["counts"].values())
    if number < total:
        return None
    have = f"its trials are 0-{total - 1}" if total else "it has no trial yet"
    return f"study {study['study_name']} has no trial {number} ({have})"
