"""TensorBoard event files from trial telemetry: scalars per epoch and step, layer norms and gradient
histograms. Takes plain rows (as in the tt_epoch / tt_step / tt_layer tables), so any source can feed it.

TensorBoard is an optional extra (`pip install 'tunetui[tensorboard]'`); it is imported only here.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from engine.files import private_dir, private_umask
from engine.report import extra_metrics

EPOCH_SCALARS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "clip_frac",
    "epoch_time_s", "samples_per_s", "mem_peak_mb",
)  # fmt: skip
STEP_SCALARS = ("loss", "lr", "grad_norm", "amp_scale")


class TensorBoardMissing(ImportError):
    """The tensorboard package is not installed."""


def export_tensorboard(trials: dict[int, dict[str, Any]], out_dir: str | Path) -> int:
    """Write one run folder `trial_<number>` per trial under out_dir; return how many were written.

    `trials` maps a trial number to {"epochs": [tt_epoch rows], "steps": [tt_step rows],
    "layers": [tt_layer rows], "params": {...} (optional), "value": float | None (optional),
    "state": str (optional)}. Rows need the table's columns ("epoch", "step", "layer", metrics...).
    """
    SummaryWriter = _summary_writer()
    out_dir = private_dir(out_dir)
    written = 0
    with private_umask():  # SummaryWriter makes its folders and event files with default modes
        for number, trial in sorted(trials.items()):
            written += _write_trial(SummaryWriter, out_dir, number, trial)
    return written


def _write_trial(SummaryWriter: Any, out_dir: Path, number: int, trial: dict[str, Any]) -> int:
    """One trial's run folder; 0 when the trial has no telemetry."""
    epochs, steps, layers = trial.get("epochs") or [], trial.get("steps") or [], trial.get("layers") or []
    if not (epochs or steps or layers):
        return 0
    # the engine's columns, then every other metric the trial reported (val_rmse, params, an own loop's val_f1)
    names = (*EPOCH_SCALARS, *(name for name in extra_metrics(epochs) if name not in EPOCH_SCALARS))
    with SummaryWriter(log_dir=str(out_dir / f"trial_{number:04d}")) as writer:
        for row in epochs:
            for name in names:
                if _number(row.get(name)):
                    writer.add_scalar(f"epoch/{_tag(name)}", row[name], int(row["epoch"]))
        for row in steps:
            for name in STEP_SCALARS:
                if _number(row.get(name)):
                    writer.add_scalar(f"step/{name}", row[name], int(row["step"]))
        for row in layers:
            _write_layer(writer, row)
        hparams = {
            k: v
            for k, v in (trial.get("params") or {}).items()
            if isinstance(v, bool | int | float | str)
        }
        if hparams:
            metrics = {"hparam/value": trial["value"]} if _number(trial.get("value")) else {}
            last = epochs[-1] if epochs else {}
            metrics.update(
                {f"hparam/{k}": last[k] for k in ("val_acc", "val_loss") if _number(last.get(k))}
            )
            writer.add_hparams(hparams, metrics, run_name="hparams")
    return 1


def export_study_tensorboard(store: Any, study_name: str, out_dir: str | Path) -> int:
    """Every trial of a study in the store (engine.store.Store) to TensorBoard; returns the trial count."""
    study_id = store.study_id(study_name)
    if study_id is None:
        raise ValueError(f"no study named {study_name!r} in the store")
    trials = {}
    for trial in store.trials(study_id):
        trials[trial.number] = {
            "epochs": store.epochs(study_id, trial.number),
            "steps": store.steps(study_id, trial.number),
            "layers": store.layers(study_id, trial.number),
            "params": trial.params,
            "value": trial.value,
            "state": trial.state,
        }
    return export_tensorboard(trials, out_dir)


def _tag(name: str) -> str:
    """A name from a trial made safe for a TensorBoard tag (no slash to nest it, no control byte)."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name))


def _write_layer(writer: Any, row: dict) -> None:
    epoch = int(row["epoch"])
    layer = _tag(row["layer"])
    for name in ("grad_norm", "weight_norm"):
        if _number(row.get(name)):
            writer.add_scalar(f"layer_{name}/{layer}", row[name], epoch)
    hist = json.loads(row["hist_json"]) if row.get("hist_json") else None
    if not hist or not hist.get("counts"):
        return
    edges, counts = hist["edges"], hist["counts"]
    total = sum(counts)
    if total <= 0:
        return
    centers = [(edges[i] + edges[i + 1]) / 2 for i in range(len(counts))]
    # the table keeps bin counts, not the values: sums are estimated from the bin centres
    writer.add_histogram_raw(
        f"grad_hist/{layer}",
        min=edges[0],
        max=edges[-1],
        num=total,
        sum=sum(c * n for c, n in zip(centers, counts, strict=True)),
        sum_squares=sum(c * c * n for c, n in zip(centers, counts, strict=True)),
        bucket_limits=edges[1:],  # right edge of each bin
        bucket_counts=counts,
        global_step=epoch,
    )


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise TensorBoardMissing(
            "TensorBoard export needs the tensorboard package: pip install 'tunetui[tensorboard]' "
            f"(or pip install tensorboard) ({err})"
        ) from err
    return SummaryWriter


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
