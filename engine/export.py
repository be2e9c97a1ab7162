"""Study results out of the store: one row per trial (CSV/JSON), and the best trial as a runnable spec."""

from __future__ import annotations

import csv
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from engine.files import open_private, write_private
from engine.report import best_trial, extra_metrics
from engine.store import EPOCH_COLUMNS, Store, StoreError, redact_spec
from engine.text import safe

FINAL_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "epoch_time_s")


def _study_id(store: Store, study_name: str) -> int:
    study_id = store.study_id(study_name)
    if study_id is None:
        known = ", ".join(s["study_name"] for s in store.studies()) or "none"
        raise StoreError(f"no study named {study_name!r} in this store (studies: {known})")
    return study_id


def export_rows(store: Store, study_name: str) -> list[dict[str, Any]]:
    """One flat row per trial: number, state, value, params (param_*), durations, final-epoch metrics
    (final_*: the engine's columns, then every other metric any trial reported)."""
    study_id = _study_id(store, study_name)
    last_epoch: dict[int, dict] = {}
    for row in store.epochs(study_id):
        last_epoch[row["trial_number"]] = row  # ordered by epoch: the last one wins
    trials = store.trials(study_id)
    names = sorted({name for t in trials for name in t.params})
    extras = extra_metrics(last_epoch.values())
    objectives = len(store.directions(study_id))
    rows = []
    for t in trials:
        final = last_epoch.get(t.number, {})
        if objectives > 1:  # one column per objective, never objective 0 as "the" value
            values = {f"value_{i}": t.values[i] if i < len(t.values) else None for i in range(objectives)}
        else:
            values = {"value": t.value}
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state,
            **values,
            "fail_reason": t.reason,
            "epochs": t.epochs,
            "duration_s": round(t.duration_s, 3) if t.duration_s is not None else None,
            "train_time_s": None,
            "test_acc": None,
            "test_loss": None,
            "origin": None,  # an enqueued trial's (engine/enqueue.py): where it came from ...
            "overrides": None,  # ... and the values it trained with instead of sampled ones (no param_ value)
            "note": None,
        }
        row.update({f"param_{n}": t.params.get(n) for n in names})
        row.update({f"final_{m}": final.get(m) for m in FINAL_METRICS if m in EPOCH_COLUMNS})
        row.update({f"final_{m}": final.get(m) for m in extras})
        rows.append(row)
    if rows:
        for key in ("train_time_s", "test_acc", "test_loss", "origin", "overrides", "note"):  # trial attrs
            values = store.attr_by_number(study_id, key)
            for row in rows:
                row[key] = values.get(row["number"])
    return rows


def write_csv(rows: list[dict[str, Any]], path: str | Path | None, stream=None) -> None:
    fields = list(rows[0]) if rows else ["number", "state", "value"]
    out = stream if path is None else open_private(path, newline="")
    try:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in row.items()})
    finally:
        if path is not None:
            out.close()


def _csv_value(value: Any) -> Any:
    """CSV has no escape for control bytes (ESC would reach a terminal that shows the file): drop them.
    JSON keeps every value exactly: json.dumps writes control characters as \\u escapes."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):  # overrides: JSON in the cell, as in the JSON export
        return safe(json.dumps(json_safe(value)))
    return value


def write_json(rows: list[dict[str, Any]], path: str | Path | None, stream=None) -> None:
    text = json_text(rows)
    if path is None:
        stream.write(text + "\n")
        return
    write_private(path, text + "\n")


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float as the string "inf", "-inf" or "nan": strict JSON (no bare
    Infinity/NaN) that still says which it was. Every JSON tunetui writes goes through this."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def json_text(value: Any) -> str:
    return json.dumps(json_safe(value), indent=2, allow_nan=False)


class FrontTrialNeeded(ValueError):
    """A study with several objectives has no single best: the caller must name a trial of its Pareto front
    (the CLI's exit 2, listing the front)."""


def objective_names(store: Store, study_id: int, count: int) -> list[str]:
    """The metric of each objective as the study recorded it (its identity), else "objective i"."""
    from engine.identity import ATTR
    from engine.objectives import recorded_names

    return recorded_names(store.study_attrs(study_id).get(ATTR), count) or [f"objective {i}" for i in range(count)]


def front_choices(store: Store, study_name: str) -> list[tuple[int, str]] | None:
    """The Pareto front of a study with several objectives, as (trial number, "val_acc 0.9100, params 1234")
    pairs; None for a study with one objective."""
    study_id = _study_id(store, study_name)
    directions = store.directions(study_id)
    if len(directions) < 2:
        return None
    names = objective_names(store, study_id, len(directions))
    return [(t.number, ", ".join(f"{n} {v:.6g}" for n, v in zip(names, t.values, strict=True)))
            for t in store.pareto_front(study_id)]  # fmt: skip


def stored_spec(store: Store, study_name: str) -> str:
    """The spec text tunetui stored when it started the study; StoreError saying why for a study it did not
    start (one made by Optuna alone has none, so no spec can be written from it)."""
    spec_text = _study_attr(store, _study_id(store, study_name), "spec_toml")
    if not spec_text:
        raise StoreError(f"study {study_name!r} has no stored spec (it was not started by tunetui)")
    return spec_text


def best_spec_toml(store: Store, study_name: str, trial_number: int | None = None) -> str:
    """The study's spec with the params of its best trial (or of trial `trial_number`: any complete trial of
    a study with one objective, a Pareto-front trial of one with several), and the overrides it trained with,
    fixed in [train] and no search space."""
    study_id = _study_id(store, study_name)
    spec_text = stored_spec(store, study_name)
    front = front_choices(store, study_name)
    trials = store.trials(study_id)
    if front is not None:
        listed = "; ".join(f"#{number} ({text})" for number, text in front) or "none yet (no complete trial)"
        if trial_number is None or trial_number not in {number for number, _ in front}:
            said = "" if trial_number is None else f"trial {trial_number} is not on its Pareto front; "
            raise FrontTrialNeeded(f"study {study_name!r} has several objectives and no single best: {said}name a "
                                   f"trial of its Pareto front with --trial N (front: {listed})")  # fmt: skip
        chosen = next(t for t in trials if t.number == trial_number)
        value_text = dict(front)[trial_number]
    elif trial_number is not None:
        chosen = next((t for t in trials if t.number == trial_number and t.state == "COMPLETE"), None)
        if chosen is None:
            raise FrontTrialNeeded(f"study {study_name!r} has no complete trial {trial_number}")
        value_text = f"value {chosen.value:.6g}"
    else:
        direction = next(s["direction"] for s in store.studies() if s["study_id"] == study_id)
        chosen = best_trial(trials, direction == "MAXIMIZE")
        if chosen is None:
            raise StoreError(f"study {study_name!r} has no complete trial yet")
        value_text = f"value {chosen.value:.6g}"
    data = tomllib.loads(redact_spec(spec_text))  # a store written before passwords were redacted
    from engine.config import TRAIN_FIELDS

    train = dict(data.get("train", {}))
    task = dict(data.get("task", {}))
    overrides = store.trial_attrs(study_id, chosen.number).get("overrides")  # engine/enqueue.py: not in params
    plain = {k: v for k, v in overrides.items() if isinstance(v, bool | int | float | str)} if isinstance(overrides, dict) else {}
    for name, value in {**chosen.params, **plain}.items():
        if name in TRAIN_FIELDS or ":" in str(task.get("name", "")):
            train[name] = value
    data["train"] = train
    data.pop("space", None)
    study = dict(data.get("study", {}))
    study["name"] = f"{study.get('name', study_name)}-best"
    which = "best trial" if trial_number is None else "trial"
    study["description"] = f"{which} {chosen.number} of {study_name} ({value_text}), space fixed"
    data["study"] = study
    data["budget"] = {**data.get("budget", {}), "n_trials": 1}
    data["sampler"] = {"kind": "random"}
    data["pruner"] = {"kind": "none"}
    option = "" if trial_number is None else f" --trial {trial_number}"
    return f"# Written by `tunetui export {study_name} --best-spec{option}`.\n" + tomli_w.dumps(data)


def _study_attr(store: Store, study_id: int, key: str) -> Any:
    return store.study_attrs(study_id).get(key)
