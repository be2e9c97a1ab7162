"""What `ctx.watch` costs a spec's own training loop: the same loop with and without it, side by side in one
run (interleaved rounds, medians). Prints a Markdown table; `--out FILE` appends it there.

    nice -n 10 .venv/bin/python benchmarks/bench_loop.py [--device cpu|cuda] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "studies"))

from engine.spec import parse_spec  # noqa: E402
from engine.trainer.context import run_loop  # noqa: E402

SPEC = """
[study]
name = "bench"
metric = "val_rmse"
direction = "minimize"
[task]
loop = "{loop}"
[train]
epochs = {epochs}
"""


def synthetic(ctx) -> None:
    """An MLP regression on 8000 x 64 synthetic rows, batch 64 (125 steps an epoch), AdamW, clipping."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, 64, generator=g)
    y = torch.sin(x[:, :8].sum(1)) + 0.1 * torch.randn(10_000, generator=g)
    x, y = x.to(ctx.device), y.to(ctx.device)
    width = int(ctx.params["width"])
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    model = model.to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ctx.params["lr"], weight_decay=ctx.params["weight_decay"])
    if ctx.params["watch"]:
        ctx.watch(model, optimizer)
    for epoch in range(1, ctx.epochs + 1):
        order = torch.randperm(8000, device=ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        for rows in order.split(64):
            loss = nn.functional.mse_loss(model(x[rows]).squeeze(1), y[rows])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            loss_sum += loss.detach() * len(rows)
        with torch.no_grad():
            mse = nn.functional.mse_loss(model(x[8000:]).squeeze(1), y[8000:])
        ctx.report(epoch, {"train_loss": loss_sum / 8000, "val_rmse": mse.sqrt()})


def diabetes_unwatched(ctx) -> None:
    """studies/diabetes_loop.py with `ctx.watch` made a no-op."""
    import diabetes_loop

    ctx.watch = lambda model, optimizer: None
    diabetes_loop.train(ctx)


LOOPS = {
    # case: (label, loop with watch, loop without)
    "diabetes": ("diabetes (442 x 10, studies/diabetes_loop.py), MLP 1x64, batch 32, 12 steps an epoch",
                 "diabetes_loop:train", "bench_loop:diabetes_unwatched"),
    "synthetic": ("synthetic regression (8000 x 64), MLP 2x256, batch 64, 125 steps an epoch, clipping",
                  "bench_loop:synthetic", "bench_loop:synthetic"),
}  # fmt: skip


def seconds_per_epoch(loop: str, watch: bool, epochs: int, device: torch.device) -> tuple[float, float]:
    """Median (wall, process CPU) seconds between two reports, from epoch 2 on (the first holds the loop's
    data loading and warm-up); it includes the report itself, with `watch`'s one copy to the host per epoch.
    CPU time leaves out the time other jobs on a shared machine take the cores away."""
    spec = parse_spec(SPEC.format(loop=loop, epochs=epochs))
    params = {"lr": 3e-3, "width": 64 if loop.startswith("diabetes") else 256, "weight_decay": 1e-3, "watch": watch}
    reported: list[tuple[float, float]] = []
    run_loop(spec.task, spec.train_config({"lr": 3e-3}, seed=1), spec.task_params(params), device,
             lambda *message: reported.append((time.perf_counter(), time.process_time())), lambda: False)  # fmt: skip
    pairs = list(zip(reported, reported[1:], strict=False))
    return (statistics.median(b[0] - a[0] for a, b in pairs), statistics.median(b[1] - a[1] for a, b in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sys.modules.setdefault("bench_loop", sys.modules[__name__])  # the spec names this module's loops
    lines = ["| case | watch | epoch ms (wall) | epoch ms (CPU) | on/off (wall) | on/off (CPU) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for label, watched, unwatched in LOOPS.values():
        times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        seconds_per_epoch(watched, True, 2, device)  # warm-up: imports, allocator, data
        for round_ in range(args.repeats):
            # interleaved, the order swapped every round: drift hits both alike, and neither always runs first
            # (whichever ran first measured ~15% slower on a quiet machine, which once read as watch's cost)
            for watch in (True, False) if round_ % 2 == 0 else (False, True):
                times[watch].append(seconds_per_epoch(watched if watch else unwatched, watch, args.epochs, device))
        (on_wall, on_cpu), (off_wall, off_cpu) = (
            tuple(statistics.median(t[k] for t in times[w]) for k in (0, 1)) for w in (True, False)
        )
        lines.append(f"| {label} | off | {off_wall * 1e3:.2f} | {off_cpu * 1e3:.2f} | | |")
        lines.append(f"| {label} | on | {on_wall * 1e3:.2f} | {on_cpu * 1e3:.2f} | {on_wall / off_wall:.3f}x "
                     f"| {on_cpu / off_cpu:.3f}x |")  # fmt: skip
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as out:
            out.write("\n" + report + "\n")


if __name__ == "__main__":
    main()
