"""Diagnosis from real short trainings on digits: each problem is produced, then recognised."""

from __future__ import annotations

import pytest
import torch

from engine.config import TrainConfig
from engine.diagnose import KINDS, diagnose
from engine.spec import TaskSpec
from engine.trainer.tasks import load_task
from engine.trainer.train import TrialFailed, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec(name="digits"), {}, CPU)


@pytest.fixture(scope="module")
def digits_100():
    return load_task(TaskSpec(name="digits", subset=100), {}, CPU)


def findings_of(data, **config):
    try:
        return train(TrainConfig(**config), data, CPU, lambda report: False).findings
    except TrialFailed as failed:
        return failed.findings


def kinds(findings):
    return {f["kind"]: f["severity"] for f in findings}


def check_shape(findings):
    for f in findings:
        assert f["kind"] in KINDS
        assert f["severity"] in ("info", "warning", "error")
        assert isinstance(f["evidence"], dict) and f["evidence"]
        assert isinstance(f["remedy"], str) and len(f["remedy"]) > 20


def test_a_healthy_trial_has_no_findings(digits):
    findings = findings_of(digits, epochs=10, lr=3e-3, batch_size=128, scheduler="cosine", init="kaiming")
    assert findings == []


def test_deep_sigmoid_net_has_vanishing_gradients(digits):
    findings = findings_of(
        digits, epochs=3, layers=8, width=32, activation="sigmoid", optimizer="sgd", lr=0.05, momentum=0.0
    )
    check_shape(findings)
    assert kinds(findings) == {"vanishing_gradients": "error"}
    evidence = findings[0]["evidence"]
    assert evidence["first_layer"] == "fc1" and evidence["last_layer"] == "out"
    assert evidence["grad_norm_ratio"] < 1e-4


def test_huge_lr_explodes_and_is_too_high(digits):
    findings = findings_of(digits, epochs=3, optimizer="sgd", lr=30.0, momentum=0.9, clip_norm=1.0)
    check_shape(findings)
    assert kinds(findings) == {"exploding_gradients": "warning", "lr_too_high": "warning"}
    high = next(f for f in findings if f["kind"] == "lr_too_high")["evidence"]
    assert high["max_loss"] > 3 * high["first_loss"]


def test_nan_loss_is_an_error_finding(digits):
    findings = findings_of(
        digits, epochs=2, optimizer="sgd", lr=100.0, momentum=0.9, init="kaiming", layers=3
    )
    check_shape(findings)
    assert kinds(findings)["exploding_gradients"] == "error"
    assert kinds(findings)["lr_too_high"] == "error"
    assert "vanishing_gradients" not in kinds(findings)  # dead ReLUs after divergence are not the cause


def test_tiny_network_underfits(digits):
    findings = findings_of(digits, epochs=6, layers=1, width=1, lr=3e-3)
    check_shape(findings)
    assert kinds(findings) == {"underfitting": "warning"}
    assert findings[0]["evidence"]["train_acc"] < 0.5


def test_wide_unregularized_net_on_a_small_subset_overfits(digits_100):
    findings = findings_of(digits_100, epochs=60, layers=2, width=512, lr=1e-3, batch_size=32)
    check_shape(findings)
    assert kinds(findings) == {"overfitting": "warning"}
    evidence = findings[0]["evidence"]
    assert evidence["train_acc"] == 1.0 and evidence["acc_gap"] > 0.1
    assert "Add regularization" in findings[0]["remedy"]


def test_tiny_lr_makes_no_progress(digits):
    findings = findings_of(digits, epochs=6, optimizer="sgd", lr=1e-5, momentum=0.0)
    check_shape(findings)
    assert kinds(findings) == {"lr_too_low": "warning"}
    assert findings[0]["evidence"]["relative_progress"] < 0.05


def test_clipping_every_step_is_reported():
    epochs = [
        {
            "epoch": e,
            "train_loss": 2.0 - 0.1 * e,
            "train_acc": 0.9,
            "val_loss": 2.0 - 0.1 * e,
            "val_acc": 0.9,
            "clip_frac": 0.97,
        }
        for e in range(1, 4)
    ]
    findings = diagnose(epochs, [], [], TrainConfig(clip_norm=0.01), None)
    assert kinds(findings) == {"exploding_gradients": "warning"}
    assert findings[0]["evidence"]["clip_frac"] == pytest.approx(0.97)


def test_rising_val_loss_alone_is_information():
    losses = [1.0, 0.6, 0.5, 0.55, 0.62, 0.7]
    epochs = [
        {"epoch": e + 1, "train_loss": 1.0 / (e + 1), "train_acc": 0.9, "val_loss": v, "val_acc": 0.88}
        for e, v in enumerate(losses)
    ]
    findings = diagnose(epochs, [], [], TrainConfig(), None)
    assert kinds(findings) == {"overfitting": "info"}
    assert findings[0]["evidence"]["best_val_loss_epoch"] == 3


def test_no_telemetry_no_findings():
    assert diagnose([], [], [], TrainConfig(), None) == []


def test_a_loop_that_reports_no_accuracies_is_diagnosed_from_what_it_reports():
    # an own loop's regression: losses and val_rmse, no accuracies; the fit rules stand down instead of failing
    epochs = [{"epoch": e, "train_loss": 1.0 / e, "val_rmse": 2.0 / e, "lr": 0.01} for e in range(1, 6)]
    assert diagnose(epochs, [], [], TrainConfig(lr=0.01), None) == []
    stalled = [{"epoch": e, "train_loss": 1.0, "val_rmse": 1.0} for e in range(1, 6)]
    assert [f["kind"] for f in diagnose(stalled, [], [], TrainConfig(lr=0.01), None)] == ["lr_too_low"]
    no_loss = [{"epoch": e, "val_rmse": 1.0} for e in range(1, 6)]
    assert diagnose(no_loss, [], [], TrainConfig(lr=0.01), None) == []
