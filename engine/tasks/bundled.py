"""The `digits` task: sklearn's 8x8 handwritten digits (1797 images, bundled, no network)."""

from __future__ import annotations

import torch

from engine.spec import TaskSpec
from engine.tasks import TaskData, split_indices, standardize


def load_digits_task(task: TaskSpec, device: torch.device) -> TaskData:
    """A fixed seeded split by `val_fraction`, standardized with train statistics, float32 on the device."""
    from sklearn.datasets import load_digits

    x_all, y_all = load_digits(return_X_y=True)
    x_all = torch.as_tensor(x_all, dtype=torch.float32)
    y_all = torch.as_tensor(y_all, dtype=torch.int64)
    train_idx, val_idx = split_indices(len(y_all), task.val_fraction)
    if task.subset is not None:
        train_idx = train_idx[: task.subset]
    x_train, x_val = standardize(x_all[train_idx], x_all[val_idx], dims=(0,))
    return TaskData(
        x_train=x_train.to(device),
        y_train=y_all[train_idx].to(device),
        x_val=x_val.to(device),
        y_val=y_all[val_idx].to(device),
        num_classes=10,
        input_shape=(64,),
    )
