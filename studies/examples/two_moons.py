"""An example user task: two interleaved half-moons, with a model that reads its own sampled parameter.

The spec next to this file names it `two_moons:build`. The function gets the trial's task parameters
(the spec's [task.params], extra [train] keys, and sampled dimensions that are not training parameters)
and the device, and returns a TaskData with tensors on that device.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from engine.config import TrainConfig
from engine.trainer.tasks import TaskData


def build(params: dict, device: torch.device) -> TaskData:
    g = torch.Generator().manual_seed(int(params.get("data_seed", 0)))
    n = int(params.get("samples", 1000))
    angle = torch.rand(n, generator=g) * math.pi
    label = torch.randint(0, 2, (n,), generator=g)
    x = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    x[label == 1] = 1.0 - x[label == 1] + torch.tensor([0.0, 0.5])  # the second moon, flipped and shifted
    x += float(params.get("noise", 0.1)) * torch.randn(n, 2, generator=g)
    split = int(n * 0.8)
    hidden = int(params.get("hidden", 32))  # a parameter of this task, searched in the spec's [space]

    def build_model(config: TrainConfig) -> nn.Module:
        return nn.Sequential(
            nn.Linear(2, hidden), nn.Tanh(), nn.Dropout(config.dropout), nn.Linear(hidden, 2)
        )  # fmt: skip

    return TaskData(
        x_train=x[:split].to(device),
        y_train=label[:split].to(device),
        x_val=x[split:].to(device),
        y_val=label[split:].to(device),
        num_classes=2,
        input_shape=(2,),
        build_model=build_model,
    )
