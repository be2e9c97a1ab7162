"""Model builders: MLP and ResNet shapes, batch norm and dropout placement, init schemes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.config import TrainConfig
from engine.trainer.models import MLP, ResNet, build_model, layer_names


def test_mlp_follows_per_layer_widths_and_dropouts():
    config = TrainConfig(layers=3, width=32, width_2=16, dropout=0.1, dropout_2=0.0, batch_norm=True)
    model = build_model(config, (64,), 10)
    assert isinstance(model, MLP)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    # width_<i> and dropout_<i> override hidden layer i, counted from 0
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 32), (32, 16), (16, 10)]
    assert linears[0].bias is None  # batch norm follows, a bias would be redundant
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model) == 3
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.1, 0.1]  # the third layer has none
    assert [name for name, _ in layer_names(model)] == ["fc1", "fc2", "fc3", "out"]
    assert model(torch.randn(5, 64)).shape == (5, 10)


def test_mlp_flattens_images_and_zero_layers_is_linear():
    model = build_model(TrainConfig(layers=0), (1, 28, 28), 10)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert [name for name, _ in layer_names(model)] == ["out"]


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh", "sigmoid"])
def test_activation_is_used(activation):
    model = build_model(TrainConfig(activation=activation, layers=2), (8,), 3)
    kinds = {type(m).__name__.lower() for m in model}
    assert activation in kinds


def test_resnet_stages_halve_and_double():
    config = TrainConfig(model="resnet", width=8, layers=3, dropout=0.2)
    model = build_model(config, (3, 32, 32), 10)
    assert isinstance(model, ResNet)
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    assert model.head.in_features == 32  # 8 -> 16 -> 32 channels
    names = [name for name, _ in layer_names(model)]
    assert names[0] == "stem.0" and names[-1] == "head"
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_resnet_takes_square_flat_input_and_refuses_others():
    model = build_model(TrainConfig(model="resnet", width=4, layers=1), (64,), 10)
    assert model(torch.randn(3, 64)).shape == (3, 10)
    with pytest.raises(ValueError, match="needs image input"):
        build_model(TrainConfig(model="resnet"), (10,), 2)


def test_kaiming_init_has_fan_in_variance():
    torch.manual_seed(0)
    model = build_model(TrainConfig(init="kaiming", layers=1, width=512), (256,), 10)
    weight = model.fc1.weight
    assert abs(weight.std().item() - math.sqrt(2 / 256)) < 0.01 * math.sqrt(2 / 256) * 10
    assert torch.count_nonzero(model.fc1.bias) == 0
    tanh = build_model(TrainConfig(init="kaiming", activation="tanh", layers=1, width=512), (256,), 10)
    assert abs(tanh.fc1.weight.std().item() - (5 / 3) / 16) < 0.01


def test_xavier_init_is_uniform_within_the_glorot_bound():
    torch.manual_seed(0)
    model = build_model(TrainConfig(init="xavier", activation="sigmoid", layers=1, width=100), (300,), 10)
    bound = math.sqrt(6 / (300 + 100))  # sigmoid's gain is 1
    weight = model.fc1.weight
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.95 * bound


def test_default_init_is_pytorchs():
    torch.manual_seed(0)
    ours = build_model(TrainConfig(init="default", layers=1, width=16), (8,), 2)
    torch.manual_seed(0)
    theirs = nn.Linear(8, 16)
    assert torch.equal(ours.fc1.weight, theirs.weight)
