"""What the hot loop must not do: recompile for ragged batches, read histogram ranges back to the host,
or pay a loss term for L2; and what it must still do the same way."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import load_task
from engine.trainer.telemetry import histogram
from engine.trainer.train import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec(name="digits"), {}, CPU)  # 1438 training rows: 22 batches of 64 and one of 30


def final_metrics(data, **overrides):
    config = TrainConfig(**{"epochs": 2, "batch_size": 64, **overrides})
    return train(config, data, CPU, lambda report: False).metrics


@pytest.mark.parametrize("bins", [7, 32])
def test_device_histogram_counts_as_histc_does(bins):
    generator = torch.Generator().manual_seed(3)
    values = torch.randn(5000, generator=generator) * 0.01
    lo, hi = torch.aminmax(values)
    expected = torch.histc(values, bins=bins, min=float(lo), max=float(hi))
    assert torch.equal(histogram(values, lo, hi, bins), expected)


def test_device_histogram_of_equal_values_spans_one_either_side():
    values = torch.full((10,), 0.25)
    lo, hi = torch.aminmax(values)
    expected = torch.histc(values, bins=4, min=-0.75, max=1.25)  # histc's own range for equal values
    assert torch.equal(histogram(values, lo, hi, 4), expected)


def test_compiled_training_builds_one_graph_per_mode_despite_ragged_batches(digits, monkeypatch):
    monkeypatch.setenv("TUNETUI_COMPILE_BACKEND", "eager")  # dynamo's graph capture without the C++ build
    torch._dynamo.reset()
    counters.clear()
    final_metrics(digits, compile=True, epochs=2)
    # the full training batch and the validation chunk; the ragged batch of 30 runs eagerly
    assert counters["stats"]["unique_graphs"] == 2


def test_l2_is_coupled_decay_of_twice_its_size(digits):
    # the gradient of l2 * ||w||^2 is 2 * l2 * w: SGD's coupled weight decay of 2 * l2, without clipping
    penalty = final_metrics(digits, optimizer="sgd", momentum=0.0, lr=0.05, l2=0.05, seed=2)
    decay = final_metrics(digits, optimizer="sgd", momentum=0.0, lr=0.05, weight_decay=0.1, seed=2)
    plain = final_metrics(digits, optimizer="sgd", momentum=0.0, lr=0.05, seed=2)
    assert penalty["train_loss"] == pytest.approx(decay["train_loss"], rel=1e-4)
    assert penalty["train_loss"] != pytest.approx(plain["train_loss"], rel=1e-4)
