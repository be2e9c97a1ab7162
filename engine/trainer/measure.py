"""What the engine measures of a trial's model besides its scores, so that a study may trade accuracy against
size or speed (`[study] objectives`): its parameter count, and its inference latency on a validation batch."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

LATENCY_WARMUP = 2  # untimed passes first: the first calls pay for kernel selection and caches
LATENCY_RUNS = 5  # timed passes; their median is the latency (robust to one slow pass on a busy machine)


def parameter_count(model: nn.Module) -> int:
    """Every parameter of the model, trainable or not (what it costs to store and ship)."""
    return sum(p.numel() for p in model.parameters())


def keeping_first(batches: Iterable[tuple[Tensor, Tensor]], kept: list[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
    """`batches` unchanged; the first batch's inputs are appended to `kept` (the latency's batch, taken from
    the validation pass itself: no extra read of a loader)."""
    for xb, yb in batches:
        if not kept:
            kept.append(xb)
        yield xb, yb


def latency_ms(forward: Callable[[Tensor], Tensor], model: nn.Module, batch: Tensor,
               amp_dtype: torch.dtype | None, device: torch.device) -> float:  # fmt: skip
    """The median time of one forward pass of `batch`, in milliseconds: eval mode, no gradients, the trial's
    autocast; on CUDA each pass is synchronized before and after, so the time is the kernels', not the launch's."""
    model.eval()
    cuda = device.type == "cuda"
    times = []
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None),
    ):
        for run in range(LATENCY_WARMUP + LATENCY_RUNS):
            if cuda:
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            forward(batch)
            if cuda:
                torch.cuda.synchronize(device)
            if run >= LATENCY_WARMUP:
                times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0
