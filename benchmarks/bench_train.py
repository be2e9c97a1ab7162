"""Training-loop speed, measured side by side in one run: the engine vs a DataLoader loop, telemetry
on vs off, bf16 vs fp32 (CUDA). Prints a Markdown report; `--out FILE` also writes it there.

    .venv/bin/python benchmarks/bench_train.py [--device cpu|cuda] [--repeats 5] [--out docs/benchmarks_train.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.models import build_model
from engine.trainer.tasks import TaskData, load_task
from engine.trainer.train import train


def engine_epoch_seconds(config: TrainConfig, data: TaskData, device: torch.device) -> list[float]:
    """Per-epoch wall time of engine.trainer.train (first epoch dropped: warm-up)."""
    times: list[float] = []
    train(config, data, device, lambda report: times.append(report.metrics["epoch_time_s"]) is not None)
    return times[1:]


def dataloader_epoch_seconds(config: TrainConfig, data: TaskData, device: torch.device) -> list[float]:
    """The seed-style loop: a DataLoader over CPU tensors, a host-to-device copy and `.item()` per batch."""
    torch.manual_seed(config.seed)
    model = build_model(config, data.input_shape, data.num_classes).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_set = TensorDataset(data.x_train.cpu(), data.y_train.cpu())
    val_set = TensorDataset(data.x_val.cpu(), data.y_val.cpu())
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=config.batch_size)
    times = []
    for _ in range(config.epochs):
        started = time.perf_counter()
        model.train()
        total_loss, correct, seen = 0.0, 0, 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad()
            loss.backward()
            if config.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            total_loss += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            seen += len(yb)
        model.eval()
        with torch.no_grad():
            for xb, yb in val_loader:
                xb, yb = xb.to(device), yb.to(device)
                logits = model(xb)
                total_loss += F.cross_entropy(logits, yb).item()
                correct += (logits.argmax(1) == yb).sum().item()
        times.append(time.perf_counter() - started)
    return times[1:]


def interleaved(runs: dict[str, Callable[[], list[float]]], repeats: int) -> dict[str, float]:
    """Median epoch time of each contender, runs interleaved so drift in the machine hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].extend(run())
    return {name: statistics.median(values) for name, values in samples.items()}


def synthetic_task(n: int, features: int, device: torch.device) -> TaskData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, features, generator=g)
    w = torch.randn(features, 10, generator=g)
    y = (x @ w).argmax(1)
    n_val = n // 5
    return TaskData(
        x[n_val:].to(device),
        y[n_val:].to(device),
        x[:n_val].to(device),
        y[:n_val].to(device),
        10,
        (features,),
    )


def l2_step_seconds(data: TaskData, l2_as_loss_term: bool, steps: int = 200) -> list[float]:
    """Per-step time of an AdamW step with an L2 penalty: as a loss term (the old loop: two kernels per
    weight forward and backward) or as one fused add of 2 * l2 * w to the gradients (the engine's)."""
    torch.manual_seed(0)
    config = TrainConfig(batch_size=64)
    model = build_model(config, data.input_shape, data.num_classes)
    weights = [p for p in model.parameters() if p.dim() > 1]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    xb, yb = data.x_train[:64].cpu(), data.y_train[:64].cpu()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = F.cross_entropy(model(xb), yb)
        if l2_as_loss_term:
            loss = loss + 1e-4 * torch.stack([w.square().sum() for w in weights]).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not l2_as_loss_term:
            with torch.no_grad():
                torch._foreach_add_([w.grad for w in weights], weights, alpha=2e-4)
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times[10:]


def histogram_seconds(device_range: bool, layers: int = 3, repeats: int = 200) -> list[float]:
    """One epoch's histogram work (a 4096-value sample per layer): histc with min=max=0 (the old loop,
    which reads the range back to the host) or the engine's device-range histogram."""
    from engine.trainer.telemetry import histogram

    values = [torch.randn(4096, device=torch.device("cpu")) for _ in range(layers)]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for v in values:
            lo, hi = torch.aminmax(v)  # both keep the range for the edges
            if device_range:
                histogram(v, lo, hi, 32)
            else:
                torch.histc(v, bins=32, min=0, max=0)
        times.append(time.perf_counter() - started)
    return times


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch threads {torch.get_num_threads()}{gpu}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--small", action="store_true", help="the digits case only (the GPU check's dry path)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    cases = [
        (
            "digits (1438 x 64), MLP 2x128, batch 64",
            load_task(TaskSpec(name="digits"), {}, device),
            dict(batch_size=64),
        ),
    ]
    if not args.small:
        cases.append(
            (
                "synthetic MNIST-shaped (48000 x 784), MLP 2x256, batch 128",
                synthetic_task(60_000, 784, device),
                dict(batch_size=128, layers=2, width=256),
            )
        )
    lines = [
        "# Training-loop benchmarks",
        "",
        f"Machine: {machine()}. Device: `{device}`. Median epoch time over {args.repeats} interleaved repeats "
        f"of {args.epochs} epochs (first epoch of each run dropped). AdamW, clip_norm 5, amp off unless named.",
        "",
        "| case | contender | epoch ms | ratio |",
        "| --- | --- | ---: | ---: |",
    ]
    for title, data, extra in cases:
        base = dict(epochs=args.epochs, lr=1e-3, clip_norm=5.0, amp="off", **extra)
        on = TrainConfig(**base)
        off = TrainConfig(**base, telemetry=False)
        runs = {
            "DataLoader loop, .item() per step": lambda d=data, c=on: dataloader_epoch_seconds(c, d, device),
            "engine, telemetry on": lambda d=data, c=on: engine_epoch_seconds(c, d, device),
            "engine, telemetry off": lambda d=data, c=off: engine_epoch_seconds(c, d, device),
        }
        if device.type == "cuda":
            runs["engine, bf16 autocast"] = lambda d=data, c=on: engine_epoch_seconds(
                c.model_copy(update={"amp": "bf16"}), d, device
            )
        medians = interleaved(runs, args.repeats)
        loader = medians["DataLoader loop, .item() per step"]
        tel_on, tel_off = medians["engine, telemetry on"], medians["engine, telemetry off"]
        rows = [
            ("DataLoader loop, .item() per step", loader, "1.00x"),
            ("engine, telemetry on", tel_on, f"{loader / tel_on:.2f}x faster than DataLoader"),
            ("engine, telemetry off", tel_off, f"telemetry on/off = {tel_on / tel_off:.3f}x"),
        ]
        if "engine, bf16 autocast" in medians:
            bf16 = medians["engine, bf16 autocast"]
            rows.append(("engine, bf16 autocast", bf16, f"fp32/bf16 = {tel_on / bf16:.2f}x"))
        for name, seconds, ratio in rows:
            lines.append(f"| {title} | {name} | {seconds * 1000:.2f} | {ratio} |")
            print(lines[-1], file=sys.stderr, flush=True)  # progress; the report follows
    lines += [
        "",
        "Hot-loop changes, the old formulation against the engine's, side by side (CPU, median of interleaved runs):",
        "",
        "| change | old ms | new ms | old/new |",
        "| --- | ---: | ---: | ---: |",
    ]
    digits = cases[0][1]
    micro = [
        ("L2 penalty on the digits MLP, per AdamW step: loss term vs fused gradient add",
         lambda: l2_step_seconds(digits, True), lambda: l2_step_seconds(digits, False)),
        ("gradient histograms, 3 layers x 4096 values, per epoch: histc(min=max=0) vs device range",
         lambda: histogram_seconds(False), lambda: histogram_seconds(True)),
    ]  # fmt: skip
    for name, old, new in micro:
        medians = interleaved({"old": old, "new": new}, args.repeats)
        lines.append(
            f"| {name} | {medians['old'] * 1000:.3f} | {medians['new'] * 1000:.3f} | "
            f"{medians['old'] / medians['new']:.2f}x |"
        )
        print(lines[-1], file=sys.stderr, flush=True)  # progress; the report follows
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
