"""Findings about a trial from its telemetry: gradient health, fit, learning rate.

Each finding is a dict: `kind`, `severity` ("info" | "warning" | "error"), `evidence` (the numbers that
triggered it) and `remedy` (what to try, in plain words). The rules are deliberately simple thresholds on
the telemetry the loop already records; the numbers they use are in the evidence so a user can judge.

Several symptoms share causes, so the rules run in order and later ones stand down when an earlier one
already explains the trial: a diverging loss kills ReLUs (which looks like vanishing gradients), and
vanishing gradients or a tiny learning rate both look like underfitting.
"""

from __future__ import annotations

import math
import statistics

from engine.config import TrainConfig

KINDS = (
    "exploding_gradients",
    "lr_too_high",
    "vanishing_gradients",
    "lr_too_low",
    "underfitting",
    "overfitting",
)

SPIKE_LOSS_FACTOR = 3.0  # a step loss this many times the first one: the loss diverged
SPIKE_NORM_FACTOR = 20.0  # a gradient norm this many times the median of the earlier ones: a spike
CLIP_NEARLY_ALWAYS = 0.9  # fraction of steps clipped
VANISHING_RATIO = 1e-2  # first-layer / last-layer gradient norm
VANISHING_SEVERE = 1e-4
NO_PROGRESS = 0.05  # relative drop of the training loss below which nothing was learned
LOW_ACC = 0.5  # underfitting: both accuracies below this ...
FLAT_ACC = 0.02  # ... and train accuracy rising less than this over the last half of the epochs
GAP_ACC = 0.1  # overfitting: train accuracy above val accuracy by more than this
VAL_LOSS_RISE = 1.2  # overfitting: val loss this many times its minimum, while train loss fell


def diagnose(
    epochs: list[dict], steps: list[dict], layers: list[dict], config: TrainConfig, failure: str | None
) -> list[dict]:
    """The trial's findings, most fundamental first. `epochs`: tt_epoch rows (with "epoch"); `steps`:
    tt_step rows; `layers`: tt_layer rows (with "epoch"), input to output within an epoch; `failure`:
    the TrialFailed reason, if the trial failed."""
    findings: list[dict] = []
    losses = [s["loss"] for s in steps if _finite(s.get("loss"))]
    first_loss = losses[0] if losses else (epochs[0].get("train_loss") if epochs else None)

    exploding = _exploding(epochs, steps, config, failure)
    if exploding:
        findings.append(exploding)
    too_high = _lr_too_high(epochs, losses, first_loss, config, failure)
    if too_high:
        findings.append(too_high)
    diverged = exploding is not None or too_high is not None

    vanishing = None if diverged else _vanishing(layers, config)
    if vanishing:
        findings.append(vanishing)
    too_low = None if diverged or vanishing else _lr_too_low(epochs, first_loss, config)
    if too_low:
        findings.append(too_low)
    if not (diverged or vanishing or too_low):
        underfit = _underfitting(epochs, config)
        if underfit:
            findings.append(underfit)
        overfit = _overfitting(epochs, config)
        if overfit:
            findings.append(overfit)
    return findings


def _exploding(
    epochs: list[dict], steps: list[dict], config: TrainConfig, failure: str | None
) -> dict | None:
    if failure == "nan_loss":
        return _finding(
            "exploding_gradients",
            "error",
            {"failure": failure, "lr": config.lr, "clip_norm": config.clip_norm},
            "The loss became NaN or infinite. Lower lr (3-10x), set clip_norm (e.g. 1.0), add batch_norm, "
            'or train in fp32 (amp = "off").',
        )
    measured = [(s["step"], s["grad_norm"]) for s in steps if _finite(s.get("grad_norm"))]
    norms = [norm for _, norm in measured]
    # a spike is judged against the norms before it: norms shrinking as training converges is no spike
    for i in range(1, len(norms)):
        before = statistics.median(norms[:i])
        if before > 0 and norms[i] > SPIKE_NORM_FACTOR * before:
            return _finding(
                "exploding_gradients",
                "warning",
                {"step": measured[i][0], "grad_norm": norms[i], "median_grad_norm_before": before},
                "The gradient norm spiked far above its earlier size. Set clip_norm (e.g. 1.0) or lower it, "
                "lower lr, or add warmup_epochs.",
            )
    if config.clip_norm is not None and epochs:
        fractions = [e["clip_frac"] for e in epochs if _finite(e.get("clip_frac"))]
        mean_clip = sum(fractions) / len(fractions) if fractions else 0.0
        if mean_clip >= CLIP_NEARLY_ALWAYS:
            return _finding(
                "exploding_gradients",
                "warning",
                {"clip_frac": mean_clip, "clip_norm": config.clip_norm},
                f"Gradients exceeded clip_norm on {mean_clip:.0%} of steps, so clipping sets the step size. "
                "Lower lr, or raise clip_norm if the large gradients are expected.",
            )
    return None


def _lr_too_high(
    epochs: list[dict],
    losses: list[float],
    first_loss: float | None,
    config: TrainConfig,
    failure: str | None,
) -> dict | None:
    if first_loss is None or first_loss <= 0:
        return None
    epoch_losses = [e["train_loss"] for e in epochs if _finite(e.get("train_loss"))]
    peak = max([*losses, *epoch_losses], default=first_loss)
    final = epoch_losses[-1] if epoch_losses else first_loss
    spiked = peak > SPIKE_LOSS_FACTOR * first_loss
    if failure == "nan_loss" or spiked:
        return _finding(
            "lr_too_high",
            "error" if failure == "nan_loss" else "warning",
            {"lr": config.lr, "first_loss": first_loss, "max_loss": peak, "final_train_loss": final},
            f"The training loss jumped to {peak:.3g} from {first_loss:.3g} at the start: the steps overshoot. "
            "Lower lr (try 3-10x smaller), add warmup_epochs, or set clip_norm.",
        )
    return None


def _vanishing(layers: list[dict], config: TrainConfig) -> dict | None:
    by_epoch: dict[int, list[dict]] = {}
    for row in layers:
        by_epoch.setdefault(row.get("epoch", 0), []).append(row)
    ratios = []
    for rows in by_epoch.values():
        if len(rows) < 2:
            continue
        first, last = rows[0].get("grad_norm"), rows[-1].get("grad_norm")
        if _finite(first) and _finite(last) and last > 0:
            ratios.append(first / last)
    if not ratios:
        return None
    ratio = statistics.median(ratios)
    if ratio >= VANISHING_RATIO:
        return None
    first_rows = next(iter(by_epoch.values()))
    return _finding(
        "vanishing_gradients",
        "error" if ratio < VANISHING_SEVERE else "warning",
        {
            "first_layer": first_rows[0]["layer"],
            "last_layer": first_rows[-1]["layer"],
            "grad_norm_ratio": ratio,
            "activation": config.activation,
            "layers": config.layers,
        },
        f"The first layer gets {ratio:.1e} of the last layer's gradient, so it barely learns. Use relu or gelu "
        "instead of sigmoid/tanh, kaiming init, batch_norm = true, or fewer layers.",
    )


def _lr_too_low(epochs: list[dict], first_loss: float | None, config: TrainConfig) -> dict | None:
    if first_loss is None or first_loss <= 0 or len(epochs) < 2 or not _finite(epochs[-1].get("train_loss")):
        return None
    final = epochs[-1]["train_loss"]
    progress = (first_loss - final) / first_loss
    if progress >= NO_PROGRESS:
        return None
    return _finding(
        "lr_too_low",
        "warning",
        {"lr": config.lr, "first_loss": first_loss, "final_train_loss": final, "relative_progress": progress},
        f"The training loss fell only {max(progress, 0):.1%} in {len(epochs)} epochs. Raise lr (try 10x), "
        "or use adam/adamw, which are less sensitive to the lr scale.",
    )


def _underfitting(epochs: list[dict], config: TrainConfig) -> dict | None:
    if len(epochs) < 3 or not _reported(epochs, "train_acc", "val_acc"):
        return None
    last = epochs[-1]
    window = epochs[len(epochs) // 2 :]
    rise = window[-1]["train_acc"] - window[0]["train_acc"]
    if last["train_acc"] >= LOW_ACC or last["val_acc"] >= LOW_ACC or rise >= FLAT_ACC:
        return None
    return _finding(
        "underfitting",
        "warning",
        {
            "train_acc": last["train_acc"],
            "val_acc": last["val_acc"],
            "train_acc_rise_last_half": rise,
            "width": config.width,
            "layers": config.layers,
        },
        "Both accuracies are low and no longer improving: the model cannot fit the training data. Make it "
        "wider or deeper, lower dropout and weight_decay, or train longer with a higher lr.",
    )


def _overfitting(epochs: list[dict], config: TrainConfig) -> dict | None:
    if len(epochs) < 3 or not _reported(epochs, "train_acc", "val_acc", "train_loss", "val_loss"):
        return None
    last = epochs[-1]
    gap = last["train_acc"] - last["val_acc"]
    val_losses = [e["val_loss"] for e in epochs]
    best_at = min(range(len(val_losses)), key=val_losses.__getitem__)
    rise = last["val_loss"] / val_losses[best_at] if val_losses[best_at] > 0 else 1.0
    train_fell = last["train_loss"] < epochs[best_at]["train_loss"]
    val_rising = rise >= VAL_LOSS_RISE and train_fell and len(epochs) - 1 - best_at >= 2
    if gap <= GAP_ACC and not val_rising:
        return None
    evidence = {
        "train_acc": last["train_acc"],
        "val_acc": last["val_acc"],
        "acc_gap": gap,
        "best_val_loss": val_losses[best_at],
        "best_val_loss_epoch": epochs[best_at].get("epoch", best_at + 1),
        "final_val_loss": last["val_loss"],
    }
    regularized = config.dropout > 0 or config.weight_decay > 0 or config.l2 > 0 or config.label_smoothing > 0
    return _finding(
        "overfitting",
        "warning" if gap > GAP_ACC else "info",
        evidence,
        "The model fits the training data much better than the validation data. "
        + ("Strengthen" if regularized else "Add")
        + " regularization (dropout, weight_decay, label_smoothing), use augment or more training data, "
        "or stop earlier (early_stopping_patience).",
    )


def _finding(kind: str, severity: str, evidence: dict, remedy: str) -> dict:
    return {"kind": kind, "severity": severity, "evidence": evidence, "remedy": remedy}


def _reported(epochs: list[dict], *columns: str) -> bool:
    """Every epoch has these columns: a loop of the user's own may report other metrics (val_rmse)."""
    return all(_finite(e.get(c)) for e in epochs for c in columns)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
