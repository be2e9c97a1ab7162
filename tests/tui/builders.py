"""Fixture stores for the TUI tests and benchmarks, built with the real Store and Optuna APIs."""

from __future__ import annotations

import json
import math
import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from engine.store import Store
from engine.store.schema import tt_heartbeat

BASE_TIME = datetime(2025, 1, 6, 9, 0, 0)  # fixed, so snapshots never see a clock
LAYERS = ("net.0", "net.2", "net.4")
SPEC_PATH = Path(__file__).resolve().parents[2] / "studies" / "digits_mlp.toml"

DISTRIBUTIONS = {
    "lr": FloatDistribution(3e-4, 3e-2, log=True),
    "layers": IntDistribution(1, 3),
    "width": CategoricalDistribution([64, 128, 256]),
    "dropout": FloatDistribution(0.0, 0.4),
    "optimizer": CategoricalDistribution(["adamw", "adam", "sgd"]),
}


def _params(rng: random.Random) -> dict:
    return {
        "lr": math.exp(rng.uniform(math.log(3e-4), math.log(3e-2))),
        "layers": rng.randint(1, 3),
        "width": rng.choice([64, 128, 256]),
        "dropout": round(rng.uniform(0.0, 0.4), 4),
        "optimizer": rng.choice(["adamw", "adam", "sgd"]),
    }


def _state_of(i: int, n: int, running: int) -> TrialState:
    if i >= n - running:
        return TrialState.RUNNING
    if i % 7 == 5:
        return TrialState.PRUNED
    if i % 11 == 9:
        return TrialState.FAIL
    return TrialState.COMPLETE


def build_study(
    url: str,
    name: str = "digits_mlp",
    n_trials: int = 12,
    epochs: int = 6,
    running: int = 0,
    telemetry: bool = True,
    heartbeat: str | None = "finished",
    seed: int = 0,
    start: datetime = BASE_TIME,
    host: str | None = None,
    direction: str = "maximize",
    extra_metrics: bool = False,
) -> int:
    """A study whose every value and timestamp is fixed by `seed`; returns its study_id. Its metric is recorded
    as a run records it; with `extra_metrics`, its epochs report val_f1 and latency_ms beyond the columns (an
    own loop's metrics)."""
    rng = random.Random(seed)
    store = Store(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=store.optuna_storage(), direction=direction)
    study.set_user_attr("spec_path", str(SPEC_PATH))
    study.set_user_attr("spec_toml", SPEC_PATH.read_text())
    study.set_user_attr("metric", "val_acc" if direction == "maximize" else "val_loss")
    study_id = store.study_id(name)
    trials = []
    when = start
    for i in range(n_trials):
        state = _state_of(i, n_trials, running)
        params = _params(rng)
        quality = 0.97 - 0.4 * abs(math.log10(params["lr"]) + 2.3) ** 2 * 0.3 - params["dropout"] * 0.1
        value = round(min(0.995, max(0.05, quality + rng.uniform(-0.02, 0.02))), 4)
        done = epochs if state == TrialState.COMPLETE else (2 if state == TrialState.PRUNED else 1)
        attrs = {"seed": i, "device": "cpu", "amp": "off", "clip_norm": 5.0, "torch": "2.5.1"}
        if host is not None:  # the coordinator's host, as a run records it
            attrs["host"] = host
        if state == TrialState.FAIL:
            attrs.update(fail_reason="nan_loss", fail_hint="the loss became NaN: lower lr or clip gradients")
        trial = optuna.trial.create_trial(
            state=state,
            value=value if state == TrialState.COMPLETE else None,
            params=params,
            distributions=DISTRIBUTIONS,
            user_attrs=attrs,
            intermediate_values={e: value * e / done for e in range(1, done + 1)}
            if state in (TrialState.COMPLETE, TrialState.PRUNED)
            else {},
        )
        trial.datetime_start = when
        if state != TrialState.RUNNING:
            trial.datetime_complete = when + timedelta(seconds=20 + 3 * i)
        when += timedelta(seconds=13)
        trials.append((trial, done, value))
    study.add_trials([t for t, _, _ in trials])
    if telemetry:
        for number, (trial, done, value) in enumerate(trials):
            write_telemetry(store, study_id, number, done, value, rng, trial.params, extra_metrics)
    if heartbeat is not None:
        store.beat(study_id, "host-a", pid=4242, started=start.timestamp(), state=heartbeat, workers=2,
                   device="cpu", log_path="")  # fmt: skip
        set_heartbeat_time(store, study_id, start.timestamp() + 600)
    store.close()
    return study_id


PARETO_SPEC = """[study]
name = "pareto_mlp"
objectives = [{ metric = "val_acc", direction = "maximize" }, { metric = "params", direction = "minimize" }]

[task]
name = "digits"

[train]
epochs = 2

[space.width]
type = "categorical"
choices = [16, 64, 256]
"""


def build_pareto_study(url: str, name: str = "pareto_mlp") -> list[int]:
    """A study with two objectives (maximize val_acc, minimize params) as tunetui records one: its spec and
    identity; five complete trials, three on the Pareto front. Returns the front's trial numbers."""
    from engine.identity import ATTR, study_identity
    from engine.spec import parse_spec

    store = Store(url)
    study = optuna.create_study(study_name=name, storage=store.optuna_storage(), directions=["maximize", "minimize"])
    study.set_user_attr("spec_toml", PARETO_SPEC)
    study.set_user_attr(ATTR, study_identity(parse_spec(PARETO_SPEC)))
    widths = CategoricalDistribution([16, 64, 256])
    # (width, val_acc, params): #1 and #3 are dominated by #2 (better accuracy, fewer parameters)
    points = [(16, 0.80, 1200.0), (64, 0.85, 9000.0), (64, 0.90, 5000.0), (256, 0.88, 40000.0), (256, 0.97, 70000.0)]
    for i, (width, acc, params) in enumerate(points):
        trial = optuna.trial.create_trial(state=TrialState.COMPLETE, values=[acc, params], params={"width": width},
                                          distributions={"width": widths})  # fmt: skip
        trial.datetime_start = BASE_TIME + timedelta(seconds=30 * i)
        trial.datetime_complete = trial.datetime_start + timedelta(seconds=20)
        study.add_trial(trial)
    store.close()
    return [0, 2, 4]


def set_heartbeat_time(store: Store, study_id: int, last_seen: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            tt_heartbeat.update().where(tt_heartbeat.c.study_id == study_id).values(last_seen=last_seen)
        )


def write_telemetry(store: Store, study_id: int, number: int, epochs: int, value: float, rng, params,
                    extra_metrics: bool = False) -> None:  # fmt: skip
    lr0 = params["lr"]
    for epoch in range(1, epochs + 1):
        frac = epoch / max(epochs, 1)
        metrics = {
            "train_loss": 2.3 * math.exp(-2.5 * frac) + 0.02 * rng.random(),
            "val_loss": 2.3 * math.exp(-2.2 * frac) + 0.08 + 0.02 * rng.random(),
            "train_acc": min(1.0, value * (0.6 + 0.42 * frac)),
            "val_acc": value * (0.55 + 0.45 * frac),
            "lr": lr0 * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs)),
            "grad_norm": 3.0 * math.exp(-frac) + rng.random(),
            "clip_frac": 0.1 * rng.random(),
            "epoch_time_s": 1.5,
            "samples_per_s": 950.0,
            "mem_peak_mb": 120.0,
        }
        if extra_metrics:  # F1 climbs with the value; latency grows with the model's width
            metrics.update(val_f1=round(value * (0.5 + 0.5 * frac) - 0.03, 4), latency_ms=params["width"] / 100)
        steps = [
            {
                "step": (epoch - 1) * 10 + s,
                "epoch": epoch,
                "loss": metrics["train_loss"] * (1.1 - 0.02 * s),
                "lr": metrics["lr"],
                "grad_norm": metrics["grad_norm"] * (0.8 + 0.4 * rng.random()) + (4.0 if s == 3 else 0.0),
                "clipped": 1.0 if s == 3 else 0.0,
                "amp_scale": None,
                "skipped": 0.0,
            }
            for s in range(10)
        ]
        layers = []
        for k, layer in enumerate(LAYERS):
            spread = 0.05 * (k + 1) / epoch
            edges = [round(-spread + 2 * spread * j / 12, 6) for j in range(13)]
            counts = [int(200 * math.exp(-(((j - 5.5) / 3) ** 2))) + rng.randint(0, 5) for j in range(12)]
            layers.append(
                {
                    "layer": layer,
                    "grad_norm": metrics["grad_norm"] / (k + 1),
                    "weight_norm": 4.0 + k,
                    "hist_json": json.dumps({"edges": edges, "counts": counts}),
                }
            )
        store.write_epoch(study_id, number, epoch, metrics, steps, layers)
    if number % 4 == 1:
        store.write_findings(
            study_id,
            number,
            [
                {
                    "kind": "overfitting",
                    "severity": "warning",
                    "evidence": {"gap": 0.12, "epoch": epochs},
                    "remedy": "raise dropout or weight_decay; fewer epochs",
                }
            ],
        )
    store.write_log(study_id, number, [f"trial {number} epoch {e}/{epochs} val_acc={value * e / epochs:.4f}"
                                       for e in range(1, epochs + 1)])  # fmt: skip
    with store.engine.begin() as conn:  # fixed timestamps on the log lines too
        conn.execute(sa.text("UPDATE tt_log SET ts = :ts WHERE study_id = :sid AND trial_number = :n"),
                     {"ts": BASE_TIME.timestamp() + number, "sid": study_id, "n": number})  # fmt: skip


def build_big_study(
    url: str, name: str = "big", n_trials: int = 10_000, seed_trials: int = 500, seed: int = 1, epochs: int = 0
) -> int:
    """Many trials: `seed_trials` added through Optuna's add_trials, then copied in bulk with SQL; with
    `epochs`, each trial has that many tt_epoch rows of reported metrics (val_f1 and latency_ms beyond the
    columns), as a coordinator writes them.

    Optuna's RDB storage spends ~10 ms of ORM work per trial (100 s for 10,000); copying Optuna's own rows
    with shifted ids keeps every row exactly what Optuna writes, at a fraction of the time.
    """
    rng = random.Random(seed)
    store = Store(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = store.optuna_storage()
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    trials = []
    when = BASE_TIME
    for i in range(min(seed_trials, n_trials)):
        state = _state_of(i, n_trials, 0)
        trial = optuna.trial.create_trial(
            state=state,
            value=round(rng.uniform(0.5, 0.99), 4) if state == TrialState.COMPLETE else None,
            params=_params(rng),
            distributions=DISTRIBUTIONS,
        )
        trial.datetime_start = when
        trial.datetime_complete = when + timedelta(seconds=30)
        when += timedelta(seconds=7)
        trials.append(trial)
    study.add_trials(trials)
    study_id = store.study_id(name)
    if epochs:
        _bulk_epochs(store, study_id, len(trials), epochs, rng)
    with store.engine.begin() as conn:
        lo, hi = conn.execute(
            sa.text("SELECT MIN(trial_id), MAX(trial_id) FROM trials WHERE study_id = :sid"),
            {"sid": study_id},
        ).one()
        span = hi - lo + 1
        top = conn.execute(sa.text("SELECT MAX(trial_id) FROM trials")).scalar_one()
        copies = math.ceil(n_trials / seed_trials) - 1
        for k in range(1, copies + 1):
            bind = {"sid": study_id, "lo": lo, "off": top - lo + 1 + (k - 1) * span, "noff": k * seed_trials,
                    "limit": min(n_trials - k * seed_trials, span), "secs": f"+{k * seed_trials * 7} seconds",
                    "scale": 1 - 0.0005 * k}  # fmt: skip
            conn.execute(sa.text(
                """INSERT INTO trials (trial_id, number, study_id, state, datetime_start, datetime_complete)
                   SELECT trial_id + :off, number + :noff, study_id, state, datetime(datetime_start, :secs),
                          datetime(datetime_complete, :secs)
                   FROM trials WHERE study_id = :sid AND trial_id - :lo < :limit"""), bind)  # fmt: skip
            conn.execute(sa.text(
                """INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
                   SELECT p.trial_id + :off, p.param_name, p.param_value, p.distribution_json FROM trial_params p
                   JOIN trials t ON t.trial_id = p.trial_id
                   WHERE t.study_id = :sid AND t.trial_id - :lo < :limit"""), bind)  # fmt: skip
            conn.execute(sa.text(
                """INSERT INTO trial_values (trial_id, objective, value, value_type)
                   SELECT v.trial_id + :off, v.objective, v.value * :scale, v.value_type FROM trial_values v
                   JOIN trials t ON t.trial_id = v.trial_id
                   WHERE t.study_id = :sid AND t.trial_id - :lo < :limit"""), bind)  # fmt: skip
            conn.execute(sa.text(
                """INSERT INTO tt_epoch SELECT study_id, trial_number + :noff, epoch,
                          train_loss, train_acc, val_loss, val_acc, lr, grad_norm, clip_frac, epoch_time_s,
                          samples_per_s, mem_peak_mb, extra_json
                   FROM tt_epoch WHERE study_id = :sid AND trial_number < :limit"""), bind)  # fmt: skip
    store.close()
    return study_id


def _bulk_epochs(store: Store, study_id: int, trials: int, epochs: int, rng: random.Random) -> None:
    """`epochs` rows of metrics for trials 0..trials-1 in one insert (write_epoch is one transaction each)."""
    from engine.store.schema import tt_epoch

    rows = []
    for number in range(trials):
        top = rng.uniform(0.5, 0.99)
        for epoch in range(1, epochs + 1):
            frac = epoch / epochs
            extra = {"val_f1": round(top * frac, 4), "latency_ms": round(rng.uniform(0.2, 3.0), 3)}
            rows.append({"study_id": study_id, "trial_number": number, "epoch": epoch, "train_loss": 2.3 - 2 * frac,
                         "train_acc": top * frac, "val_loss": 2.4 - 2 * frac, "val_acc": top * frac * 0.98, "lr": 1e-3,
                         "grad_norm": 1.0, "clip_frac": 0.0, "epoch_time_s": 1.5, "samples_per_s": 950.0,
                         "mem_peak_mb": 120.0, "extra_json": json.dumps(extra)})  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(tt_epoch.insert(), rows)


def build_live_run(url: str) -> None:
    """digits_mlp with 6 trials (2 running) on host-a, whose live coordinator's run targets 9 trials."""
    build_study(url, n_trials=6, running=2, heartbeat=None, host="host-a")
    store = Store(url)
    optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage()).set_user_attr("run_target:host-a", 9)
    store.beat(store.study_id("digits_mlp"), "host-a", pid=1, started=time.time(), state="running", workers=2,
               device="cpu")  # fmt: skip
    store.close()
