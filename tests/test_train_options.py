"""Every scheduler, optimizer, regularizer, AMP mode and model exercised by a real short run."""

from __future__ import annotations

import math

import pytest
import torch

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.optim import build_optimizer
from engine.trainer.tasks import TaskData, load_task
from engine.trainer.tasks.vision import random_crop_flip
from engine.trainer.train import train

CPU = torch.device("cpu")
STEPS_PER_EPOCH = 23  # digits: 1438 training rows in batches of 64


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec(name="digits"), {}, CPU)


def run(data, **overrides):
    reports = []
    config = TrainConfig(**{"epochs": 2, "batch_size": 64, **overrides})
    result = train(config, data, CPU, lambda report: reports.append(report) is not None)
    steps = [row for report in reports for row in report.steps]
    return result, reports, steps


def step_lrs(steps):
    return {row["step"]: row["lr"] for row in steps}


# ---------------------------------------------------------------- schedules


def cyclic_reference(iteration, base, peak, up, mode, gamma):
    """torch.optim.lr_scheduler.CyclicLR's documented formula (step_size_down = step_size_up)."""
    cycle = math.floor(1 + iteration / (2 * up))
    x = abs(iteration / up - 2 * cycle + 1)
    scale = {"triangular": 1.0, "triangular2": 1 / (2 ** (cycle - 1)), "exp_range": gamma**iteration}[mode]
    return base + (peak - base) * max(0.0, 1 - x) * scale


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_lr_in_step_telemetry_matches_torchs_definition(digits, mode):
    _, _, steps = run(
        digits, epochs=4, scheduler="cyclic", lr=0.01, base_lr=1e-3, max_lr=1e-2, step_size_up=7,
        cyclic_mode=mode, cyclic_gamma=0.99, step_every=1,
    )  # fmt: skip
    assert len(steps) == 4 * STEPS_PER_EPOCH
    for row in steps:
        expected = cyclic_reference(row["step"] - 1, 1e-3, 1e-2, 7, mode, 0.99)
        assert row["lr"] == pytest.approx(expected, rel=1e-6), row["step"]
    peaks = [row["step"] for row in steps if row["lr"] == pytest.approx(max(r["lr"] for r in steps))]
    assert peaks[0] == 8  # the lr used by step 8 is the first peak (iteration 7)


def test_cyclic_defaults_cycle_over_two_epochs(digits):
    _, _, steps = run(digits, epochs=4, scheduler="cyclic", lr=0.02, step_every=1)
    lrs = step_lrs(steps)
    assert lrs[1] == pytest.approx(0.002)  # base_lr defaults to lr / 10
    assert lrs[1 + 2 * STEPS_PER_EPOCH] == pytest.approx(0.02)  # max_lr (= lr) after step_size_up steps
    assert lrs[1 + 4 * STEPS_PER_EPOCH - 1] == pytest.approx(0.002 + 0.018 / (2 * STEPS_PER_EPOCH), rel=1e-5)


def test_onecycle_warms_to_max_then_anneals(digits):
    _, reports, steps = run(digits, epochs=3, scheduler="onecycle", lr=0.01, pct_start=0.3, step_every=1)
    lrs = [row["lr"] for row in steps]
    total = 3 * STEPS_PER_EPOCH
    assert lrs[0] == pytest.approx(0.01 / 25)
    peak = max(range(total), key=lrs.__getitem__)
    assert abs(peak - (0.3 * total - 1)) <= 1 and lrs[peak] == pytest.approx(0.01, rel=1e-3)
    assert lrs[-1] < 1e-4
    assert len(reports) == 3  # all of its steps run without OneCycleLR complaining


def test_cosine_with_warmup(digits):
    _, reports, steps = run(digits, epochs=4, scheduler="cosine", warmup_epochs=1, lr=0.01, step_every=1)
    lrs = step_lrs(steps)
    assert lrs[1] == pytest.approx(0.01 / STEPS_PER_EPOCH)
    assert lrs[STEPS_PER_EPOCH // 2] == pytest.approx(0.01 * (STEPS_PER_EPOCH // 2) / STEPS_PER_EPOCH)
    assert lrs[STEPS_PER_EPOCH + 1] == pytest.approx(0.01)  # warmup over, cosine starts at its top
    halfway = STEPS_PER_EPOCH + 1 + (3 * STEPS_PER_EPOCH) // 2
    assert lrs[halfway] == pytest.approx(0.005, rel=0.05)
    assert reports[-1].metrics["lr"] < 1e-4
    after_warmup = list(lrs.values())[STEPS_PER_EPOCH:]
    assert all(b <= a for a, b in zip(after_warmup, after_warmup[1:], strict=False))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (dict(scheduler="none"), [0.01] * 5),
        (dict(scheduler="step", step_size=2, gamma=0.5), [0.01, 0.01, 0.005, 0.005, 0.0025]),
        (dict(scheduler="multistep", milestones=[1, 4], gamma=0.1), [0.01, 0.001, 0.001, 0.001, 0.0001]),
    ],
)
def test_epoch_schedules(digits, schedule, expected):
    _, reports, _ = run(digits, epochs=5, lr=0.01, **schedule)
    assert [r.metrics["lr"] for r in reports] == pytest.approx(expected)


def test_plateau_halves_lr_when_val_loss_stalls(digits):
    _, reports, _ = run(
        digits, epochs=4, optimizer="sgd", momentum=0.0, lr=1e-7, scheduler="plateau", plateau_patience=0,
        plateau_factor=0.5,
    )  # fmt: skip
    # the loss barely moves at this lr: after the first (best so far) epoch, each one halves the next one's lr
    assert [r.metrics["lr"] for r in reports] == pytest.approx([1e-7, 1e-7, 5e-8, 2.5e-8])


# ---------------------------------------------------------------- optimizers and regularizers


@pytest.mark.parametrize(
    "optimizer",
    [
        dict(optimizer="sgd", lr=0.05, momentum=0.9, nesterov=True),
        dict(optimizer="sgd", lr=0.1, momentum=0.0),
        dict(optimizer="adam", lr=3e-3, weight_decay=1e-4),
        dict(optimizer="adamw", lr=3e-3, weight_decay=1e-2, beta1=0.8, beta2=0.99),
    ],
)
def test_each_optimizer_learns(digits, optimizer):
    result, _, _ = run(digits, epochs=4, **optimizer)
    assert result.metrics["val_acc"] > 0.85


def test_optimizer_settings_reach_torch():
    weights = [torch.nn.Parameter(torch.ones(2, 2))]
    bias = [torch.nn.Parameter(torch.ones(2))]
    sgd = build_optimizer(
        TrainConfig(optimizer="sgd", nesterov=True, momentum=0.8, weight_decay=0.1),
        weights + bias,
        weights,
        CPU,
    )
    assert isinstance(sgd, torch.optim.SGD)
    assert [g["weight_decay"] for g in sgd.param_groups] == [0.1, 0.0]  # biases are not decayed
    assert sgd.param_groups[0]["nesterov"] and sgd.param_groups[0]["momentum"] == 0.8
    adam = build_optimizer(TrainConfig(optimizer="adam", beta1=0.7, beta2=0.9), weights, weights, CPU)
    assert type(adam) is torch.optim.Adam and adam.param_groups[0]["betas"] == (0.7, 0.9)
    adamw = build_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.3), weights, weights, CPU)
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.3


def test_coupled_and_decoupled_decay_differ(digits):
    adam, _, _ = run(digits, epochs=1, optimizer="adam", weight_decay=0.1)
    adamw, _, _ = run(digits, epochs=1, optimizer="adamw", weight_decay=0.1)
    assert adam.metrics["train_loss"] != adamw.metrics["train_loss"]


def weight_norm(reports):
    return sum(row["weight_norm"] ** 2 for row in reports[-1].layers) ** 0.5


@pytest.mark.parametrize(
    "regularizer", [dict(l2=0.05), dict(weight_decay=5.0), dict(optimizer="sgd", lr=0.05, weight_decay=0.05)]
)
def test_decay_and_l2_shrink_the_weights(digits, regularizer):
    base = {"epochs": 3, **({"optimizer": "sgd", "lr": 0.05} if regularizer.get("optimizer") else {})}
    _, plain, _ = run(digits, **base)
    _, shrunk, _ = run(digits, **{**base, **regularizer})
    assert weight_norm(shrunk) < 0.9 * weight_norm(plain)


def test_label_smoothing_keeps_the_train_loss_up(digits):
    sharp, _, _ = run(digits, epochs=4, lr=3e-3)
    smooth, _, _ = run(digits, epochs=4, lr=3e-3, label_smoothing=0.3)
    assert smooth.metrics["train_loss"] > sharp.metrics["train_loss"] + 0.3
    assert smooth.metrics["val_acc"] > 0.85  # val loss and accuracy are measured without smoothing


def test_dropout_and_batch_norm_train(digits):
    result, _, _ = run(digits, epochs=3, dropout=0.3, batch_norm=True, layers=3)
    assert result.metrics["val_acc"] > 0.85


def test_clipping_is_counted_and_the_norm_is_the_pre_clip_one(digits):
    _, reports, steps = run(digits, epochs=1, clip_norm=0.05, step_every=1)
    assert reports[0].metrics["clip_frac"] > 0.9
    assert all(row["clipped"] == (row["grad_norm"] > 0.05) for row in steps)
    assert max(row["grad_norm"] for row in steps) > 0.1  # measured before clipping


def test_early_stopping_stops_on_a_stalled_val_loss(digits):
    result, reports, _ = run(digits, epochs=10, early_stopping_patience=2, min_delta=10.0)
    assert result.stopped_early and result.epochs_run == 3 and len(reports) == 3
    patient, _, _ = run(digits, epochs=4, early_stopping_patience=2, min_delta=0.0, lr=3e-3)
    assert not patient.stopped_early and patient.epochs_run == 4


# ---------------------------------------------------------------- precision, compile, telemetry switch


def test_fp16_uses_a_grad_scaler_and_records_its_scale(digits):
    result, _, steps = run(digits, amp="fp16", step_every=1)
    assert result.metrics["val_acc"] > 0.8
    assert all(row["amp_scale"] == 65536.0 for row in steps[:5])
    assert all(row["skipped"] in (0, 1) for row in steps)


def test_fp16_overflow_skips_steps_and_lowers_the_scale(digits):
    # inputs 30x larger: the forward pass fits fp16, but the first scaled gradients overflow
    loud = TaskData(digits.x_train * 30, digits.y_train, digits.x_val * 30, digits.y_val, 10, (64,))
    _, _, steps = run(loud, epochs=1, amp="fp16", step_every=1, init="kaiming", layers=3, width=256)
    skipped = [row["step"] for row in steps if row["skipped"]]
    assert skipped and skipped[0] == 1
    assert steps[0]["amp_scale"] == 65536.0
    assert steps[-1]["amp_scale"] == 65536.0 / 2 ** len(skipped)  # halved once per skipped step


def test_bf16_needs_no_scaler(digits):
    result, _, steps = run(digits, amp="bf16")
    assert result.metrics["val_acc"] > 0.8
    assert all(row["amp_scale"] is None and row["skipped"] == 0 for row in steps)


def test_auto_precision_is_fp32_on_cpu(digits):
    auto, _, _ = run(digits, amp="auto", seed=5)
    off, _, _ = run(digits, amp="off", seed=5)
    assert auto.metrics["train_loss"] == off.metrics["train_loss"]


def test_compile_runs_the_same_training(digits, monkeypatch):
    monkeypatch.setenv("TUNETUI_COMPILE_BACKEND", "eager")  # dynamo tracing without the C++ build
    compiled, reports, _ = run(digits, compile=True, seed=1)
    eager, _, _ = run(digits, compile=False, seed=1)
    assert compiled.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=1e-4)
    assert [row["layer"] for row in reports[0].layers] == ["fc1", "fc2", "out"]


@pytest.mark.slow
def test_compile_with_inductor(digits):
    compiled, _, _ = run(digits, compile=True, epochs=1, seed=1)
    eager, _, _ = run(digits, compile=False, epochs=1, seed=1)
    assert compiled.metrics["train_loss"] == pytest.approx(eager.metrics["train_loss"], rel=1e-3)


def test_telemetry_off_keeps_metrics_but_drops_samples(digits):
    result, reports, steps = run(digits, telemetry=False)
    assert steps == [] and all(r.layers == [] for r in reports)
    assert result.metrics["val_acc"] > 0.8 and result.metrics["grad_norm"] is None
    clipped, reports, _ = run(digits, telemetry=False, clip_norm=1.0)
    assert reports[0].metrics["grad_norm"] > 0


def test_histograms_off_keeps_norms(digits):
    _, reports, _ = run(digits, histograms=False)
    assert all(row["hist_json"] is None and row["grad_norm"] > 0 for row in reports[0].layers)


# ---------------------------------------------------------------- a conv net with augmentation


def test_resnet_with_device_augmentation_learns_a_visual_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 3, 12, 12, generator=g)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()  # brightness of the red channel survives crops and flips
    calls = []

    def augment(batch, config):
        calls.append(batch.shape)
        return random_crop_flip(batch, config, padding=2)

    data = TaskData(
        x[:128], y[:128], x[128:], y[128:], num_classes=2, input_shape=(3, 12, 12), augment=augment
    )
    result, reports, _ = run(
        data, model="resnet", width=8, layers=2, epochs=6, lr=3e-3, batch_size=32, augment=True
    )
    assert len(calls) == 6 * 4 and calls[0] == (32, 3, 12, 12)
    assert result.metrics["val_acc"] > 0.7
    names = [row["layer"] for row in reports[0].layers]
    assert names[0] == "stem.0" and names[-1] == "head"
    _, _, _ = run(data, model="resnet", width=8, layers=1, epochs=1, augment=False)
    assert len(calls) == 24  # augment = false leaves the batches alone


def test_a_task_can_build_its_own_model():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = (x.sum(1) > 0).long()
    built = []

    def build(config):
        built.append(config.width)
        return torch.nn.Linear(4, 2)

    data = TaskData(x[:48], y[:48], x[48:], y[48:], num_classes=2, input_shape=(4,), build_model=build)
    result, reports, _ = run(data, epochs=3, width=7, lr=0.05)
    assert built == [7]
    assert [row["layer"] for row in reports[0].layers] == ["Linear"]
