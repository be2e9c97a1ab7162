"""The cost of a task of data sets: the engine's loop fed by DataLoaders (LoaderTaskData) against the same
data as device tensors (TaskData), side by side in one run, interleaved, medians reported. Prints a
Markdown table; the loader rows use `loader_workers` 0 (items read in the trial's process) and 1.

    nice -n 10 .venv/bin/python benchmarks/bench_loader.py [--device cpu|cuda] [--repeats 3] [--epochs 4]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch.utils.data import TensorDataset

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import LoaderTaskData, TaskData, load_task
from engine.trainer.train import train


def epoch_seconds(config: TrainConfig, data, device: torch.device) -> list[float]:
    """Per-epoch wall time (training and validation), the first epoch dropped (warm-up, worker start)."""
    times: list[float] = []
    train(config, data, device, lambda report: times.append(report.metrics["epoch_time_s"]) is not None)
    return times[1:]


def as_sets(data: TaskData) -> LoaderTaskData:
    """The same rows as host data sets, read item by item."""
    return LoaderTaskData(
        train_set=TensorDataset(data.x_train.cpu(), data.y_train.cpu()),
        val_set=TensorDataset(data.x_val.cpu(), data.y_val.cpu()),
        num_classes=data.num_classes,
        input_shape=data.input_shape,
    )


def cases(device: torch.device):
    digits = load_task(TaskSpec(name="digits"), {}, device)
    yield "digits (1438 x 64), MLP 2x128, batch 64", digits, {"batch_size": 64}
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12_000, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (12_000,), generator=g)
    images = TaskData(x[:10_000].to(device), y[:10_000].to(device), x[10_000:].to(device), y[10_000:].to(device),
                      num_classes=10, input_shape=(3, 32, 32))  # fmt: skip
    yield "CIFAR-shaped (10000 x 3x32x32), MLP 2x256, batch 256", images, {"batch_size": 256, "width": 256}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    device = torch.device(args.device)
    print("| case | contender | epoch ms | loader / tensors |")
    print("| --- | --- | ---: | ---: |")
    for name, data, options in cases(device):
        base = TrainConfig(epochs=args.epochs, clip_norm=5.0, amp="off", **options)
        contenders = {
            "tensors on the device": (data, base),
            "data sets, loader_workers 0": (as_sets(data), base.model_copy(update={"loader_workers": 0})),
            "data sets, loader_workers 1": (as_sets(data), base.model_copy(update={"loader_workers": 1})),
        }
        times: dict[str, list[float]] = {label: [] for label in contenders}
        for _ in range(args.repeats):  # interleaved: machine drift hits every contender alike
            for label, (task, config) in contenders.items():
                times[label] += epoch_seconds(config, task, device)
        tensors = statistics.median(times["tensors on the device"])
        for label, seconds in times.items():
            median = statistics.median(seconds)
            print(f"| {name} | {label} | {median * 1000:.1f} | {median / tensors:.2f}x |")


if __name__ == "__main__":
    main()
