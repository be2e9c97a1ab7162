"""Batches from a task's data sets (LoaderTaskData), for data that does not fit on the device.

DataLoaders cut each epoch the way the tensor path does (a seeded permutation per epoch, full batches,
then the remainder unless it is a single row), so the loop's compile and telemetry rules hold unchanged.
Pinned host memory and non-blocking copies on CUDA; `loader_workers` processes decode items beside the
trial. They are children of the trial's worker, in its process group (engine/trainer/worker_main.py), so
a killed or timed-out trial takes them along; a trial that ends shuts them down itself (`close`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from engine.config import TrainConfig

MAX_DEFAULT_WORKERS = 4
# Decoding processes are forked from the trial's worker, as PyTorch's loaders are by default on Linux: the
# worker was itself spawned, and its children would inherit spawn, each importing torch and the task again
# (seconds per trial). Spawn where there is no fork.
LOADER_START = "fork" if "fork" in multiprocessing.get_all_start_methods() else None


def default_workers() -> int:
    """Decoding processes when the spec names none: half the cores this process may use, at most 4."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(MAX_DEFAULT_WORKERS, cores // 2)


class EpochBatches(Sampler[list[int]]):
    """Each epoch's batches of row indices: a new permutation from the trial's seed, cut into `steps`
    batches of `batch_size` (the last one may be shorter)."""

    def __init__(self, rows: int, batch_size: int, steps: int, seed: int):
        self.rows, self.batch_size, self.steps = rows, batch_size, steps
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.rows, generator=self.generator).tolist()
        for i in range(self.steps):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]


class LoaderFeed:
    """One trial's loaders: training batches per epoch, validation and test batches in order."""

    def __init__(
        self,
        train_set: Dataset,
        val_set: Dataset,
        config: TrainConfig,
        device: torch.device,
        batch_size: int,
        steps_per_epoch: int,
        targets: Callable[[Tensor], Tensor],
    ):
        self.device, self.batch_size, self.targets = device, batch_size, targets
        self.workers = default_workers() if config.loader_workers is None else config.loader_workers
        # the workers' seeds (random transforms) come from the trial's seed; passing a generator also keeps
        # the loader from drawing its seed from the global RNG, which dropout uses
        self.seeds = torch.Generator().manual_seed(config.seed)
        sampler = EpochBatches(len(train_set), batch_size, steps_per_epoch, config.seed)
        self.train_loader = self._loader(train_set, batch_sampler=sampler, persistent=True)
        self.val_loader = self._loader(val_set, batch_size=batch_size, persistent=True)
        self._open = [self.train_loader, self.val_loader]

    def _loader(self, dataset: Dataset, persistent: bool, **batching) -> DataLoader:
        return DataLoader(
            dataset,
            num_workers=self.workers,
            multiprocessing_context=LOADER_START if self.workers > 0 else None,
            pin_memory=self.device.type == "cuda",
            persistent_workers=persistent and self.workers > 0,  # not forked again every epoch
            generator=self.seeds,
            **batching,
        )

    def batches(self, loader: DataLoader, moments: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """`loader`'s batches on the device, targets as the loss wants them. A regression's target
        moments (rows, sum, sum of squares per output) are added to `moments` for R2."""
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            y = self.targets(y.to(self.device, non_blocking=True))
            if moments is not None:
                moments += torch.stack([torch.ones_like(y).sum(0), y.sum(0), y.square().sum(0)])
            yield x, y

    def test_batches(self, test_set: Dataset, moments: Tensor | None) -> Iterator[tuple[Tensor, Tensor]]:
        """The test split, once: its workers end with the pass."""
        return self.batches(self._loader(test_set, batch_size=self.batch_size, persistent=False), moments)

    def close(self) -> None:
        """End the persistent workers now, not when the loaders are collected."""
        for loader in self._open:
            iterator = getattr(loader, "_iterator", None)  # torch keeps a persistent loader's iterator here
            shutdown = getattr(iterator, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            loader._iterator = None
        self._open = []


def target_moments(outputs: int, device: torch.device) -> Tensor:
    return torch.zeros(3, outputs, device=device)


def variance_of(moments: Tensor) -> Tensor:
    """The targets' population variance summed over outputs, from `target_moments` sums (on the device)."""
    rows = moments[0].clamp(min=1)
    mean = moments[1] / rows
    return (moments[2] / rows - mean.square()).clamp(min=0).sum()
