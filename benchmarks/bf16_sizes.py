"""bf16 vs fp32 of the engine's ResNet at growing sizes: where does autocast pay on this GPU? CUDA only.

    PYTHONPATH=. python benchmarks/bf16_sizes.py     # prints a Markdown table (docs/benchmarks.md)

Median epoch time of 3 epochs (the first dropped) on 25,000 CIFAR-shaped synthetic images, SGD,
channels_last, telemetry on: what `benchmarks/gpu_check.py` measures, at three sizes instead of one."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from synthetic_cifar import build  # noqa: E402

from engine.config import TrainConfig  # noqa: E402
from engine.trainer.train import train  # noqa: E402


def epoch_seconds(config: TrainConfig, data, device: torch.device) -> float:
    metrics: list[dict] = []
    train(config, data, device, lambda report: metrics.append(report.metrics) is None and False)
    return statistics.median(m["epoch_time_s"] for m in metrics[1:])


def main() -> None:
    device = torch.device("cuda", 0)
    data = build({"samples": 25_000}, device)
    print("| width | batch | fp32 epoch s | bf16 epoch s | fp32/bf16 |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for width, batch in ((64, 256), (128, 512), (256, 1024)):
        times = {
            amp: epoch_seconds(TrainConfig(model="resnet", layers=3, width=width, batch_size=batch, epochs=3,
                                           optimizer="sgd", lr=0.05, momentum=0.9, amp=amp, telemetry=True),
                               data, device)
            for amp in ("off", "bf16")
        }  # fmt: skip
        print(f"| {width} | {batch} | {times['off']:.3f} | {times['bf16']:.3f} | {times['off'] / times['bf16']:.2f}x |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
