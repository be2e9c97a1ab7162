"""The engine loop's losses ([train] loss) and their metrics: exact values against numpy and sklearn on small
tensors, the checks that a loss fits its task, and the regression metrics of a real training run."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, mean_absolute_error, mean_squared_error, r2_score
from torch import nn

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.losses import Criterion, criterion_for, target_variance
from engine.trainer.tasks import TaskData, TaskError, load_task
from engine.trainer.train import train

CPU = torch.device("cpu")
GEN = torch.Generator().manual_seed(0)


def sums(criterion: Criterion, output: torch.Tensor, y: torch.Tensor) -> tuple[float, dict]:
    """The mean evaluation loss and the metrics, the way train() computes them from its device sums."""
    target = criterion.targets(y)
    loss = float(criterion.summed_loss(output, target)) / len(y)
    stats = [float(v) for v in criterion.stats(output, target).reshape(-1)]
    return loss, criterion.metrics("val", stats, len(y), float(target_variance(target)))


@pytest.mark.parametrize("outputs", [1, 3])
def test_regression_metrics_match_sklearn(outputs):
    y = torch.randn(7, outputs, generator=GEN) * 3 + 1
    output = y + torch.randn(7, outputs, generator=GEN)
    y_in = y.squeeze(1) if outputs == 1 else y  # a task's targets: one value per row, or a column per output
    loss, metrics = sums(Criterion("mse", outputs), output, y_in)
    truth, pred = y.numpy().astype(np.float64), output.numpy().astype(np.float64)
    assert loss == pytest.approx(mean_squared_error(truth, pred), rel=1e-5)
    assert metrics["val_rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, pred)), rel=1e-5)
    assert metrics["val_mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-5)
    assert metrics["val_r2"] == pytest.approx(r2_score(truth, pred, multioutput="variance_weighted"), rel=1e-5)
    assert set(metrics) == {"val_rmse", "val_mae", "val_r2"}


def test_huber_loss_matches_its_formula():
    y = torch.tensor([0.0, 1.0, 2.0, -3.0])
    output = torch.tensor([0.5, 3.0, 2.1, 1.0]).reshape(-1, 1)
    delta = 1.5
    error = np.abs(output.numpy().ravel() - y.numpy())
    expected = np.where(error <= delta, 0.5 * error**2, delta * (error - 0.5 * delta)).mean()
    loss, metrics = sums(Criterion("huber", 1, delta=delta), output, y)
    assert loss == pytest.approx(expected, rel=1e-6)
    assert float(Criterion("huber", 1, delta=delta).loss(output, y.reshape(-1, 1))) == pytest.approx(expected, rel=1e-6)
    assert metrics["val_mae"] == pytest.approx(error.mean(), rel=1e-6)


def test_bce_logits_loss_and_accuracy_match_numpy():
    y = torch.tensor([0, 1, 1, 0, 1])
    logits = torch.tensor([-2.0, 0.5, -0.1, 0.3, 4.0]).reshape(-1, 1)
    p = 1 / (1 + np.exp(-logits.numpy().ravel().astype(np.float64)))
    expected = -(y.numpy() * np.log(p) + (1 - y.numpy()) * np.log(1 - p)).mean()
    loss, metrics = sums(Criterion("bce_logits", 1), logits, y)
    assert loss == pytest.approx(expected, rel=1e-6)
    assert metrics == {"val_acc": pytest.approx(accuracy_score(y.numpy(), p > 0.5))}  # 3 of 5
    # label smoothing pulls the training targets towards 0.5
    smoothed = Criterion("bce_logits", 1, smoothing=0.2).loss(logits, y.float().reshape(-1, 1))
    soft = y.numpy() * 0.8 + 0.1
    assert float(smoothed) == pytest.approx(-(soft * np.log(p) + (1 - soft) * np.log(1 - p)).mean(), rel=1e-6)


def test_cross_entropy_loss_and_accuracy_match_numpy():
    y = torch.tensor([2, 0, 1, 1])
    logits = torch.randn(4, 3, generator=GEN)
    z = logits.numpy().astype(np.float64)
    log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss, metrics = sums(Criterion("cross_entropy", 3), logits, y)
    assert loss == pytest.approx(-log_p[np.arange(4), y.numpy()].mean(), rel=1e-6)
    assert metrics["val_acc"] == pytest.approx(accuracy_score(y.numpy(), z.argmax(1)))


def test_r2_is_none_for_constant_targets():
    _, metrics = sums(Criterion("mse", 1), torch.zeros(3, 1), torch.ones(3))
    assert metrics["val_r2"] is None and metrics["val_rmse"] == pytest.approx(1.0)


def tiny(num_classes: int, y: torch.Tensor) -> TaskData:
    x = torch.randn(len(y), 2, generator=GEN)
    return TaskData(x_train=x, y_train=y, x_val=x, y_val=y, num_classes=num_classes, input_shape=(2,))


@pytest.mark.parametrize(
    ("loss", "data", "words"),
    [
        ("mse", tiny(3, torch.tensor([0, 1, 2, 1])), "loss 'mse' needs a regression task"),
        ("huber", tiny(2, torch.tensor([0, 1, 0, 1])), "loss 'huber' needs a regression task"),
        ("cross_entropy", tiny(0, torch.randn(4)), "the task is a regression"),
        ("bce_logits", tiny(0, torch.randn(4)), "the task is a regression"),
        ("bce_logits", tiny(3, torch.tensor([0, 1, 2, 1])), "bce_logits' needs two classes; the task has 3"),
    ],
)
def test_a_loss_that_does_not_fit_the_task_is_refused(loss, data, words):
    with pytest.raises(TaskError, match=words):
        criterion_for(TrainConfig(loss=loss), data)


def test_output_width_follows_the_loss_and_the_targets():
    assert criterion_for(TrainConfig(loss="bce_logits"), tiny(2, torch.tensor([0, 1]))).outputs == 1
    assert criterion_for(TrainConfig(), tiny(2, torch.tensor([0, 1]))).outputs == 2
    assert criterion_for(TrainConfig(loss="mse"), tiny(0, torch.randn(4, 3))).outputs == 3


def test_regression_targets_must_be_floats():
    with pytest.raises(TaskError, match="must be float tensors"):
        tiny(0, torch.tensor([0, 1, 2, 3])).check("t")
    with pytest.raises(TaskError, match="at least 2, or 0 for a regression"):
        tiny(1, torch.tensor([0, 0])).check("t")


def test_label_smoothing_is_refused_for_a_regression_loss():
    with pytest.raises(ValueError, match="label_smoothing applies to class labels"):
        TrainConfig(loss="mse", label_smoothing=0.1)


@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_training_on_diabetes_reports_the_final_models_rmse_mae_and_r2(loss):
    data = load_task(TaskSpec(name="diabetes"), {}, CPU)
    assert data.num_classes == 0 and data.y_train.dtype == torch.float32
    models = []

    def build_model(config: TrainConfig) -> nn.Module:
        models.append(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1)))
        return models[-1]

    reports = []
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, loss=loss)
    result = train(config, replace(data, build_model=build_model), CPU, lambda r: reports.append(r) is not None)
    last = reports[-1].metrics
    assert "val_acc" not in last and "train_acc" not in last
    with torch.no_grad():
        pred = models[0].eval()(data.x_val).squeeze(1).numpy().astype(np.float64)
    truth = data.y_val.numpy().astype(np.float64)
    assert last["val_rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, pred)), rel=1e-4)
    assert last["val_mae"] == pytest.approx(mean_absolute_error(truth, pred), rel=1e-4)
    assert last["val_r2"] == pytest.approx(r2_score(truth, pred), rel=1e-4)
    assert {"train_rmse", "train_mae", "train_r2"} <= set(last)
    assert result.best["val_rmse"] == min(r.metrics["val_rmse"] for r in reports)  # rmse falls: its best is the least
    assert result.best["val_r2"] == max(r.metrics["val_r2"] for r in reports)
