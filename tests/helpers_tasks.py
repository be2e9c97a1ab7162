"""User tasks for the fault, parallel and control tests: tiny, slow, hanging and crashing trials.

Each is a `module:function` user task (engine/trainer/tasks/__init__.py): `function(params, device) -> TaskData`.
Specs name them `helpers_tasks:<function>` and live in this folder or copy this file next to themselves.
`params` comes from the spec's [task.params]; files the tasks write go to `params["mark_dir"]`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

from engine.trainer.tasks import TaskData


def _data(device: torch.device, rows: int = 32, features: int = 4, seed: int = 0) -> TaskData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=g)
    y = (x[:, 0] > 0).long()  # learnable: the sign of the first feature
    half = rows // 2
    return TaskData(
        x_train=x[:half].to(device),
        y_train=y[:half].to(device),
        x_val=x[half:].to(device),
        y_val=y[half:].to(device),
        num_classes=2,
        input_shape=(features,),
    )


def _mark(params: dict, kind: str, text: str = "") -> None:
    """Leave `<mark_dir>/<kind>-<pid>-<ns>` (holding `text`) so a test can see (and kill) the worker running
    a trial."""
    folder = params.get("mark_dir")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{os.getpid()}-{time.monotonic_ns()}"
        (Path(folder) / f".{name}").write_text(text)
        os.replace(Path(folder) / f".{name}", Path(folder) / name)  # whole when a test sees it


def tiny(params: dict, device: torch.device) -> TaskData:
    """32 rows, 4 features, 2 classes: a trial of one epoch takes a few milliseconds."""
    return _data(device)


def slow(params: dict, device: torch.device) -> TaskData:
    """Tiny data, but every trial marks its worker and every epoch sleeps `epoch_s` (augment runs once
    per epoch because one batch holds all the rows: use batch_size >= 16 and train.augment = true)."""
    data = _data(device)
    epoch_s = float(params.get("epoch_s", 0.2))

    def build_model(config) -> nn.Module:
        _mark(params, "trial")
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def augment(batch: torch.Tensor, config) -> torch.Tensor:
        time.sleep(epoch_s)
        return batch

    data.build_model, data.augment = build_model, augment
    return data


def hang(params: dict, device: torch.device) -> TaskData:
    """Every trial hangs in model building (`sleep_s`, default an hour): only its time limit ends it."""
    data = _data(device)

    def build_model(config) -> nn.Module:
        _mark(params, "hang")
        time.sleep(float(params.get("sleep_s", 3600)))
        return nn.Sequential(nn.Linear(4, 2))

    data.build_model = build_model
    return data


def crash(params: dict, device: torch.device) -> TaskData:
    """Every trial kills its own worker process (a segfault in an extension looks the same)."""
    data = _data(device)

    def build_model(config) -> nn.Module:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    data.build_model = build_model
    return data


def busy(params: dict, device: torch.device) -> TaskData:
    """CPU-bound, single-threaded trials for the parallel benchmark: an MLP on `rows` random rows (half for training)."""
    rows, features = int(params.get("rows", 2048)), int(params.get("features", 64))
    return _data(device, rows=rows, features=features, seed=1)


class _StuckDecoder(torch.utils.data.Dataset):
    """Items read normally in the trial's own process; in a loader worker each marks the worker
    (`item-<pgid>-<pid>-<ns>` in `mark_dir`, holding "forked" when the worker's modules came with it, else
    "spawned") and never returns, as a decoder stuck on a file."""

    def __init__(self, rows: int, mark_dir: str):
        self.data = _data(torch.device("cpu"), rows=rows)
        self.mark_dir = mark_dir

    def __len__(self) -> int:
        return len(self.data.y_train)

    def __getitem__(self, i: int):
        if torch.utils.data.get_worker_info() is not None:
            forked = "engine.trainer.worker_main" in sys.modules
            _mark({"mark_dir": self.mark_dir}, f"item-{os.getpgrp()}", "forked" if forked else "spawned")
            time.sleep(3600)
        return self.data.x_train[i], int(self.data.y_train[i])


def stuck_sets(params: dict, device: torch.device):
    """A task of data sets (LoaderTaskData) whose loader workers hang: the trial ends only by its time
    limit or a kill."""
    from engine.trainer.tasks import LoaderTaskData

    return LoaderTaskData(
        train_set=_StuckDecoder(32, params["mark_dir"]),
        val_set=_StuckDecoder(16, params["mark_dir"]),
        num_classes=2,
        input_shape=(4,),
    )
