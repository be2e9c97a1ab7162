"""Own training loops for the tests (`[task] loop = "helpers_loops:<function>"`): a good one that watches its
model, and one per way a loop can go wrong. Each takes a few milliseconds an epoch."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch import nn


def _regression(ctx, watch: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(96, generator=g)
    x_train, y_train, x_val, y_val = x[:64], y[:64], x[64:], y[64:]
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=float(ctx.params["lr"]))
    if watch:
        ctx.watch(model, optimizer)
    for epoch in range(1, ctx.epochs + 1):
        for start in range(0, 64, 16):
            loss = nn.functional.mse_loss(model(x_train[start : start + 16]).squeeze(1), y_train[start : start + 16])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1e-3)  # tiny: the watched norm must be the unclipped one
            optimizer.step()
        with torch.no_grad():
            val_mse = nn.functional.mse_loss(model(x_val).squeeze(1), y_val)
        if ctx.report(epoch, {"val_rmse": val_mse.sqrt(), "train_loss": loss.detach()}):
            return


def watched(ctx) -> None:
    """Reports val_rmse every epoch and watches its model and optimizer."""
    _regression(ctx, watch=True)


def unwatched(ctx) -> None:
    _regression(ctx, watch=False)


def raises(ctx) -> None:
    raise ValueError(f"this loop cannot train with lr={ctx.params['lr']:.3g}")


def never_reports(ctx) -> None:
    """Trains nothing and returns."""


def reports_nan(ctx) -> None:
    ctx.report(1, {"val_rmse": math.nan})


def reports_other_metrics(ctx) -> None:
    ctx.report(1, {"val_mse": 1.0, "val_r2": 0.5})


def swallows_its_failure(ctx) -> None:
    """Catches what report raised and goes on: the trial still fails."""
    try:
        ctx.report(1, {"val_mse": 1.0})
    except Exception:  # noqa: BLE001 - the point of this loop
        pass


def runs_out_of_memory(ctx) -> None:
    raise torch.OutOfMemoryError("injected by helpers_loops.runs_out_of_memory")


WRONG_WAYS = ("raises", "never_reports", "reports_nan", "reports_other_metrics", "swallows_its_failure",
              "runs_out_of_memory")  # fmt: skip


def each_way_wrong(ctx) -> None:
    """Goes wrong the way of WRONG_WAYS[seed % 6] (a trial's seed is the study's, 0, plus its number): one run
    shows every bad loop, trial after trial."""
    globals()[WRONG_WAYS[ctx.seed % len(WRONG_WAYS)]](ctx)


def hangs(ctx) -> None:
    """Reports once, then never again: only the trial time limit ends it."""
    ctx.report(1, {"val_rmse": 1.0})
    while True:
        time.sleep(0.1)


def reports_until_told(ctx) -> None:
    """Reports an epoch every 0.1 s until report says stop; then notes its pid and epoch, and returns."""
    epoch = 0
    while not ctx.report(epoch := epoch + 1, {"val_rmse": 1.0}):
        time.sleep(0.1)
    with Path("told-to-stop").open("a") as marks:  # one line per trial: two trials may stop at one epoch
        marks.write(f"{os.getpid()} {epoch}\n")


def past_its_limit(ctx) -> None:
    """Trial 0 (seed 0: the study's seed is 0) hangs; the others report until told to stop."""
    (hangs if ctx.seed == 0 else reports_until_told)(ctx)


def seed_as_metric(ctx) -> None:
    """Reports its seed as val_rmse every epoch (trial 1 is worse than trial 0) until told to stop."""
    for epoch in range(1, ctx.epochs + 1):
        time.sleep(0.05)  # the coordinator's stop arrives while the next epoch runs
        if ctx.report(epoch, {"val_rmse": float(ctx.seed)}):
            return
