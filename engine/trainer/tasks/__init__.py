"""Task data: built-in data sets and user tasks, loaded once per worker and held on the device.

A task turns a `TaskSpec` into a `TaskData`: train and validation tensors already on the device, the
number of classes (0 for a regression), the input shape, and optionally its own model builder and batch
augmentation.

Built-in tasks: `digits`, `breast_cancer`, `wine` (classification) and `diabetes` (regression), bundled with
sklearn (offline); `mnist`, `fashion_mnist`, `cifar10` (torchvision data sets read from `data_dir`; fetched
only when the spec says `download = true`).

User tasks are named `"module:function"` and resolved with `pkgutil.resolve_name`, with the spec file's
folder importable. The function is called as `function(params: dict, device: torch.device) -> TaskData`:

- `params` holds `[task.params]`, the extra `[train]` keys, the sampled extra dimensions, and
  `"__spec_dir__"`, `"__data_dir__"`, `"__download__"`, `"__val_fraction__"`, `"__subset__"` from the spec.
- It returns a `TaskData` whose tensors are on `device`; `x_*` float, `y_*` int64 class indices, or for a
  regression (`num_classes = 0`, trained with loss mse or huber) float targets, one column per output.
- `build_model(config)` may build the model (else the engine's MLP/ResNet is used); `augment(batch, config)`
  may transform a training batch on the device (called only when `config.augment` is true).
- Or, for data that does not fit on the device, it returns a `LoaderTaskData` of `torch.utils.data.Dataset`s
  (a torchvision `ImageFolder` with its transforms, say): each item an `(x, y)` pair, `x` a float tensor
  of `input_shape`, `y` a class index (or a regression's float target). The engine feeds them through
  DataLoaders (engine/trainer/feed.py).

Results are cached in-process: built-in tasks by (name, data_dir, subset, val_fraction, device), user tasks
by that key plus their params, so a worker loads its data once and reuses it trial after trial.
"""

from __future__ import annotations

import json
import pkgutil
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from engine.config import TrainConfig
from engine.spec import TaskSpec

BUILTIN_TASKS = ("digits", "breast_cancer", "wine", "diabetes", "mnist", "fashion_mnist", "cifar10")
USER_CACHE_SIZE = 4  # a user task's params may vary per trial: keep only the last few loads


@dataclass
class TaskData:
    """One task's tensors on the device, and how to build its model and augment its batches."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    num_classes: int  # 0: a regression, whose y_* are float targets (rows, or rows x outputs)
    input_shape: tuple[int, ...]
    build_model: Callable[[TrainConfig], nn.Module] | None = None  # None: engine.trainer.models.build_model
    augment: Callable[[Tensor, TrainConfig], Tensor] | None = None  # a training batch, on the device
    # an official test split, when the data set has one: evaluated once on the final model and recorded,
    # never used to pick trials (the study's metric comes from the validation split)
    x_test: Tensor | None = None
    y_test: Tensor | None = None

    def check(self, name: str) -> TaskData:
        """Raise TaskError when the tensors do not fit together; return self."""
        problems = []
        if self.x_train.shape[0] != self.y_train.shape[0]:
            problems.append(f"x_train has {self.x_train.shape[0]} rows but y_train {self.y_train.shape[0]}")
        if self.x_val.shape[0] != self.y_val.shape[0]:
            problems.append(f"x_val has {self.x_val.shape[0]} rows but y_val {self.y_val.shape[0]}")
        if self.x_train.shape[0] < 1 or self.x_val.shape[0] < 1:
            problems.append("train and validation sets must not be empty")
        if tuple(self.x_train.shape[1:]) != tuple(self.input_shape):
            problems.append(
                f"x_train rows have shape {tuple(self.x_train.shape[1:])}, not {self.input_shape}"
            )
        if self.num_classes == 0:  # a regression
            if not (self.y_train.is_floating_point() and self.y_val.is_floating_point()):
                problems.append("a regression's targets (num_classes = 0) must be float tensors")
            elif self.y_train.dim() not in (1, 2) or self.y_train.shape[1:] != self.y_val.shape[1:]:
                problems.append("a regression's targets must be one value per row, or the same number of "
                                "columns in y_train and y_val")  # fmt: skip
        elif self.num_classes < 2:
            problems.append(f"num_classes must be at least 2, or 0 for a regression (got {self.num_classes})")
        elif self.y_train.dtype != torch.int64 or self.y_val.dtype != torch.int64:
            problems.append("labels must be int64 class indices")
        if problems:
            raise TaskError(f"task {name!r} returned unusable data: " + "; ".join(problems))
        return self


@dataclass
class LoaderTaskData:
    """One task's data sets, read batch by batch (the data stays on the host until each batch is copied)."""

    train_set: Dataset
    val_set: Dataset
    num_classes: int  # 0: a regression, whose items' y are float targets
    input_shape: tuple[int, ...]  # of one item's x
    build_model: Callable[[TrainConfig], nn.Module] | None = None
    augment: Callable[[Tensor, TrainConfig], Tensor] | None = None  # a training batch, on the device
    test_set: Dataset | None = None  # evaluated once on the final model, as TaskData's x_test

    def check(self, name: str) -> LoaderTaskData:
        """Raise TaskError when the sets are empty or their first items do not fit; return self."""
        problems = []
        for split, dataset in (("train_set", self.train_set), ("val_set", self.val_set), ("test_set", self.test_set)):
            if dataset is None:
                continue
            try:
                if len(dataset) < 1:
                    problems.append(f"{split} is empty")
                    continue
                item = dataset[0]
            except Exception as err:  # a user's data set: any error is its own
                problems.append(f"{split} cannot be read: {type(err).__name__}: {err}")
                continue
            problems.extend(f"{split}[0] {p}" for p in self._item_problems(item))
        if self.num_classes != 0 and self.num_classes < 2:
            problems.append(f"num_classes must be at least 2, or 0 for a regression (got {self.num_classes})")
        if problems:
            raise TaskError(f"task {name!r} returned unusable data: " + "; ".join(problems))
        return self

    def _item_problems(self, item: Any) -> list[str]:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            return [f"is a {type(item).__name__}, not an (x, y) pair"]
        x, y = item
        if not (isinstance(x, Tensor) and x.is_floating_point()):
            return [f"x is a {type(x).__name__}, not a float tensor (a transform such as ToTensor makes one)"]
        if tuple(x.shape) != tuple(self.input_shape):
            return [f"x has shape {tuple(x.shape)}, not {tuple(self.input_shape)}"]
        label = torch.as_tensor(y)
        if self.num_classes == 0 and not label.is_floating_point():
            return ["y must be a float target in a regression (num_classes = 0)"]
        if self.num_classes and (label.is_floating_point() or label.dim() != 0):
            return [f"y must be a class index (an int), not {y!r}"[:200]]
        return []


AnyTaskData = TaskData | LoaderTaskData


class TaskError(Exception):
    """A task that cannot be loaded: missing files, a bad user function, unusable tensors."""


_builtin_cache: dict[tuple, TaskData] = {}
_user_cache: OrderedDict[tuple, AnyTaskData] = OrderedDict()


def load_task(
    task: TaskSpec, params: dict[str, Any], device: torch.device, spec_dir: str | Path | None = None
) -> AnyTaskData:
    """The task's data on `device` (or its data sets), from the in-process cache when it was loaded before."""
    device = torch.device(device)
    spec_dir = spec_dir if spec_dir is not None else params.get("__spec_dir__")
    key = (task.name, str(Path(task.data_dir).expanduser()), task.subset, task.val_fraction, str(device))
    if not task.is_user_task:
        if key not in _builtin_cache:
            _builtin_cache[key] = _load_builtin(task, device).check(task.name)
        return _builtin_cache[key]
    user_params = {k: v for k, v in params.items() if not k.startswith("__")}
    key = (*key, str(spec_dir), json.dumps(user_params, sort_keys=True, default=str))
    if key in _user_cache:
        _user_cache.move_to_end(key)
        return _user_cache[key]
    data = _load_user(task, user_params, device, spec_dir).check(task.name)
    _user_cache[key] = data
    while len(_user_cache) > USER_CACHE_SIZE:
        _user_cache.popitem(last=False)
    return data


def clear_cache() -> None:
    """Forget every loaded task (tests; a worker that must free device memory)."""
    _builtin_cache.clear()
    _user_cache.clear()


def _load_builtin(task: TaskSpec, device: torch.device) -> TaskData:
    if task.name in ("digits", "breast_cancer", "wine", "diabetes"):
        from engine.trainer.tasks.bundled import load_bundled_task

        return load_bundled_task(task, device)
    if task.name in ("mnist", "fashion_mnist", "cifar10"):
        from engine.trainer.tasks.vision import load_vision_task

        return load_vision_task(task, device)
    raise TaskError(
        f"unknown task {task.name!r}: expected one of {', '.join(BUILTIN_TASKS)}, "
        "or 'module:function' for a user task"
    )


def _load_user(
    task: TaskSpec, params: dict[str, Any], device: torch.device, spec_dir: str | Path | None
) -> AnyTaskData:
    function = resolve_user_function(task.name, spec_dir, "user task")
    full = {
        **params,
        "__spec_dir__": None if spec_dir is None else str(spec_dir),
        "__data_dir__": str(Path(task.data_dir).expanduser()),
        "__download__": task.download,
        "__val_fraction__": task.val_fraction,
        "__subset__": task.subset,
    }
    data = function(full, device)
    if not isinstance(data, (TaskData, LoaderTaskData)):
        raise TaskError(
            f"user task {task.name!r} returned {type(data).__name__}, "
            "expected engine.trainer.tasks.TaskData or LoaderTaskData"
        )
    return data


def resolve_user_function(name: str, spec_dir: str | Path | None, what: str) -> Callable[..., Any]:
    """The function a spec names as "module:function", imported with the spec's folder importable (no eval)."""
    if spec_dir is not None and str(spec_dir) not in sys.path:
        # the spec's folder is importable, like a script's own folder
        sys.path.insert(0, str(spec_dir))
    try:
        function = pkgutil.resolve_name(name)
    except (ImportError, AttributeError, ValueError) as err:
        where = f" (searched {spec_dir} and sys.path)" if spec_dir is not None else ""
        raise TaskError(f"cannot resolve {what} {name!r}{where}: {err}") from err
    if not callable(function):
        raise TaskError(f"{what} {name!r} is not a function")
    return function


def split_indices(n: int, val_fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed, seeded train/validation split of n rows (the same for every trial and worker)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * val_fraction))
    return order[n_val:], order[:n_val]


def standardize(x_train: Tensor, *others: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, ...]:
    """Standardize every set in place with the training set's mean and std over `dims` (no leak)."""
    mean = x_train.mean(dim=dims, keepdim=True)
    std = x_train.std(dim=dims, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return tuple(x.sub_(mean).div_(std) for x in (x_train, *others))
