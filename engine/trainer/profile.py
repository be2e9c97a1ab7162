"""Profile a few training steps of a spec's trial under torch.profiler: a table of top ops and a Chrome trace."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.data import Subset

from engine.files import private_dir, private_umask
from engine.spec import StudySpec
from engine.trainer.tasks import AnyTaskData, LoaderTaskData, load_task
from engine.trainer.train import train

WARMUP_STEPS = 3  # run before profiling: first-call allocations and lazy init are not the loop's cost
TOP_OPS = 15


def profile_trial(
    spec: StudySpec,
    params: dict[str, Any],
    steps: int = 20,
    trace_path: str | Path = "tunetui-trace.json",
    device: str | torch.device | None = None,
    spec_dir: str | Path | None = None,
) -> str:
    """Run `steps` training steps of the trial `params` (fixed [train] values plus these) under
    torch.profiler and return a table of the top ops by self CPU time (and self CUDA time on a GPU).
    Writes a Chrome trace to `trace_path` (chrome://tracing or ui.perfetto.dev)."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    device = _device(device)
    config = spec.train_config(params).model_copy(update={"epochs": 1})
    task_params = {**spec.task_params(params)}
    if spec_dir is not None:
        task_params["__spec_dir__"] = str(spec_dir)
    data = load_task(spec.task, task_params, device, spec_dir=spec_dir)
    batch = min(config.batch_size, len(data.train_set) if isinstance(data, LoaderTaskData) else len(data.y_train))

    # warm up on a few batches, then profile exactly `steps` batches (one short epoch each)
    train(config, _slice(data, WARMUP_STEPS * batch, batch), device, lambda report: False)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=False) as prof:
        train(config, _slice(data, steps * batch, batch), device, lambda report: False)
    trace_path = Path(trace_path)
    private_dir(trace_path.parent)
    with private_umask():  # torch writes the trace with the default mode
        prof.export_chrome_trace(str(trace_path))

    averages = prof.key_averages()
    header = (
        f"{spec.study.name}: {steps} training step(s) of batch {batch} on {device} "
        f"(model {config.model}, optimizer {config.optimizer}, amp {config.amp}); params {params or '{}'}"
    )
    parts = [
        header,
        "",
        "Top ops by self CPU time:",
        averages.table(sort_by="self_cpu_time_total", row_limit=TOP_OPS),
    ]
    if device.type == "cuda":
        parts += [
            "",
            "Top ops by self CUDA time:",
            averages.table(sort_by="self_cuda_time_total", row_limit=TOP_OPS),
        ]
    return "\n".join(parts)


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _slice(data: AnyTaskData, rows: int, batch: int) -> AnyTaskData:
    """The task with exactly `rows` training rows (repeating the set when it is smaller) and one
    validation batch, so an epoch is exactly rows / batch steps and validation stays a small part."""
    if isinstance(data, LoaderTaskData):
        return dataclasses.replace(
            data,
            train_set=Subset(data.train_set, [i % len(data.train_set) for i in range(rows)]),
            val_set=Subset(data.val_set, range(min(batch, len(data.val_set)))),
        )
    index = torch.arange(rows, device=data.y_train.device) % len(data.y_train)
    return dataclasses.replace(
        data,
        x_train=data.x_train[index],
        y_train=data.y_train[index],
        x_val=data.x_val[:batch],
        y_val=data.y_val[:batch],
    )
