"""The optimizer and the learning-rate schedule a TrainConfig names, built once per trial."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.config import TrainConfig


def build_optimizer(
    config: TrainConfig, params: list[nn.Parameter], weights: list[nn.Parameter], device: torch.device
) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW; weight decay is decoupled in AdamW and added to the gradient in SGD and Adam."""
    decayed = {id(w) for w in weights}
    groups = [
        {"params": weights, "weight_decay": config.weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]
    if config.weight_decay == 0:
        groups = [{"params": params, "weight_decay": 0.0}]  # one group: one fused kernel launch per step
    groups = [g for g in groups if g["params"]]
    # fused kernels: one launch for all parameters instead of one per tensor
    fused = {"fused": True} if device.type in ("cuda", "cpu") else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            **fused,
        )
    betas = (config.beta1, config.beta2)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas, **fused)
    return torch.optim.AdamW(groups, lr=config.lr, betas=betas, **fused)


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> tuple[Any, bool]:
    """The learning-rate schedule and whether it steps per batch (True) or per epoch on val_loss (False)."""
    total = config.epochs * steps_per_epoch
    if config.scheduler == "cyclic":
        base_lr = config.base_lr or config.lr / 10
        max_lr = config.max_lr or config.lr
        up = config.step_size_up or 2 * steps_per_epoch
        # cycle_momentum off: momentum and beta1 stay what the config says
        return torch.optim.lr_scheduler.CyclicLR(
            optimizer, base_lr=base_lr, max_lr=max_lr, step_size_up=up, mode=config.cyclic_mode,
            gamma=config.cyclic_gamma, cycle_momentum=False,
        ), True  # fmt: skip
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.max_lr or config.lr, total_steps=max(total, 2), pct_start=config.pct_start,
            cycle_momentum=False,
        ), True  # fmt: skip
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience
        ), False
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch)), True


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """none/step/multistep/cosine as a factor of lr per optimizer step, after a linear warmup."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    milestones = sorted(config.milestones)
    kind = config.scheduler

    def factor(step: int) -> float:  # step: optimizer steps taken so far
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        epoch = step // steps_per_epoch
        if kind == "step":
            return warm * config.gamma ** (epoch // config.step_size)
        if kind == "multistep":
            return warm * config.gamma ** bisect.bisect_right(milestones, epoch)
        if kind == "cosine":
            progress = min(1.0, max(0.0, (step - warmup) / max(1, total - warmup)))
            return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm

    return factor
