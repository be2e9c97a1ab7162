"""Tabular tasks bundled with scikit-learn (no network): `digits`, `breast_cancer`, `wine`, `diabetes`.

- digits: 1797 8x8 handwritten digits, 64 features, 10 classes
- breast_cancer: 569 tumours, 30 features, 2 classes
- wine: 178 wines, 13 features, 3 classes
- diabetes: 442 patients, 10 features, a regression target (disease progression after one year),
  standardized with the training split's mean and std, so RMSE and MAE are in standard deviations of the
  target (multiply by about 77 for the original units) and a model that predicts the mean scores about 1
"""

from __future__ import annotations

import torch

from engine.spec import REGRESSION_TASKS, TaskSpec
from engine.trainer.tasks import TaskData, split_indices, standardize

BUNDLED = {
    "digits": "load_digits", "breast_cancer": "load_breast_cancer", "wine": "load_wine",
    "diabetes": "load_diabetes",
}  # fmt: skip


def load_bundled_task(task: TaskSpec, device: torch.device) -> TaskData:
    """A fixed seeded split by `val_fraction`, standardized with train statistics, float32 on the device."""
    import sklearn.datasets

    x_all, y_all = getattr(sklearn.datasets, BUNDLED[task.name])(return_X_y=True)
    regression = task.name in REGRESSION_TASKS
    x_all = torch.as_tensor(x_all, dtype=torch.float32)
    y_all = torch.as_tensor(y_all, dtype=torch.float32 if regression else torch.int64)
    train_idx, val_idx = split_indices(len(y_all), task.val_fraction)
    if task.subset is not None:
        train_idx = train_idx[: task.subset]
    x_train, x_val = standardize(x_all[train_idx], x_all[val_idx], dims=(0,))
    y_train, y_val = y_all[train_idx], y_all[val_idx]
    if regression:
        y_train, y_val = standardize(y_train, y_val, dims=(0,))
    return TaskData(
        x_train=x_train.to(device),
        y_train=y_train.to(device),
        x_val=x_val.to(device),
        y_val=y_val.to(device),
        num_classes=0 if regression else int(y_all.max()) + 1,
        input_shape=(x_all.shape[1],),
    )
