"""Stores made by Optuna alone (no tunetui table): every trial state, and a two-objective study."""

from __future__ import annotations

import math

import optuna

from engine.store import with_driver

STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def optuna_storage(url: str):
    """What a user of Optuna alone would pass as `storage`: the URL of a database, or a journal file (a
    path ending in .log) through Optuna's JournalStorage and its file backend."""
    if url.endswith(".log"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    return with_driver(url)


def build_optuna_only_store(url: str) -> None:
    """`plain` (maximize): complete (one of them +inf), pruned, failed, running and waiting trials, with
    intermediate values; `pareto` (maximize, minimize): three complete trials, two on the Pareto front.
    `url`: a database URL, or a journal file's path (.log)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the failing trial is on purpose
    storage = optuna_storage(url)
    plain = optuna.create_study(study_name="plain", storage=storage, direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        for step in range(3):
            trial.report(x * step, step)
        if trial.number == 2:
            raise optuna.TrialPruned()
        if trial.number == 3:
            raise RuntimeError("boom")
        return math.inf if trial.number == 1 else x + (kind == "b")

    plain.optimize(objective, n_trials=4, catch=(RuntimeError,))
    running = plain.ask()  # RUNNING: asked, never told
    running.suggest_float("x", 0.0, 1.0)
    running.report(0.5, 0)
    plain.enqueue_trial({"x": 0.25, "kind": "a"})  # WAITING

    pareto = optuna.create_study(study_name="pareto", storage=storage, directions=["maximize", "minimize"])
    for acc, loss in ((0.9, 0.3), (0.8, 0.1), (0.7, 0.5)):  # the third is dominated by the first
        trial = pareto.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        pareto.tell(trial, [acc, loss])


def build_three_objective_store(url: str) -> None:
    """`three` (maximize, minimize, minimize): four complete trials, #3 dominated by #0, and one trial of each
    other state (pruned, failed, running, waiting)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="three", storage=optuna_storage(url),
                                directions=["maximize", "minimize", "minimize"])  # fmt: skip
    for values in ((0.9, 0.3, 5.0), (0.8, 0.1, 7.0), (0.7, 0.5, 1.0), (0.6, 0.4, 6.0)):
        trial = study.ask()
        trial.suggest_int("layers", 1, 4)
        study.tell(trial, list(values))
    for state in (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL):
        study.tell(study.ask(), state=state)
    study.ask()  # RUNNING
    study.enqueue_trial({"layers": 2})  # WAITING
