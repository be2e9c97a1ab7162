"""The training loop on digits: metrics, telemetry shapes, reproducibility, stopping, failures."""

from __future__ import annotations

import json
import math

import pytest
import torch

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import load_task
from engine.trainer.telemetry import LAYER_COLUMNS, STEP_COLUMNS
from engine.trainer.train import EPOCH_COLUMNS, TrialFailed, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec(name="digits"), {}, CPU)


def run(data, **overrides):
    reports = []
    config = TrainConfig(**{"epochs": 3, "batch_size": 64, **overrides})
    result = train(config, data, CPU, lambda report: reports.append(report) is not None)
    return result, reports


def test_a_typical_config_learns_digits(digits):
    result, reports = run(
        digits, epochs=20, lr=3e-3, batch_size=128, scheduler="cosine", init="kaiming", clip_norm=5.0
    )
    assert result.epochs_run == 20 and len(reports) == 20
    assert result.metrics["val_acc"] >= 0.96
    assert result.best["val_acc"] >= result.metrics["val_acc"]
    assert not result.stopped_early


def test_reports_carry_every_column(digits):
    _, reports = run(digits, step_every=5)
    first = reports[0]
    assert first.epoch == 1
    assert set(first.metrics) == {*EPOCH_COLUMNS, "params"}  # latency_ms only when measure_latency
    assert all(set(row) == set(STEP_COLUMNS) for row in first.steps)
    # 1438 rows / 64 = 22 full batches + 30: 23 steps, every 5th kept (1, 6, 11, 16, 21)
    assert [row["step"] for row in first.steps] == [1, 6, 11, 16, 21]
    assert [row["step"] for row in reports[1].steps][0] == 26
    assert [row["layer"] for row in first.layers] == ["fc1", "fc2", "out"]
    for row in first.layers:
        assert set(row) == set(LAYER_COLUMNS)
        hist = json.loads(row["hist_json"])
        assert len(hist["edges"]) == 33 and len(hist["counts"]) == 32
        assert row["grad_norm"] > 0 and row["weight_norm"] > 0
    # every gradient value of a small layer; a fixed sample of 4096 from a larger one
    counts = [sum(json.loads(row["hist_json"])["counts"]) for row in first.layers]
    assert counts == [4096, 4096, 128 * 10]


def test_same_config_reproduces(digits):
    a, _ = run(digits, seed=3, dropout=0.1)
    b, _ = run(digits, seed=3, dropout=0.1)
    c, _ = run(digits, seed=4, dropout=0.1)
    assert a.metrics["train_loss"] == b.metrics["train_loss"]
    assert a.metrics["train_loss"] != c.metrics["train_loss"]


def test_on_epoch_true_stops_and_train_returns(digits):
    config = TrainConfig(epochs=10)
    result = train(config, digits, CPU, lambda report: report.epoch == 2)
    assert result.epochs_run == 2 and not result.stopped_early


def test_huge_lr_fails_with_nan_loss(digits):
    with pytest.raises(TrialFailed) as err:
        run(digits, optimizer="sgd", lr=100.0, momentum=0.9, init="kaiming", layers=3)
    assert err.value.reason == "nan_loss"
    assert err.value.hint


def test_out_of_memory_becomes_trial_failed(digits, monkeypatch):
    monkeypatch.setenv("TUNETUI_FAIL_ALLOC_AT_STEP", "30")
    epochs = []
    with pytest.raises(TrialFailed) as err:
        train(TrainConfig(epochs=3), digits, CPU, lambda report: epochs.append(report.epoch) is not None)
    assert err.value.reason == "oom"
    assert err.value.hint == "try a smaller batch_size"
    assert epochs == [1]  # 23 steps per epoch: step 30 is in epoch 2


def test_metrics_are_finite_numbers(digits):
    result, _ = run(digits)
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s", "samples_per_s"):
        assert math.isfinite(result.metrics[name])
