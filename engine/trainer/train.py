"""The training loop: one TrainConfig in, one report per epoch out.

A TaskData lives on the device and batches are drawn by a shuffled index (no DataLoader); a
LoaderTaskData's data sets are read through DataLoaders (engine/trainer/feed.py) cut into the same
batches. The two differ only in where an epoch's batches come from, chosen once per epoch. The hot loop
never syncs with the host: losses, accuracies, sampled step telemetry and layer statistics stay on the
device and are copied in one transfer per epoch.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from engine.config import TrainConfig
from engine.diagnose import diagnose
from engine.trainer.checkpoint import Checkpoint, CheckpointUnusable
from engine.trainer.feed import LoaderFeed, target_moments, variance_of
from engine.trainer.losses import Criterion, criterion_for, target_variance
from engine.trainer.measure import keeping_first, latency_ms, parameter_count
from engine.trainer.models import build_model, layer_names
from engine.trainer.optim import build_optimizer, build_scheduler
from engine.trainer.tasks import AnyTaskData, LoaderTaskData
from engine.trainer.telemetry import (
    finite_or_none,
    histogram_picks,
    layer_rows_from,
    measure_layers,
    step_row,
    to_host,
)

EPOCH_COLUMNS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "clip_frac",
    "epoch_time_s", "samples_per_s", "mem_peak_mb",
)  # fmt: skip
EVAL_BATCH = 2048  # validation rows per forward pass
FAIL_ALLOC_ENV = "TUNETUI_FAIL_ALLOC_AT_STEP"  # tests: raise an out-of-memory error at this global step
COMPILE_BACKEND_ENV = "TUNETUI_COMPILE_BACKEND"  # torch.compile backend (default inductor)


class TrialFailed(Exception):
    """A trial that cannot go on: `reason` is "nan_loss" or "oom"; `hint` says what to try."""

    def __init__(self, reason: str, hint: str, findings: list[dict] | None = None):
        super().__init__(f"{reason}: {hint}")
        self.reason = reason
        self.hint = hint
        self.findings = findings or []  # the diagnosis up to the failure


@dataclass
class EpochReport:
    epoch: int  # 1-based
    metrics: dict[str, float | None]  # EPOCH_COLUMNS, and a regression's rmse, mae and r2
    steps: list[dict[str, Any]]  # STEP_COLUMNS, every step_every-th step
    layers: list[dict[str, Any]]  # LAYER_COLUMNS, input to output


@dataclass
class TrainResult:
    metrics: dict[str, float | None]  # the final epoch's
    epochs_run: int
    best: dict[str, float]  # best value of each objective metric, and "<metric>_epoch" where it was
    stopped_early: bool  # by early stopping (not by on_epoch)
    findings: list[dict] = field(default_factory=list)
    test: dict[str, float] = field(
        default_factory=dict
    )  # test_loss and test_acc (or test_rmse, ...) where the task has a test split
    model: nn.Module | None = None  # the trained model (its weights may be saved)


@dataclass
class _History:
    epochs: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)  # each row also carries its epoch

    def findings(self, config: TrainConfig, failure: str | None) -> list[dict]:
        return diagnose(self.epochs, self.steps, self.layers, config, failure)


def train(
    config: TrainConfig, data: AnyTaskData, device: torch.device, on_epoch: Callable[[EpochReport], bool],
    checkpoint: Checkpoint | None = None,
) -> TrainResult:
    """Train one trial. `on_epoch(report)` returning True stops it (pruned, killed) and train returns.
    With a `checkpoint`, the trial resumes after the epoch it holds and saves one after each epoch.

    Raises TrialFailed("nan_loss") on a non-finite loss and TrialFailed("oom") when memory runs out.
    """
    device = torch.device(device)
    history = _History()
    feeds: list[LoaderFeed] = []  # the trial's loaders, if any: their workers end with the trial
    try:
        return _train(config, data, device, on_epoch, history, feeds, checkpoint)
    except torch.cuda.OutOfMemoryError:
        pass  # handled below, outside the except block, so the traceback's frames and tensors are freed
    finally:
        for feed in feeds:
            feed.close()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise TrialFailed("oom", "try a smaller batch_size", history.findings(config, "oom"))


def _train(
    config: TrainConfig,
    data: AnyTaskData,
    device: torch.device,
    on_epoch: Callable[[EpochReport], bool],
    history: _History,
    feeds: list[LoaderFeed],
    checkpoint: Checkpoint | None,
) -> TrainResult:
    criterion = criterion_for(config, data)
    torch.manual_seed(config.seed)
    model = (data.build_model or (lambda c: build_model(c, data.input_shape, criterion.outputs)))(config)
    model = model.to(device)
    is_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = config.channels_last and device.type == "cuda" and is_conv
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # tensor-core friendly layout for convs
    layers = layer_names(model)  # before compile, so the names are the model's own
    n_params = parameter_count(model)
    hist_picks = histogram_picks(layers, config.seed)
    forward = model
    if config.compile:
        # dynamic=False: one graph per batch shape; the ragged batches below run eagerly instead
        forward = torch.compile(model, backend=os.environ.get(COMPILE_BACKEND_ENV) or "inductor", dynamic=False)
    fail_at = int(os.environ.get(FAIL_ALLOC_ENV) or 0)
    if fail_at:  # tests only; wrapped here so that the hot loop carries no check for it
        forward = _failing_at_step(forward, model, fail_at)

    params = [p for p in model.parameters() if p.requires_grad]
    weights = [p for p in params if p.dim() > 1]  # decay and L2 apply to weights, not biases or norms
    optimizer = build_optimizer(config, params, weights, device)
    amp_dtype = _amp_dtype(config.amp, device)
    # fp16 overflows without loss scaling; bf16 has fp32's range and needs no GradScaler
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    feed: LoaderFeed | None = None
    train_moments = val_moments = None  # a regression's target sums from the loaders, per epoch (R2)
    train_variance, val_variance = 0.0, 0.0
    if isinstance(data, LoaderTaskData):
        n_train, n_val = len(data.train_set), len(data.val_set)
    else:
        # no-ops when the task already put its tensors on the device, as it should (and its labels are class
        # indices: a regression's or bce_logits' targets become floats here, once per trial)
        x_train, y_train = data.x_train.to(device), criterion.targets(data.y_train.to(device))
        x_val, y_val = data.x_val.to(device), criterion.targets(data.y_val.to(device))
        # R2's denominators: one host copy per trial, not per epoch
        if criterion.regression:
            train_variance, val_variance = to_host(torch.stack([target_variance(y_train), target_variance(y_val)]))[0]
        n_train, n_val = len(y_train), len(y_val)
    batch_size = min(config.batch_size, n_train)
    full_batches, remainder = divmod(n_train, batch_size)
    # a last batch of one row breaks batch norm and says little: drop it
    steps_per_epoch = full_batches + (1 if remainder > 1 else 0)
    layer_step = full_batches - 1 if full_batches else 0  # layer stats come from the last full batch
    scheduler, per_batch = build_scheduler(config, optimizer, steps_per_epoch)
    if isinstance(data, LoaderTaskData):
        feed = LoaderFeed(data.train_set, data.val_set, config, device, batch_size, steps_per_epoch, criterion.targets)
        feeds.append(feed)
    augment = data.augment if config.augment and data.augment is not None else None
    generator = torch.Generator(device=device).manual_seed(config.seed)
    telemetry = config.telemetry
    clip = config.clip_norm
    is_cuda = device.type == "cuda"
    # a sample's grad norm is -1 when that step's norm was not measured (a real norm is >= 0 or nan)
    unmeasured, one = torch.tensor(-1.0, device=device), torch.tensor(1.0, device=device)

    step = 0
    best: dict[str, float] = {}
    best_val_loss, patience_left = math.inf, config.early_stopping_patience
    stopped_early = False
    metrics: dict[str, float | None] = {}
    epoch = first = 0
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    try:
        resumed = checkpoint.restore(parts, generator) if checkpoint is not None else None
    except CheckpointUnusable as err:
        raise TrialFailed("checkpoint", f"cannot resume: {err}") from None
    if resumed is not None:  # its coordinator was killed: train on from the epoch after the checkpoint's
        epoch = first = resumed[0]
        loop = resumed[1]
        step, best, best_val_loss, patience_left = (loop[k] for k in ("step", "best", "best_val_loss", "patience"))
        history.epochs, history.steps, history.layers = loop["epochs"], loop["steps"], loop["layers"]
        metrics = {k: v for k, v in history.epochs[-1].items() if k != "epoch"} if history.epochs else {}
    for epoch in range(first + 1, config.epochs + 1):
        started = time.perf_counter()
        if is_cuda:
            torch.cuda.reset_peak_memory_stats(device)
        model.train()
        if feed is None:
            order = torch.randperm(n_train, device=device, generator=generator)
            batches = _rows(x_train, y_train, order, batch_size, steps_per_epoch)
        else:
            if criterion.regression:
                train_moments = target_moments(criterion.outputs, device)
                val_moments = target_moments(criterion.outputs, device)
            batches = feed.batches(feed.train_loader, train_moments)
        loss_sum = torch.zeros((), device=device)
        fit = criterion.zero_stats(device)  # correct predictions, or a regression's error sums
        norm_sum = torch.zeros((), device=device)
        norm_count = 0  # steps whose gradient norm was measured: every step when clipping, else sampled ones
        clip_count = torch.zeros((), device=device)
        samples: list[tuple[int, float, Tensor]] = []  # (step, lr, [loss, grad norm, amp scale] on device)
        layer_stats: Tensor | None = None
        seen = 0
        lr = optimizer.param_groups[0]["lr"]
        for i, (xb, yb) in enumerate(batches):
            step += 1
            if augment is not None:
                xb = augment(xb, config)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                # the ragged last batch runs eagerly: a compiled forward would recompile for its shape
                logits = (forward if i < full_batches else model)(xb)
                loss = criterion.loss(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            sampled = telemetry and (step - 1) % config.step_every == 0
            at_layer_step = telemetry and i == layer_step
            if scaler is not None:
                scaler.scale(loss).backward()
                if clip is not None or sampled or at_layer_step or config.l2 > 0:
                    scaler.unscale_(optimizer)  # clipping, telemetry and the L2 term need the true gradients
                # otherwise scaler.step unscales, inside the fused optimizer kernel where there is one
            else:
                loss.backward()
            if config.l2 > 0:
                # d/dw of l2 * ||w||^2, added in one fused call instead of a penalty term in the loss
                # (two kernels per weight forward and two backward); clipping still sees it, as before
                with torch.no_grad():
                    decayed = [w for w in weights if w.grad is not None]
                    torch._foreach_add_([w.grad for w in decayed], decayed, alpha=2 * config.l2)
            if at_layer_step:
                layer_stats = measure_layers(layers, hist_picks, config)  # before clipping rescales the grads
            norm = None
            if clip is not None:
                norm = nn.utils.clip_grad_norm_(params, clip)  # returns the norm before clipping
                clip_count += norm > clip
            elif sampled or at_layer_step:
                norm = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            if norm is not None:
                norm_sum += norm
                norm_count += 1
            lr = optimizer.param_groups[0]["lr"]
            if sampled:
                # one stack per sample; it copies, so the scaler changing its scale later is harmless
                # (scaler.get_scale() would sync with the host; its private device tensor does not)
                scale = getattr(scaler, "_scale", None) if scaler is not None else None
                scale = one if scale is None else scale
                samples.append(
                    (
                        step,
                        lr,
                        torch.stack([loss.detach(), unmeasured if norm is None else norm, scale.reshape(())]),
                    )
                )
            if scaler is not None:
                scaler.step(optimizer)  # skipped when the unscaled grads hold inf/nan
                scaler.update()
            else:
                optimizer.step()
            if per_batch:
                scheduler.step()
            loss_sum += loss.detach() * len(yb)
            fit += criterion.stats(logits, yb)
            seen += len(yb)
        if is_cuda:
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - started

        if feed is None:
            val_batches, full = _chunks(x_val, y_val, min(EVAL_BATCH, n_val)), min(EVAL_BATCH, n_val)
        else:
            val_batches, full = feed.batches(feed.val_loader, val_moments), batch_size
        timed: list[Tensor] = []  # the first validation batch, when latency is measured
        if config.measure_latency:
            val_batches = keeping_first(val_batches, timed)
        val_loss_sum, val_fit = _evaluate(forward, model, val_batches, full, criterion, amp_dtype, channels_last, device)
        scalars = torch.stack([loss_sum, val_loss_sum, norm_sum, clip_count])
        sample_values = torch.stack([v for _, _, v in samples]) if samples else None
        variances = (
            torch.stack([variance_of(train_moments), variance_of(val_moments)])
            if train_moments is not None and val_moments is not None else None
        )  # fmt: skip
        scalars_h, fit_h, val_fit_h, samples_h, layers_h, variances_h = to_host(
            scalars, fit.reshape(-1), val_fit.reshape(-1), sample_values, layer_stats, variances
        )
        if variances_h is not None:
            train_variance, val_variance = variances_h
        train_loss_sum, val_loss_h, norm_sum_h, clip_count_h = scalars_h
        steps = [
            step_row(number, epoch, lr_s, values, clip, scaler is not None)
            for (number, lr_s, _), values in zip(samples, samples_h or [], strict=True)
        ]
        layer_rows = layer_rows_from(layers, layers_h, config) if layers_h is not None else []
        grad_norm = norm_sum_h / norm_count if norm_count else None
        epoch_seconds = time.perf_counter() - started
        metrics = {
            "train_loss": train_loss_sum / seen,
            **criterion.metrics("train", fit_h, seen, train_variance),
            "val_loss": val_loss_h / n_val,
            **criterion.metrics("val", val_fit_h, n_val, val_variance),
            "lr": lr,
            "grad_norm": finite_or_none(grad_norm),
            "clip_frac": clip_count_h / steps_per_epoch if clip is not None else 0.0,
            "epoch_time_s": epoch_seconds,
            "samples_per_s": seen / train_seconds if train_seconds > 0 else 0.0,
            "mem_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if is_cuda else 0.0,
            "params": float(n_params),
        }
        if timed:  # after epoch_time_s: the timing passes are not the epoch's
            batch = timed[0].contiguous(memory_format=torch.channels_last) if channels_last else timed[0]
            metrics["latency_ms"] = latency_ms(forward if len(batch) == full else model, model, batch, amp_dtype, device)
        history.epochs.append({"epoch": epoch, **metrics})
        history.steps.extend(steps)
        history.layers.extend({"epoch": epoch, **row} for row in layer_rows)

        if not (math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])):
            raise TrialFailed(
                "nan_loss",
                f'the loss became non-finite in epoch {epoch}: lower lr, set clip_norm, or use amp = "off"',
                history.findings(config, "nan_loss"),
            )
        _update_best(best, metrics, epoch)
        if scheduler is not None and not per_batch:
            scheduler.step(metrics["val_loss"])  # plateau: reduce on a stalled validation loss
        if config.early_stopping_patience is not None:
            if metrics["val_loss"] < best_val_loss - config.min_delta:
                best_val_loss, patience_left = metrics["val_loss"], config.early_stopping_patience
            else:
                patience_left -= 1
                stopped_early = patience_left <= 0

        if on_epoch(EpochReport(epoch, metrics, steps, layer_rows)) or stopped_early:
            break
        if checkpoint is not None:  # after the epoch was sent: a resume never skips an epoch's report
            checkpoint.save(epoch, parts, generator, {"step": step, "best": best, "best_val_loss": best_val_loss,
                            "patience": patience_left, "epochs": history.epochs, "steps": history.steps,
                            "layers": history.layers})  # fmt: skip

    test = _test(data, feed, model, criterion, amp_dtype, channels_last, device)
    return TrainResult(
        metrics=metrics,
        epochs_run=epoch,
        best=best,
        stopped_early=stopped_early,
        findings=history.findings(config, None),
        test=test,
        model=model,
    )


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if amp == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _failing_at_step(forward: Callable[[Tensor], Tensor], model: nn.Module, at_step: int):
    """`forward` that raises an out-of-memory error at the `at_step`-th training step (tests)."""
    steps = 0

    def forward_or_fail(x: Tensor) -> Tensor:
        nonlocal steps
        if model.training:
            steps += 1
            if steps == at_step:
                raise torch.cuda.OutOfMemoryError(f"injected by {FAIL_ALLOC_ENV}={at_step}")
        return forward(x)

    return forward_or_fail


def _rows(x: Tensor, y: Tensor, order: Tensor, batch_size: int, steps: int) -> Iterator[tuple[Tensor, Tensor]]:
    """An epoch's training batches of device tensors, in the order of `order`."""
    for i in range(steps):
        index = order[i * batch_size : (i + 1) * batch_size]
        yield x.index_select(0, index), y.index_select(0, index)


def _chunks(x: Tensor, y: Tensor, chunk: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(y), chunk):
        yield x[start : start + chunk], y[start : start + chunk]


def _test(
    data: AnyTaskData,
    feed: LoaderFeed | None,
    model: nn.Module,
    criterion: Criterion,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    device: torch.device,
) -> dict[str, float]:
    """The test split's metrics, once, on the final model; reported beside the study's metric, never used
    to choose trials. Eagerly: once per trial, not worth a compile for the test split's shapes."""
    if feed is not None and isinstance(data, LoaderTaskData):
        if data.test_set is None or not len(data.test_set):
            return {}
        rows = len(data.test_set)
        moments = target_moments(criterion.outputs, device) if criterion.regression else None
        loss_sum, test_fit = _evaluate(model, model, feed.test_batches(data.test_set, moments), 0, criterion,
                                       amp_dtype, channels_last, device)  # fmt: skip
        variance = variance_of(moments) if moments is not None else torch.zeros((), device=device)
    elif not isinstance(data, LoaderTaskData) and data.x_test is not None and data.y_test is not None and len(data.y_test):
        y_test = criterion.targets(data.y_test.to(device))
        rows, chunk = len(y_test), min(EVAL_BATCH, len(y_test))
        loss_sum, test_fit = _evaluate(model, model, _chunks(data.x_test.to(device), y_test, chunk), chunk, criterion,
                                       amp_dtype, channels_last, device)  # fmt: skip
        variance = target_variance(y_test)
    else:
        return {}
    (loss_sum_h, variance_h), fit_h = to_host(torch.stack([loss_sum, variance]), test_fit.reshape(-1))
    test = {"test_loss": loss_sum_h / rows, **criterion.metrics("test", fit_h, rows, variance_h)}
    return {name: value for name, value in test.items() if value is not None}


def _evaluate(
    forward: Callable[[Tensor], Tensor],
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    full: int,
    criterion: Criterion,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """Summed loss over `batches` (no label smoothing) and the criterion's sums (correct count, or error
    sums), on the device. Batches of `full` rows run through `forward`, others through the eager model."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    fit = criterion.zero_stats(device)
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None),
    ):
        for xb, yb in batches:
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            # a ragged last chunk runs eagerly: a compiled forward would recompile for its shape
            logits = (forward if len(yb) == full else model)(xb)
            loss_sum += criterion.summed_loss(logits, yb)
            fit += criterion.stats(logits, yb)
    return loss_sum, fit


def _update_best(best: dict[str, float], metrics: dict[str, Any], epoch: int) -> None:
    for name, value in metrics.items():
        if not name.startswith(("train_", "val_")) or value is None:
            continue
        better = max if name.endswith(("_acc", "_r2")) else min  # losses, rmse and mae fall
        if name not in best or better(value, best[name]) != best[name]:
            best[name] = value
            best[f"{name}_epoch"] = epoch
