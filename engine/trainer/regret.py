"""Optuna's estimate of the improvement still to gain (its terminator's regret bound), in a child process:
`python -m engine.trainer.regret` reads requests on stdin from our own process (engine/terminator.py), one
JSON line each, `{"direction": "maximize", "trials": [{"value": v, "params": {...}, "distributions":
{name: Optuna's distribution JSON}}]}` (the complete trials), and answers each with one JSON line,
`{"improvement": float}` or `{"error": text}`, until stdin closes.

A child because Optuna's evaluator fits its Gaussian process with torch, which the coordinator and the TUI
never import (tests/test_import_hygiene.py); it touches no store and runs no user code. Long-lived, because
importing torch and scipy is most of the cost (docs/architecture.md "When to stop tuning")."""

from __future__ import annotations

import json
import sys
import warnings

SEED = 0  # the evaluator samples candidate points: the same trials give the same estimate


def improvement(request: dict) -> float:
    """The upper bound on the regret of the best trial (`RegretBoundEvaluator`, the default of Optuna's
    `Terminator`), in the objective's units."""
    from optuna.distributions import json_to_distribution
    from optuna.study import StudyDirection
    from optuna.terminator import RegretBoundEvaluator
    from optuna.trial import create_trial

    trials = [
        create_trial(value=t["value"], params=t["params"],
                     distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()})
        for t in request["trials"]
    ]  # fmt: skip
    direction = StudyDirection.MAXIMIZE if request["direction"] == "maximize" else StudyDirection.MINIMIZE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental/deprecation notices: not the user's concern here
        return float(RegretBoundEvaluator(seed=SEED).evaluate(trials=trials, study_direction=direction))


def answer(line: str) -> dict:
    try:
        return {"improvement": improvement(json.loads(line))}
    except (ValueError, KeyError, TypeError, RuntimeError, ArithmeticError) as err:  # too few trials, empty space...
        return {"error": f"{type(err).__name__}: {err}"}


def main() -> int:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for line in sys.stdin:
        print(json.dumps(answer(line)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
