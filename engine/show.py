"""What `tunetui ls`, `show` and the end of `run` print: a study's counts, best trial, Pareto front,
findings and one trial's epochs, as rich tables or JSON. Outside text (names, params, log lines) is made
safe before rich sees it."""

from __future__ import annotations

import argparse
from typing import Any

from engine.launch import UsageError
from engine.report import (
    best_text,
    best_trial,
    extra_metrics,
    find_study,
    fixed_number,
    missing_trial,
    short_number,
)
from engine.text import markup_safe, safe

EXIT_OK = 0


def open_store(args: argparse.Namespace, read_only: bool = True):
    from engine.store import Store

    return Store(getattr(args, "storage", None), read_only=read_only)


def cmd_ls(args: argparse.Namespace) -> int:
    from engine.store import StoreError

    try:
        store = open_store(args)
    except StoreError as err:
        if "no store at" in str(err):
            print("no studies yet (the store does not exist)")
            return EXIT_OK
        raise
    studies = store.studies()
    if args.json:
        from engine.export import json_text

        print(json_text(studies))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"studies in {markup_safe(_short_url(store.url))}")
    for col in ("study", "status", "trials", "complete", "pruned", "fail", "running", "best", "coordinator"):
        table.add_column(col, justify="right" if col not in ("study", "status", "coordinator") else "left")
    for s in studies:
        c = s["counts"]
        live = [f"{b['host']}:{b['pid']}" + ("" if b["alive"] else " (gone)") for b in s["coordinators"]]
        table.add_row(
            markup_safe(s["study_name"]), s["status"], str(sum(c.values())), str(c.get("COMPLETE", 0)), str(c.get("PRUNED", 0)),
            str(c.get("FAIL", 0)), str(c.get("RUNNING", 0)), best_text(s), markup_safe(", ".join(live) or "-"),
        )  # fmt: skip
    Console().print(table)
    if not studies:
        print("no studies yet")
    _print_gpus()
    return EXIT_OK


def _print_gpus() -> None:
    """This host's GPUs, their use and memory, as NVML reports them (nothing when there are none)."""
    from engine.gpus import read_gpus

    gpus = read_gpus()
    if gpus:
        print("GPUs here: " + ", ".join(g.line() for g in gpus))


def _short_url(url: str) -> str:
    from engine.store import redact

    return redact(url)


def _values_text(values: Any) -> str:
    return ", ".join(fixed_number(v) for v in values)


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args)
    study = find_study(store, args.study)
    sid = study["study_id"]
    trials = store.trials(sid)
    if args.trial is not None:
        return _show_trial(store, study, trials, args)
    if len(study["directions"]) > 1:
        if getattr(args, "improvement", False):  # was silently left out of the output
            raise UsageError(f"--improvement: study {study['study_name']!r} has {len(study['directions'])} "
                             "objectives; Optuna's terminator estimates the improvement left in one")  # fmt: skip
        return _show_pareto(store, study, trials, args)
    best = best_trial(trials, study["direction"] == "MAXIMIZE")
    info = {
        "study": study["study_name"],
        "status": study["status"],
        "direction": study["direction"].lower(),
        "counts": study["counts"],
        "coordinators": study["coordinators"],
        "progress": _progress(store, study, trials),
        **_when_to_stop(store, study, getattr(args, "improvement", False)),
        "best": None,
    }
    if best is not None:
        info["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "attrs": store.trial_attrs(sid, best.number),
            "findings": store.findings(sid, best.number),
            "metrics": _final_metrics(store.epochs(sid, best.number)),
        }
    reasons: dict[str, int] = {}
    for t in trials:
        if t.reason:
            reasons[t.reason] = reasons.get(t.reason, 0) + 1
    info["fail_reasons"] = reasons
    flagged = [(t.number, store.findings(sid, t.number)) for t in trials if t.flags]
    info["diagnosis"] = {n: [f["kind"] for f in fs] for n, fs in flagged}
    info.update(_weights(store, study, args))
    if args.json:
        return _print_json(info)
    console = _study_header(study, info["progress"])
    _print_when_to_stop(console, info)
    if reasons:
        console.print("failures: " + ", ".join(f"{markup_safe(k)} {v}" for k, v in reasons.items()),
                      highlight=False)  # fmt: skip
    if best is None:
        console.print("no complete trial yet")
    else:
        console.print(f"best trial #{best.number}: value {best.value:.4f}", highlight=False)
        test_acc = info["best"]["attrs"].get("test_acc")
        if test_acc is not None:  # the official test split, evaluated once on the final model
            console.print(f"  test_acc (final model, held-out test split) = {test_acc:.4f}", highlight=False)
        _print_params(console, best.params)
        _print_origin(console, info["best"]["attrs"])
        final = info["best"]["metrics"]
        if final:
            shown = ", ".join(f"{safe(k)} {fixed_number(v)}" for k, v in final.items() if k not in ("lr", "epoch_time_s"))
            console.print(f"  final epoch: {shown}", highlight=False, markup=False)
        _print_findings(console, info["best"]["findings"])
    _print_weights(console, info, said=best.number if best is not None else None)
    if flagged:
        console.print(
            f"diagnosis: {len(flagged)} trial(s) flagged; `tunetui show {markup_safe(args.study)} --trial N` for details"
        )
        for number, findings in flagged[:10]:
            kinds = ", ".join(f"{f['kind']} ({f['severity']})" for f in findings)
            console.print(f"  #{number}: {markup_safe(kinds)}", highlight=False)
    return EXIT_OK


def _final_metrics(epochs: list[dict]) -> dict[str, float | None]:
    """The last epoch's metrics that were reported: the accuracy or regression columns, then the others."""
    if not epochs:
        return {}
    last = epochs[-1]
    names = ("train_loss", "val_loss", "train_acc", "val_acc", "lr", "epoch_time_s", *extra_metrics([last]))
    return {name: last[name] for name in names if last.get(name) is not None}


def _print_json(info: dict) -> int:
    from engine.export import json_text

    print(json_text(info))
    return EXIT_OK


def _progress(store, study: dict, trials: list) -> dict | None:
    """The live runs' trials against their targets and the ETA (engine/progress.py); None when none runs."""
    import time
    from dataclasses import asdict

    from engine.progress import run_progress

    progress = run_progress(trials, store.study_attrs(study["study_id"]), study["coordinators"], time.time())
    return None if progress is None else {**asdict(progress), "text": progress.text()}


def _when_to_stop(store, study: dict, estimate_now: bool) -> dict:
    """Optuna's terminator estimate of the improvement left (the latest a run recorded, or computed now with
    --improvement) and why the last run stopped early, if it did (engine/terminator.py)."""
    from engine import terminator

    attrs = store.study_attrs(study["study_id"])
    estimate = terminator.recorded(attrs)
    if estimate_now:
        estimate = terminator.estimate_study(store, study["study_name"])
    shown = None if estimate is None else {**estimate.record(), "error": estimate.error, "text": estimate.text()}
    return {"improvement": shown, "stopped_by": terminator.stopped_by(attrs, study["coordinators"])}


def _print_when_to_stop(console, info: dict) -> None:
    if info["improvement"] is not None:
        error = info["improvement"]["error"]
        console.print(info["improvement"]["text"] + (f" ({error})" if error else ""), highlight=False, markup=False)
    if info["stopped_by"] and info["status"] != "running":
        console.print(f"stopped: {info['stopped_by']}", highlight=False, markup=False)


def _study_header(study: dict, progress: dict | None = None):
    """A console for `show`, with the study's name, status, counts by state and a live run's progress first."""
    from rich.console import Console

    console = Console()
    counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(study["counts"].items())) or "no trials"
    console.print(f"[bold]{markup_safe(study['study_name'])}[/] ({study['status']}): {counts}", highlight=False)
    if progress is not None:
        console.print(f"run: {progress['text']}", highlight=False)
    return console


def _print_params(console, params: dict) -> None:
    for k, v in params.items():
        console.print(f"  {safe(k)} = {safe(repr(v))}", highlight=False, markup=False)


def _show_pareto(store, study: dict, trials: list, args: argparse.Namespace) -> int:
    """A multi-objective study: its directions and every trial on the Pareto front with all its values."""
    from engine.export import objective_names

    front = store.pareto_front(study["study_id"])
    info = {
        "study": study["study_name"],
        "status": study["status"],
        "directions": [d.lower() for d in study["directions"]],
        "objectives": objective_names(store, study["study_id"], len(study["directions"])),
        "counts": study["counts"],
        "coordinators": study["coordinators"],
        "progress": _progress(store, study, trials),
        "best": None,  # several objectives: no single best
        "pareto_front": [{"number": t.number, "values": list(t.values), "params": t.params} for t in front],
        **_weights(store, study, args),
    }
    if args.json:
        return _print_json(info)
    console = _study_header(study, info["progress"])
    _print_front(console, info["directions"], info["objectives"], front)
    _print_weights(console, info)
    return EXIT_OK


def _print_front(console, directions: list[str], names: list[str], front: list) -> None:
    shown = ", ".join(f"{d} {n}" for d, n in zip(directions, names, strict=True))
    console.print(f"objectives: {markup_safe(shown)}", highlight=False)
    console.print(f"Pareto front: {len(front)} trial(s)", highlight=False)
    for t in front:
        console.print(f"  #{t.number}: values ({_values_text(t.values)})", highlight=False)
        _print_params(console, t.params)


def _weights(store, study: dict, args: argparse.Namespace) -> dict[str, Any]:
    """`weights`: the trials' saved weights in the artifact folder (trial, file name as the store says it,
    bytes); `weights_not_saved`: why a complete trial's upload failed, by trial number; `weights_refused`:
    why none is listed when another user can write the folder."""
    from engine.files import NotPrivate
    from engine.weights import WEIGHTS_ERROR_KEY, artifact_dir, study_weights

    folder = artifact_dir(store.url, getattr(args, "artifacts", None))
    failed = {n: str(why) for n, why in store.attr_by_number(study["study_id"], WEIGHTS_ERROR_KEY).items() if why}
    info: dict[str, Any] = {"weights": [], "weights_not_saved": failed}
    try:
        saved = study_weights(store, study["study_name"], folder)
    except NotPrivate as err:
        info["weights_refused"] = str(err)
        return info
    info["weights"] = [{"trial": w.number, "file": w.filename, "bytes": w.size, "artifact_id": w.artifact_id}
                       for w in saved]  # fmt: skip
    return info


def _print_weights(console, info: dict, said: int | None = None) -> None:
    """The saved weights, then why any trial's were not saved (but trial `said`'s: its own lines said it)."""
    weights = info["weights"]
    if weights:
        console.print(f"saved weights ({len(weights)}; `tunetui export --weights --trial N -o FILE` writes one):",
                      highlight=False)  # fmt: skip
    for w in weights:
        console.print(f"  #{w['trial']}: {safe(w['file'])} ({w['bytes']:,} bytes)", highlight=False, markup=False)
    for number, why in sorted(info["weights_not_saved"].items()):
        if number != said:
            console.print(f"  #{number}: weights not saved: {safe(why)}", highlight=False, markup=False)
    if info.get("weights_refused"):
        console.print(f"saved weights not listed: {safe(info['weights_refused'])}", highlight=False, markup=False)


def _print_origin(console, attrs: dict) -> None:
    """A trial's note, an enqueued trial's origin and overrides (engine/enqueue.py: the values it trained
    with instead of sampled ones, absent from its params), and why its weights were not saved."""
    for key, label in (("note", "note"), ("origin", "enqueued"), ("overrides", "overrides (trained with, not sampled)"),
                       ("weights_error", "weights not saved")):  # fmt: skip
        value = attrs.get(key)
        if value:
            text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()) \
                if isinstance(value, dict) else value
            console.print(f"  {label}: {safe(text)}", highlight=False, markup=False)


def _print_findings(console, findings: list[dict]) -> None:
    for f in findings:
        evidence = ", ".join(f"{k}={short_number(v)}" for k, v in (f.get("evidence") or {}).items())
        console.print(f"  [{safe(f['severity'])}] {safe(f['kind'])}: {safe(evidence)}", highlight=False, markup=False)
        console.print(f"      remedy: {safe(f['remedy'])}", highlight=False, markup=False)


def _show_trial(store, study: dict, trials: list, args: argparse.Namespace) -> int:
    sid = study["study_id"]
    match = [t for t in trials if t.number == args.trial]
    if not match:
        raise UsageError(missing_trial(study, args.trial) or f"study {study['study_name']} has no trial {args.trial}")
    t = match[0]
    info = {
        "number": t.number, "state": t.state, "value": t.value, "params": t.params, "reason": t.reason,
        "attrs": store.trial_attrs(sid, t.number), "epochs": store.epochs(sid, t.number),
        "findings": store.findings(sid, t.number), "log": [r["line"] for r in store.logs(sid, t.number, limit=20)],
    }  # fmt: skip
    if len(study["directions"]) > 1:
        info["values"] = list(t.values)
    if args.json:
        from engine.export import json_text

        print(json_text(info))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if len(study["directions"]) > 1:  # a failed, running or waiting trial has none
        value = f"values=({_values_text(t.values)})" if t.values else "values=-"
    else:
        value = f"value={fixed_number(t.value)}"
    console.print(
        f"[bold]trial #{t.number}[/] {t.state} {value}" + (f" ({markup_safe(t.reason)})" if t.reason else "")
    )
    _print_params(console, t.params)
    _print_origin(console, info["attrs"])
    # the engine's columns, then every other metric the trial reported (its names are text, never markup)
    columns = ["train_loss", "val_loss", "train_acc", "val_acc", "lr", "grad_norm", *extra_metrics(info["epochs"])]
    table = Table("epoch")
    for column in columns:
        table.add_column(Text(safe(column)))
    for e in info["epochs"]:
        table.add_row(str(e["epoch"]), *(fixed_number(e.get(c)) for c in columns))
    console.print(table)
    _print_findings(console, info["findings"])
    for line in info["log"][-10:]:
        console.print(f"  | {safe(line)}", highlight=False, markup=False)
    return EXIT_OK


def print_summary(store, study_name: str) -> None:
    """The table printed when `tunetui run` ends: counts by state and the best trial."""
    from rich.console import Console
    from rich.table import Table

    study = find_study(store, study_name)
    best = best_trial(store.trials(study["study_id"]), study["direction"] == "MAXIMIZE")
    console = Console()
    counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(study["counts"].items()))
    console.print(f"study [bold]{markup_safe(study_name)}[/]: {counts}", highlight=False)
    if len(study["directions"]) > 1:  # several objectives: the front, no single best
        from engine.export import objective_names

        names = objective_names(store, study["study_id"], len(study["directions"]))
        _print_front(console, [d.lower() for d in study["directions"]], names, store.pareto_front(study["study_id"]))
        return
    if best is None:
        console.print("no complete trial")
        return
    table = Table(title=f"best trial #{best.number}", show_header=True)
    table.add_column("param")
    table.add_column("value", justify="right")
    for k, v in best.params.items():
        table.add_row(markup_safe(k), short_number(v) if isinstance(v, float) else markup_safe(v))
    console.print(table)
    metric = store_metric(store, study["study_id"])
    console.print(f"best {markup_safe(metric)}: {best.value:.4f} (trial #{best.number})", highlight=False)


def store_metric(store, study_id: int) -> str:
    from engine.export import _study_attr

    return _study_attr(store, study_id, "metric") or "value"
