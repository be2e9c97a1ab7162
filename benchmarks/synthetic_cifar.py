"""A CIFAR-10-shaped synthetic task (3x32x32 images, 10 classes) for the GPU check: no download.

A user task (`synthetic_cifar:build`): the labels follow a fixed random linear map of a blurred image,
so a ResNet can learn them and the loss falls the way real data's does; only the speed is measured."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.trainer.tasks import TaskData


def build(params: dict, device: torch.device) -> TaskData:
    n = int(params.get("samples", 10_000))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    pooled = F.avg_pool2d(x, 8).flatten(1)  # 3 x 4 x 4 = 48 coarse features
    y = (pooled @ torch.randn(48, 10, generator=g)).argmax(1)
    split = n * 9 // 10
    return TaskData(
        x_train=x[:split].to(device), y_train=y[:split].to(device),
        x_val=x[split:].to(device), y_val=y[split:].to(device),
        num_classes=10, input_shape=(3, 32, 32),
    )  # fmt: skip
