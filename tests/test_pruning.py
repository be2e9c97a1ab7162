"""The coordinator's in-memory prune decisions agree with Optuna's own `should_prune` on a real store."""

from __future__ import annotations

import random

import optuna
import pytest

from engine.pruning import PruneCopy, supports

PRUNERS = [
    lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    lambda: optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0, interval_steps=3),
    lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=2, n_warmup_steps=1, n_min_trials=2),
]


@pytest.mark.parametrize("make_pruner", PRUNERS)
@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_decisions_match_optunas_on_a_sqlite_store(tmp_path, make_pruner, direction):
    rng = random.Random(7)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/s.db", direction=direction, pruner=make_pruner()
    )
    copy = PruneCopy(make_pruner(), study.direction)
    decisions, pruned = 0, 0
    for _ in range(14):
        trial = study.ask()
        reported: dict[int, float] = {}
        stopped = False
        for epoch in range(1, rng.randint(2, 9)):
            value = rng.random() if rng.random() > 0.05 else float("nan")
            trial.report(value, epoch)
            reported[epoch] = value
            ours = copy.should_prune(trial.number, reported)
            assert ours == trial.should_prune(), (trial.number, epoch)
            decisions += 1
            if ours:
                stopped = True
                break
        if stopped:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            pruned += 1
        elif rng.random() < 0.2:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            value = reported[max(reported)]
            study.tell(trial, value if value == value else 0.0)
            copy.add(trial.number, study.trials[-1].value, reported)
    assert decisions >= 20 and 0 < pruned < 14  # both answers were exercised


def test_other_hosts_complete_trials_join_on_refresh(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    for v in (0.9, 0.8, 0.7):  # three trials finished elsewhere: in the store, unknown to the copy
        study.add_trial(optuna.trial.create_trial(value=v, intermediate_values={1: v}))
    copy = PruneCopy(optuna.pruners.MedianPruner(n_startup_trials=1), study.direction)
    assert not copy.should_prune(3, {1: 0.1})  # no complete trial known: nothing to compare with
    copy.refresh(study.get_trials(deepcopy=False))
    copy.refresh(study.get_trials(deepcopy=False))  # seen trials are not added twice
    assert len(copy.study.trials) == 3
    assert copy.should_prune(3, {1: 0.1}) and not copy.should_prune(3, {1: 0.95})


def test_pruners_that_keep_state_in_the_store_keep_optunas_path():
    assert supports(optuna.pruners.MedianPruner()) and supports(optuna.pruners.PercentilePruner(50))
    assert not supports(optuna.pruners.SuccessiveHalvingPruner())
    assert not supports(optuna.pruners.HyperbandPruner())
