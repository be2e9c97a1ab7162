"""Search quality: a sampler + pruner + value rule against plain random search, counted in epochs.

For each data set and seed, random search without pruning runs N trials (N=100) and sets the target: its
best value of N. Each candidate (the shipped default first) then runs until it reaches that target or has
spent as many epochs as random did; the figure is the epochs it needed, as a share of random's epochs.
Goal (issue 13): the default reaches random's best of 100 in every seed, with a median share <= 15%.

The trials run in this process through the engine's own path, not through the coordinator and worker
processes (a study of 100 trials per seed and data set would cost hours on a loaded 2-core machine):
spec -> engine.space.suggest -> StudySpec.train_config (seed + trial number, as the coordinator does) ->
engine.trainer.train.train on the task's tensors built once, with the coordinator's sampler and pruner builders
(engine.space) on Optuna's in-memory storage, and the trial's value taken by engine.value.trial_value.
A prune takes effect one epoch late, as with the real worker (it reads the decision after its next epoch);
those epochs are counted. Telemetry is off: it changes time, not results, and time is not measured here.

Which value rule is least biased: each data set's training rows lose a fixed 20% as a held-out set; the
final model of every random trial is scored on it once. A rule's bias is the mean of (trial value - the
final model's held-out accuracy) over the random trials, and the winner's bias the same for the trial each
rule picks as best (selection inflates it).

    nice -n 10 .venv/bin/python benchmarks/bench_search.py                      # the full run
    nice -n 10 .venv/bin/python benchmarks/bench_search.py --candidates default,mv
    .venv/bin/python benchmarks/bench_search.py --quick                          # CI: a tiny run
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from engine.space import build_pruner, build_sampler, suggest  # noqa: E402
from engine.spec import StudySpec, load_spec  # noqa: E402
from engine.trainer.tasks import TaskData, load_task  # noqa: E402
from engine.trainer.train import TrialFailed, train  # noqa: E402
from engine.value import VALUE_RULES, trial_value  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
CPU = torch.device("cpu")
DEFAULT_SPEC = ROOT / "studies" / "digits_mlp.toml"
HOLDOUT = 0.2

# Each candidate overrides the shipped spec's [sampler], [pruner] and [study] value; "default" is the spec.
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    "best": {"value": "best"},  # the default before it was measured: a trial's value is its best epoch
    "mv": {"sampler": {"multivariate": True, "group": True}},
    "mv_s10": {"sampler": {"multivariate": True, "group": True, "n_startup_trials": 10}},
    "mv_w6": {"sampler": {"multivariate": True, "group": True}, "pruner": {"n_warmup_steps": 6}},
    "mv_last": {"sampler": {"multivariate": True, "group": True}, "value": "last"},
    "mv_mean3": {"sampler": {"multivariate": True, "group": True}, "value": "mean_last_3"},
    "mean3": {"value": "mean_last_3"},
    "last": {"value": "last"},
    "mean3_p25": {"value": "mean_last_3",
                  "pruner": {"kind": "percentile", "percentile": 25.0, "n_startup_trials": 5, "n_warmup_steps": 4}},
    "nopr": {"pruner": {"kind": "none"}},
    "mv_nopr": {"sampler": {"multivariate": True, "group": True}, "pruner": {"kind": "none"}},
}


@dataclass
class Trial:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    epochs: int  # epochs trained, the late prune's included
    curve: list[float] = field(default_factory=list)  # the metric per reported epoch
    holdout: float | None = None  # the final model's held-out accuracy


def spec_for(base: StudySpec, task: str, seed: int, overrides: dict[str, Any]) -> StudySpec:
    data = base.model_dump()
    data["study"]["seed"] = seed
    data["task"]["name"] = task
    for section in ("sampler", "pruner"):
        given = overrides.get(section, {})
        # another kind starts from its own defaults; the same kind keeps the spec's settings
        kept = data[section] if given.get("kind", data[section]["kind"]) == data[section]["kind"] else {}
        data[section] = {**kept, **given}
    if "value" in overrides:
        data["study"]["value"] = overrides["value"]
    return StudySpec.model_validate(data)


def with_holdout(data: TaskData, seed: int = 0) -> TaskData:
    """The task with a fixed HOLDOUT share of its training rows moved to a held-out set."""
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    cut = round(len(order) * HOLDOUT)
    held, kept = order[:cut], order[cut:]
    return TaskData(
        x_train=data.x_train[kept], y_train=data.y_train[kept], x_val=data.x_val, y_val=data.y_val,
        num_classes=data.num_classes, input_shape=data.input_shape,
        x_test=data.x_train[held], y_test=data.y_train[held],
    )  # fmt: skip


def run_arm(spec: StudySpec, data: TaskData, max_trials: int, epochs: int | None,
            target: float | None = None, epoch_cap: int | None = None) -> list[Trial]:  # fmt: skip
    """Run trials until max_trials, or until the best value reaches target, or epoch_cap is spent."""
    maximize = spec.study.direction == "maximize"
    metric, rule = spec.study.metric, spec.study.value
    study = optuna.create_study(direction=spec.study.direction, sampler=build_sampler(spec),
                                pruner=build_pruner(spec))  # fmt: skip
    prunes = not isinstance(study.pruner, optuna.pruners.NopPruner)
    trials: list[Trial] = []
    best: float | None = None
    for _ in range(max_trials):
        trial = study.ask()
        params = suggest(trial, spec)
        config = spec.train_config(params, seed=spec.study.seed + trial.number)
        config = config.model_copy(update={"telemetry": False, **({"epochs": epochs} if epochs else {})})
        record = Trial(trial.number, "COMPLETE", 0)
        pruned_at: list[int] = []

        def on_epoch(report, trial=trial, record=record, pruned_at=pruned_at) -> bool:
            record.epochs = report.epoch
            if pruned_at:
                return True  # the epoch a real worker trains before it reads the decision
            value = report.metrics[metric]
            record.curve.append(value)
            trial.report(value, report.epoch)
            if prunes and trial.should_prune():
                pruned_at.append(report.epoch)
            return False

        try:
            result = train(config, data, CPU, on_epoch)
            record.holdout = result.test.get("test_acc")
        except TrialFailed:
            record.state = "FAIL"
        value = trial_value(record.curve, rule, maximize)[0] if record.curve else None
        if record.state == "FAIL" or value is None or not math.isfinite(value):
            record.state = "FAIL"
            study.tell(trial, state=TrialState.FAIL)
        elif pruned_at:
            record.state = "PRUNED"
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)
            best = value if best is None or (value > best if maximize else value < best) else best
        trials.append(record)
        spent = sum(t.epochs for t in trials)
        if target is not None and best is not None and (best >= target if maximize else best <= target):
            break
        if epoch_cap is not None and spent >= epoch_cap:
            break
    return trials


def values(trials: list[Trial], rule: str, maximize: bool = True) -> list[float]:
    return [trial_value(t.curve, rule, maximize)[0] for t in trials if t.state == "COMPLETE"]


def reach(trials: list[Trial], target: float, rule: str) -> tuple[int | None, float]:
    """(epochs spent when the target was first reached or None, best value)."""
    spent, best = 0, -math.inf
    for t in trials:
        spent += t.epochs
        if t.state == "COMPLETE":
            best = max(best, trial_value(t.curve, rule, True)[0])
            if best >= target - 1e-12:
                return spent, best
    return None, best


def bias_rows(random_runs: dict[tuple[str, int], list[Trial]]) -> list[dict[str, Any]]:
    """Per data set and value rule: mean (value - held-out accuracy) over trials, and for each winner."""
    rows = []
    for task in sorted({task for task, _ in random_runs}):
        for rule in VALUE_RULES:
            every, winners, winner_holdout = [], [], []
            for (t, _seed), trials in random_runs.items():
                if t != task:
                    continue
                done = [x for x in trials if x.state == "COMPLETE" and x.holdout is not None]
                every += [trial_value(x.curve, rule, True)[0] - x.holdout for x in done]
                win = max(done, key=lambda x: trial_value(x.curve, rule, True)[0])
                winners.append(trial_value(win.curve, rule, True)[0] - win.holdout)
                winner_holdout.append(win.holdout)
            rows.append({"task": task, "rule": rule, "bias": statistics.fmean(every),
                         "winner_bias": statistics.fmean(winners),
                         "winner_holdout": statistics.fmean(winner_holdout)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC))
    parser.add_argument("--tasks", default="digits,breast_cancer,wine")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--trials", type=int, default=100, help="random search's N")
    parser.add_argument("--max-trials", type=int, default=400, help="a candidate's trial cap")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    parser.add_argument("--candidates", default="default")
    parser.add_argument("--cache", default=None, help="JSON file of random runs to reuse and extend")
    parser.add_argument("--out", default=None, help="write every trial here as JSON")
    parser.add_argument("--quick", action="store_true", help="CI: wine, 1 seed, 12 trials of 4 epochs")
    parser.add_argument("--merge", nargs="+", metavar="OUT", help="one report from the --out files of "
                        "several runs (e.g. one process per seed), then exit")  # fmt: skip
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args)
    if args.quick:
        args.tasks, args.seeds, args.trials, args.max_trials, args.epochs = "wine", "0", 12, 30, 4
    torch.set_num_threads(1)  # tiny MLPs: threads only add contention on a shared machine
    base = load_spec(args.spec)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")

    cache: dict[str, list[dict]] = {}
    if args.cache and Path(args.cache).exists():
        cache = json.loads(Path(args.cache).read_text())
    random_runs: dict[tuple[str, int], list[Trial]] = {}
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    loaded = {task: with_holdout(load_task(spec_for(base, task, 0, {}).task, {}, CPU)) for task in tasks}
    for seed in seeds:  # seed by seed, so a run cut short still covers every data set
        for task in tasks:
            data = loaded[task]
            key = f"{task}:{seed}:{args.trials}:{args.epochs}"
            if key in cache:
                random_trials = [Trial(**t) for t in cache[key]]
            else:
                spec = spec_for(base, task, seed, {"sampler": {"kind": "random"}, "pruner": {"kind": "none"}})
                random_trials = run_arm(spec, data, args.trials, args.epochs)
                cache[key] = [asdict(t) for t in random_trials]
                if args.cache:
                    Path(args.cache).write_text(json.dumps(cache))
            random_runs[(task, seed)] = random_trials
            random_epochs = sum(t.epochs for t in random_trials)
            for name in names:
                spec = spec_for(base, task, seed, CANDIDATES[name])
                rule = spec.study.value
                target = max(values(random_trials, rule))
                trials = run_arm(spec, data, args.max_trials, args.epochs, target, random_epochs)
                spent, best = reach(trials, target, rule)
                row = {"task": task, "seed": seed, "candidate": name, "rule": rule, "target": target,
                       "random_epochs": random_epochs, "epochs_to_reach": spent,
                       "share": None if spent is None else spent / random_epochs, "best": best,
                       "trials": len(trials), "pruned": sum(t.state == "PRUNED" for t in trials)}  # fmt: skip
                results.append(row)
                share = "not reached" if spent is None else f"{spent / random_epochs:6.1%}"
                print(f"{task:14} seed {seed}  {name:9} {rule:12} random best {target:.4f}  "
                      f"reached: {share:>11}  best {best:.4f}  ({len(trials)} trials, "
                      f"{row['pruned']} pruned)  [{time.perf_counter() - started:.0f} s]", flush=True)  # fmt: skip
                if args.out:  # after every row: a run cut short keeps what it measured
                    write_payload(args.out, results, random_runs)

    print()
    print(report(results, bias_rows(random_runs), args))
    if args.out:
        write_payload(args.out, results, random_runs)
    return 0


def merge(args: argparse.Namespace) -> int:
    results: dict[tuple, dict[str, Any]] = {}
    random_runs: dict[tuple[str, int], list[Trial]] = {}
    for path in args.merge:
        payload = json.loads(Path(path).read_text())
        for row in payload["results"]:
            results[(row["task"], row["seed"], row["candidate"])] = row
        for key, trials in payload["random"].items():
            task, seed = key.rsplit(":", 1)
            random_runs[(task, int(seed))] = [Trial(**t) for t in trials]
    ordered = sorted(results.values(), key=lambda r: (r["candidate"] != "default", r["candidate"], r["task"], r["seed"]))
    print(per_seed(ordered))
    print()
    print(report(ordered, bias_rows(random_runs), args))
    return 0


def per_seed(results: list[dict[str, Any]]) -> str:
    lines = ["| task | seed | candidate | random's best of N | reached after (share of random's epochs) | "
             "best | trials (pruned) |", "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in results:
        share = "not reached" if r["share"] is None else f"{r['share']:.1%}"
        lines.append(f"| {r['task']} | {r['seed']} | {r['candidate']} ({r['rule']}) | {r['target']:.4f} | {share} | "
                     f"{r['best']:.4f} | {r['trials']} ({r['pruned']}) |")  # fmt: skip
    return "\n".join(lines)


def write_payload(path: str, results: list[dict[str, Any]], random_runs: dict[tuple[str, int], list[Trial]]) -> None:
    payload = {"results": results, "bias": bias_rows(random_runs),
               "random": {f"{t}:{s}": [asdict(x) for x in v] for (t, s), v in random_runs.items()}}  # fmt: skip
    Path(path).write_text(json.dumps(payload, indent=1))


def report(results: list[dict[str, Any]], bias: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"## search quality: {args.trials} random trials per seed vs each candidate", "",
             "| candidate | value rule | task | reached | median share of random's epochs | worst share |",
             "| --- | --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for name in dict.fromkeys(r["candidate"] for r in results):
        for task in dict.fromkeys(r["task"] for r in results):
            rows = [r for r in results if r["candidate"] == name and r["task"] == task]
            shares = [r["share"] if r["share"] is not None else math.inf for r in rows]
            median = statistics.median(shares)
            fmt = lambda s: "never" if math.isinf(s) else f"{s:.1%}"  # noqa: E731
            lines.append(f"| {name} | {rows[0]['rule']} | {task} | {sum(r['share'] is not None for r in rows)}"
                         f"/{len(rows)} | {fmt(median)} | {fmt(max(shares))} |")  # fmt: skip
        every = [r["share"] if r["share"] is not None else math.inf for r in results if r["candidate"] == name]
        reached = sum(not math.isinf(s) for s in every)
        median = statistics.median(every)
        lines.append(f"| **{name}** | | all | **{reached}/{len(every)}** | "
                     f"**{'never' if math.isinf(median) else f'{median:.1%}'}** | |")  # fmt: skip
    lines += ["", "## value rules: bias against the held-out accuracy of the final model (random trials)", "",
              "| task | rule | mean bias per trial | winner's bias | winner's held-out acc |",
              "| --- | --- | ---: | ---: | ---: |"]  # fmt: skip
    for b in bias:
        lines.append(f"| {b['task']} | {b['rule']} | {b['bias']:+.4f} | {b['winner_bias']:+.4f} | "
                     f"{b['winner_holdout']:.4f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
