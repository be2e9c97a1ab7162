"""A user's own training loop (`[task] loop = "module:function"`): the context it is called with, and how a
worker runs it as the body of a trial.

The loop is `function(ctx: TrialContext) -> None`. It trains for `ctx.epochs` epochs and calls
`ctx.report(epoch, metrics)` once per epoch with the study's metric among the metrics; `report` returns
True when the trial must stop (pruned by the study, killed by the user, or past `trial_timeout_s`), and
the loop should then return. `ctx.watch(model, optimizer)` records the engine's telemetry
(engine/trainer/watch.py). A loop that does not return within a few seconds of that answer (or never
reports again) is ended by the coordinator killing its worker, as for the engine's loop.

A loop that raises, never reports, reports a non-finite metric or reports without the study's metric fails
its trial with a reason and a hint; the worker lives on for the next trial.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.config import TrainConfig
from engine.diagnose import diagnose
from engine.spec import TaskSpec
from engine.trainer.tasks import resolve_user_function
from engine.trainer.train import TrialFailed
from engine.trainer.watch import Watcher

EpochSender = Callable[[int, dict[str, Any], list[dict], list[dict]], None]  # epoch, metrics, steps, layers


class TrialContext:
    """What a loop gets: `params` (sampled values, [train] and [task.params]), `device`, `epochs` (the budget),
    `seed` (the trial's), `report(epoch, metrics) -> bool`, `watch(model, optimizer)` and `save_weights(model)`."""

    def __init__(self, params: dict[str, Any], device: torch.device, config: TrainConfig, metrics: list[str],
                 send: EpochSender, stop_requested: Callable[[], bool]):  # fmt: skip
        self.params = params
        self.device = device
        self.epochs = config.epochs
        self.seed = config.seed
        self._config = config
        self._metrics = metrics  # the study's: one, or one per objective
        self._send = send
        self._stop_requested = stop_requested
        self._watcher: Watcher | None = None
        self.model: nn.Module | None = None  # whose weights the trial keeps: save_weights', else watch's
        self._model_chosen = False
        self._started = time.perf_counter()
        self.history: list[dict] = []  # epoch rows sent, for the diagnosis
        self.steps: list[dict] = []
        self.layers: list[dict] = []
        self.failure: TrialFailed | None = None  # kept: a loop that catches it still fails its trial

    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Record the learning rate, gradient norms before clipping, per-layer norms and histograms of
        this model and optimizer from now on (a second call watches the new pair instead)."""
        if self._watcher is not None:
            self._watcher.close()
        self._watcher = Watcher(model, optimizer, self._config)
        if not self._model_chosen:
            self.model = model

    def save_weights(self, model: nn.Module) -> None:
        """Keep this model's weights as the trial's (saved when the loop returns, as `[train] save_weights`
        says); without a call, the model given to `watch` is kept."""
        self.model, self._model_chosen = model, True

    def report(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Send this epoch's metrics (numbers: floats, ints, 0-d tensors); True: stop training now."""
        if self.failure is not None:
            raise self.failure
        values = self._numbers(epoch, metrics)
        for metric in self._metrics:
            value = values.get(metric)
            if value is None:
                named = ", ".join(sorted(values)) or "nothing"
                self._fail("no_metric", f"report(epoch {epoch}) has no {metric!r}, the study's metric; "
                           f"the loop reported {named}")  # fmt: skip
            if not math.isfinite(value):
                # the engine's loop fails a non-finite loss the same way (a region of bad lrs, not a broken task)
                self._fail("nan_loss", f"the loop reported {metric} = {value} in epoch {epoch}: lower lr, "
                           "clip the gradients, or train in fp32")  # fmt: skip
        now = time.perf_counter()
        row: dict[str, Any] = {"epoch_time_s": now - self._started}
        if self.device.type == "cuda":
            row["mem_peak_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
        steps: list[dict] = []
        layers: list[dict] = []
        if self._watcher is not None:
            watched, steps, layers = self._watcher.collect(epoch)
            row.update(watched)
        row.update(values)  # the loop's own numbers win over the hooks' (its lr, its grad_norm)
        self.history.append({"epoch": epoch, **row})
        self.steps.extend(steps)
        self.layers.extend({"epoch": epoch, **layer} for layer in layers)
        self._send(epoch, row, steps, layers)
        self._started = time.perf_counter()
        return self._stop_requested()

    def _numbers(self, epoch: Any, metrics: Any) -> dict[str, float]:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            self._fail("bad_report", f"report's epoch must be a whole number from 1 (got {epoch!r})")
        if not isinstance(metrics, dict):
            self._fail("bad_report", f"report(epoch {epoch}) needs a dict of metrics, not {type(metrics).__name__}")
        values = {}
        for name, number in metrics.items():
            try:
                values[str(name)] = float(number)
            except (TypeError, ValueError, RuntimeError):
                self._fail("bad_report", f"report(epoch {epoch}): {str(name)!r} is a {type(number).__name__}, "
                           "not a number")  # fmt: skip
        return values

    def _fail(self, reason: str, hint: str) -> None:
        self.failure = TrialFailed(reason, hint)
        raise self.failure

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()

    def findings(self, failure: str | None) -> list[dict]:
        return diagnose(self.history, self.steps, self.layers, self._config, failure)


@dataclass
class LoopResult:
    metrics: dict[str, float | None]  # the last report's
    findings: list[dict] = field(default_factory=list)
    model: nn.Module | None = None  # ctx.save_weights' model, else watch's (None: no weights)


def run_loop(task: TaskSpec, config: TrainConfig, task_params: dict[str, Any], device: torch.device,
             send: EpochSender, stop_requested: Callable[[], bool]) -> LoopResult:  # fmt: skip
    """Run the spec's loop as one trial. Raises TrialFailed (with findings) when the loop failed it."""
    spec_dir = task_params.get("__spec_dir__")
    function = resolve_user_function(task.loop, Path(spec_dir) if spec_dir else None, "loop")
    params = {k: v for k, v in task_params.items() if not k.startswith("__")}
    metrics = [str(m) for m in task_params.get("__metrics__", ["val_acc"])]
    ctx = TrialContext(params, device, config, metrics, send, stop_requested)
    out_of_memory = False
    try:
        torch.manual_seed(config.seed)
        function(ctx)
    except torch.OutOfMemoryError:
        out_of_memory = True  # handled below, outside the except block, so the traceback's tensors are freed
    except Exception:
        if ctx.failure is None:
            raise  # the loop's own error: the worker fails the trial with its type and message
    finally:
        ctx.close()
    if out_of_memory:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        ctx.failure = TrialFailed("oom", "try a smaller batch size")
    if ctx.failure is not None:
        ctx.failure.findings = ctx.findings(ctx.failure.reason)
        raise ctx.failure
    if not ctx.history:
        raise TrialFailed("no_report", "the loop never called report")
    last = {k: v for k, v in ctx.history[-1].items() if k != "epoch"}
    return LoopResult(metrics=last, findings=ctx.findings(None), model=ctx.model)
