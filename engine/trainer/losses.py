"""The loss the engine's loop trains with (`[train] loss`) and the metrics it reports, kept on the device.

Classification: `cross_entropy` (one logit per class) and `bce_logits` (one logit, two classes) report
accuracy. Regression (`mse`, `huber`: float targets, a task with `num_classes = 0`) reports RMSE, MAE and
R2. Each batch adds to a few sums on the device (no host sync in the hot loop); an epoch turns the sums,
copied to the host with everything else, into metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.config import CLASSIFICATION_LOSSES, REGRESSION_LOSSES, TrainConfig
from engine.trainer.tasks import AnyTaskData, LoaderTaskData, TaskError


@dataclass(frozen=True)
class Criterion:
    """One loss and its metrics. Targets are prepared once per trial (`targets`), then every call sees
    the model's output and those targets."""

    name: str
    outputs: int  # the model's output width
    smoothing: float = 0.0  # label smoothing, classification only
    delta: float = 1.0  # huber's threshold

    @property
    def regression(self) -> bool:
        return self.name in REGRESSION_LOSSES

    def targets(self, y: Tensor) -> Tensor:
        """`y` as the loss wants it: class indices (cross_entropy), 0./1. floats (bce_logits) or a
        (rows, outputs) float matrix (regression)."""
        if self.name == "bce_logits":
            return y.float().reshape(-1, 1)
        if self.regression:
            return y.float().reshape(len(y), -1)
        return y

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The mean training loss of a batch (label smoothing included)."""
        if self.name == "cross_entropy":
            return F.cross_entropy(output, target, label_smoothing=self.smoothing)
        if self.name == "bce_logits":
            if self.smoothing:
                target = target * (1 - self.smoothing) + 0.5 * self.smoothing
            return F.binary_cross_entropy_with_logits(output, target)
        if self.name == "mse":
            return F.mse_loss(output, target)
        return F.huber_loss(output, target, delta=self.delta)

    def summed_loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The summed loss of an evaluation chunk, in fp32 and without label smoothing (per row: a
        regression's loss is averaged over its outputs, as in training)."""
        output = output.float()
        if self.name == "cross_entropy":
            return F.cross_entropy(output, target, reduction="sum")
        if self.name == "bce_logits":
            return F.binary_cross_entropy_with_logits(output, target, reduction="sum")
        if self.name == "mse":
            return F.mse_loss(output, target, reduction="sum") / self.outputs
        return F.huber_loss(output, target, delta=self.delta, reduction="sum") / self.outputs

    def zero_stats(self, device: torch.device) -> Tensor:
        """The running sums `stats` adds to: correct predictions, or squared and absolute errors."""
        if self.regression:
            return torch.zeros(2, device=device)
        return torch.zeros((), device=device, dtype=torch.int64)

    def stats(self, output: Tensor, target: Tensor) -> Tensor:
        """A batch's contribution to the running sums (on the device, no host sync)."""
        if self.name == "cross_entropy":
            return (output.argmax(1) == target).sum()
        if self.name == "bce_logits":
            return ((output > 0) == (target > 0.5)).sum()
        error = output.detach().float() - target
        return torch.stack([error.square().sum(), error.abs().sum()])

    def metrics(self, prefix: str, stats: list[float], rows: int, target_variance: float) -> dict[str, float | None]:
        """The split's metrics from its sums over `rows` rows: `<prefix>_acc`, or `<prefix>_rmse`, `_mae`
        and `_r2` (1 - MSE / the targets' variance, summed over outputs: sklearn's variance_weighted)."""
        if not self.regression:
            return {f"{prefix}_acc": stats[0] / rows}
        squared, absolute = stats
        cells = rows * self.outputs
        mse_per_row = squared / rows
        return {
            f"{prefix}_rmse": math.sqrt(squared / cells),
            f"{prefix}_mae": absolute / cells,
            f"{prefix}_r2": 1 - mse_per_row / target_variance if target_variance > 0 else None,
        }


def criterion_for(config: TrainConfig, data: AnyTaskData) -> Criterion:
    """The criterion `config.loss` names, checked against what the task's targets are (TaskError)."""
    loss = config.loss
    regression_task = data.num_classes == 0
    if loss in REGRESSION_LOSSES and not regression_task:
        raise TaskError(f"loss {loss!r} needs a regression task (float targets, num_classes = 0); "
                        f"the task has {data.num_classes} classes: use loss = \"cross_entropy\"")  # fmt: skip
    if loss in CLASSIFICATION_LOSSES and regression_task:
        raise TaskError(f"loss {loss!r} needs class labels; the task is a regression (float targets): "
                        'use loss = "mse" or "huber"')  # fmt: skip
    if loss == "bce_logits" and data.num_classes != 2:
        raise TaskError(f"loss 'bce_logits' needs two classes; the task has {data.num_classes}: "
                        'use loss = "cross_entropy"')  # fmt: skip
    if regression_task:
        if isinstance(data, LoaderTaskData):  # one item's target: a number, or one value per output
            outputs = torch.as_tensor(data.train_set[0][1]).numel()
        else:
            outputs = 1 if data.y_train.dim() == 1 else int(data.y_train.shape[1])
    else:
        outputs = 1 if loss == "bce_logits" else data.num_classes
    return Criterion(loss, outputs, smoothing=config.label_smoothing, delta=config.huber_delta)


def target_variance(target: Tensor) -> Tensor:
    """The targets' population variance summed over outputs (R2's denominator), on the device."""
    if target.dtype == torch.int64 or len(target) == 0:
        return torch.zeros((), device=target.device)
    return target.float().var(dim=0, unbiased=False).sum()
