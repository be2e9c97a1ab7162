"""Telemetry of a user's own training loop, taken through hooks: the learning rate, the gradient norm before
clipping, per-layer gradient norms and histograms, the same rows the engine's loop records.

The optimizer's step hooks count steps; on a sampled step (every `step_every`-th, and the step that gives
the epoch's layer statistics) hooks on the parameters fire once every gradient has been accumulated, which
is before the loop clips them. Between samples no hook is registered on the parameters, so an unsampled
step costs two Python calls (the optimizer's pre- and post-step hooks). Everything stays on the device
until `collect`, once per epoch, copies it in one transfer (engine/trainer/telemetry.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from engine.config import TrainConfig
from engine.trainer.models import layer_names
from engine.trainer.telemetry import (
    finite_or_none,
    histogram_picks,
    layer_rows_from,
    measure_layers,
    step_row,
    to_host,
)


class Watcher:
    """Hooks on one model and its optimizer; `collect(epoch)` returns that epoch's telemetry and starts the next.

    Layer statistics come from the epoch's last step, as in the engine's loop: in the first epoch every
    sampled step measures them (its length is not known yet) and the last one is kept; later epochs measure
    only the step at the previous epoch's length. Limits: the step loss is not seen (the loop reports its
    own losses per epoch); with a GradScaler the norms are of the scaled gradients; a parameter that got no
    gradient in a sampled step makes that step's measurement wait for the optimizer step (after clipping)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig):
        self.config = config
        self.optimizer = optimizer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.layers = layer_names(model)
        self.picks = histogram_picks(self.layers, config.seed)
        device = self.params[0].device if self.params else torch.device("cpu")
        self.nan = torch.tensor(math.nan, device=device)
        self.one = torch.tensor(1.0, device=device)
        self.step = 0  # optimizer steps taken
        self.epoch_steps = 0  # of them in this epoch
        self.last_epoch_steps: int | None = None
        self._reset_epoch(device)
        self._grad_hooks: list = []
        self._remaining = 0  # parameters whose gradient this sampled step still waits for
        self._want_norm = self._want_layers = False
        self._norm: Tensor | None = None
        self._measured = False
        self._step_hooks = []
        if config.telemetry:
            self._step_hooks = [
                optimizer.register_step_pre_hook(self._before_step),
                optimizer.register_step_post_hook(self._after_step),
            ]
            self._arm()

    def _reset_epoch(self, device: torch.device) -> None:
        self.samples: list[tuple[int, float, Tensor]] = []  # (step, lr, [loss, grad norm, scale]) on the device
        self.norm_sum = torch.zeros((), device=device)
        self.norm_count = 0
        self.layer_stats: Tensor | None = None

    # ---------------------------------------------------------------- hooks
    def _arm(self) -> None:
        """Decide what the coming step records; hook the parameters only when it records something."""
        step = self.step + 1
        self._want_norm = (step - 1) % self.config.step_every == 0
        if self.last_epoch_steps is None:
            self._want_layers = self._want_norm
        else:
            self._want_layers = self.epoch_steps == max(self.last_epoch_steps - 1, 0)
        self._norm, self._measured = None, False
        if self._want_norm or self._want_layers:
            self._remaining = len(self.params)
            self._grad_hooks = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]

    def _disarm(self) -> None:
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks = []

    def _on_grad(self, _param: Tensor) -> None:
        self._remaining -= 1
        if self._remaining == 0 and not self._measured:
            self._measure()  # every gradient is in, and the loop has not clipped them yet

    def _measure(self) -> None:
        self._measured = True
        if self._want_layers:
            self.layer_stats = measure_layers(self.layers, self.picks, self.config)
        self._norm = nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])

    def _before_step(self, optimizer, args, kwargs) -> None:
        self._disarm()  # here, not in the gradient hook: a hook must not remove itself while it runs
        if (self._want_norm or self._want_layers) and not self._measured:
            self._measure()
        if self._norm is None:
            return
        self.norm_sum += self._norm
        self.norm_count += 1
        if self._want_norm:
            lr = float(optimizer.param_groups[0]["lr"])
            self.samples.append((self.step + 1, lr, torch.stack([self.nan, self._norm.float(), self.one])))

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.step += 1
        self.epoch_steps += 1
        self._arm()

    # ---------------------------------------------------------------- per epoch
    def collect(self, epoch: int) -> tuple[dict[str, float | None], list[dict], list[dict]]:
        """This epoch's (epoch metrics: lr and grad_norm, tt_step rows, tt_layer rows), in one host copy."""
        metrics: dict[str, float | None] = {"lr": float(self.optimizer.param_groups[0]["lr"])}
        steps: list[dict] = []
        layer_rows: list[dict] = []
        if self.config.telemetry:
            sample_values = torch.stack([v for _, _, v in self.samples]) if self.samples else None
            norm_h, samples_h, layers_h = to_host(self.norm_sum.reshape(1), sample_values, self.layer_stats)
            for (number, lr, _), values in zip(self.samples, samples_h or [], strict=True):
                row = step_row(number, epoch, lr, values, None, False)
                row["loss"] = None  # the hooks never see the loop's loss
                steps.append(row)
            if layers_h is not None:
                layer_rows = layer_rows_from(self.layers, layers_h, self.config)
            metrics["grad_norm"] = finite_or_none(norm_h[0] / self.norm_count) if self.norm_count else None
            self._disarm()
            self.last_epoch_steps, self.epoch_steps = self.epoch_steps, 0
            self._reset_epoch(self.norm_sum.device)
            self._arm()  # the coming step is the next epoch's first
        return metrics, steps, layer_rows

    def close(self) -> None:
        self._disarm()
        for handle in self._step_hooks:
            handle.remove()
        self._step_hooks = []
