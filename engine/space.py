"""The spec's search space, sampler and pruner turned into Optuna objects and trial.suggest_* calls."""

from __future__ import annotations

from typing import Any

import optuna

from engine.spec import (
    CategoricalDim,
    CmaEsSampler,
    FloatDim,
    GPSampler,
    GridSampler,
    IntDim,
    QMCSampler,
    RandomSampler,
    StudySpec,
    TPESampler,
)


def suggest(trial: optuna.Trial, spec: StudySpec, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sample every dimension whose `when` conditions hold, in the order the spec declares them; with the
    trial's `overrides` (engine/enqueue.py) in the result instead, never sampled: its Optuna params then
    hold only values it trained with."""
    params: dict[str, Any] = dict(overrides or {})
    for name, dim in spec.space.items():
        if name in params or not dim.holds(params):
            continue
        if isinstance(dim, FloatDim):
            params[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log, step=dim.step)
        elif isinstance(dim, IntDim):
            params[name] = trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
        elif isinstance(dim, CategoricalDim):
            params[name] = trial.suggest_categorical(name, dim.choices)
    return params


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its `study.stop()` after the last point.

    `study.stop()` works only inside `study.optimize`; the coordinator uses ask/tell and, before asking,
    counts the grid points no trial has started (engine/run/ledger.py `grid_points_left`, from the trials'
    `grid_id` system attrs; Optuna's own `is_exhausted` is not used), since Optuna would hand out an
    already-started point again once every point has been asked for."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def build_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s, seed = spec.sampler, spec.study.seed
    if isinstance(s, TPESampler):
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=s.n_startup_trials,
            multivariate=s.multivariate or s.group,
            group=s.group,
            constant_liar=s.constant_liar,
        )
    if isinstance(s, RandomSampler):
        return optuna.samplers.RandomSampler(seed=seed)
    if isinstance(s, GridSampler):
        grid = {name: dim.grid_values() for name, dim in spec.space.items()}
        return AskTellGridSampler(grid, seed=seed)
    if isinstance(s, CmaEsSampler):
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=s.n_startup_trials, sigma0=s.sigma0)
    if isinstance(s, QMCSampler):
        return optuna.samplers.QMCSampler(qmc_type=s.qmc_type, scramble=s.scramble, seed=seed)
    if isinstance(s, GPSampler):
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.n_startup_trials)
    raise ValueError(f"unknown sampler {s!r}")


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(p.n_startup_trials, p.n_warmup_steps, p.interval_steps)
    if p.kind == "percentile":
        return optuna.pruners.PercentilePruner(
            p.percentile, p.n_startup_trials, p.n_warmup_steps, p.interval_steps
        )
    if p.kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    if p.kind == "hyperband":
        max_resource = p.max_resource or spec.train_config({}).epochs
        return optuna.pruners.HyperbandPruner(p.min_resource, max_resource, p.reduction_factor)
    return optuna.pruners.NopPruner()


def grid_size(spec: StudySpec) -> int | None:
    """How many points a grid search has (conditional dimensions counted as always present)."""
    if not isinstance(spec.sampler, GridSampler):
        return None
    total = 1
    for dim in spec.space.values():
        total *= len(dim.grid_values())
    return total
