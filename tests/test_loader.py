"""A task of data sets (LoaderTaskData): the loader path trains as the tensor path does, batch for batch,
and keeps every feature of the loop; its decoding workers end with the trial."""

from __future__ import annotations

import dataclasses
import multiprocessing
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import LoaderTaskData, TaskData, TaskError, load_task
from engine.trainer.train import train

CPU = torch.device("cpu")
EXAMPLES = Path(__file__).resolve().parent.parent / "studies" / "examples"


@pytest.fixture(scope="module")
def digits() -> TaskData:
    return load_task(TaskSpec(name="digits"), {}, CPU)


def as_sets(data: TaskData) -> LoaderTaskData:
    test_set = TensorDataset(data.x_test, data.y_test) if data.x_test is not None else None
    return LoaderTaskData(
        train_set=TensorDataset(data.x_train, data.y_train),
        val_set=TensorDataset(data.x_val, data.y_val),
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        test_set=test_set,
    )


def run(data, **overrides):
    reports = []
    config = TrainConfig(**{"epochs": 2, "batch_size": 64, "loader_workers": 0, **overrides})
    result = train(config, data, CPU, lambda report: reports.append(report) is not None)
    return result, reports


TIMINGS = ("epoch_time_s", "samples_per_s", "mem_peak_mb")


def same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a.keys() - set(TIMINGS):
        assert a[name] == pytest.approx(b[name], rel=1e-4, abs=1e-6), name


@pytest.mark.parametrize(
    "options",
    [
        {"clip_norm": 1.0, "scheduler": "cosine", "amp": "bf16"},
        {"scheduler": "onecycle", "l2": 1e-3, "dropout": 0.2, "early_stopping_patience": 1, "epochs": 4},
    ],
)
def test_data_sets_train_batch_for_batch_as_tensors_do(digits, options):
    # digits: 1438 training rows, 22 batches of 64 and a ragged one of 30, as the tensor path cuts them
    data = dataclasses.replace(digits, x_test=digits.x_val[:100], y_test=digits.y_val[:100])
    tensors, tensor_reports = run(data, **options)
    sets, set_reports = run(as_sets(data), **options)
    assert len(set_reports) == len(tensor_reports) and sets.stopped_early == tensors.stopped_early
    for ours, theirs in zip(set_reports, tensor_reports, strict=True):
        same_metrics(ours.metrics, theirs.metrics)
        assert [s["step"] for s in ours.steps] == [s["step"] for s in theirs.steps]
        assert [s["loss"] for s in ours.steps] == pytest.approx([s["loss"] for s in theirs.steps], rel=1e-4)
        assert [r["layer"] for r in ours.layers] == [r["layer"] for r in theirs.layers]
        assert [r["hist_json"] is not None for r in ours.layers] == [True] * len(ours.layers)
    assert sets.findings == tensors.findings
    assert sets.test == pytest.approx(tensors.test) and "test_acc" in sets.test


def test_a_regression_of_data_sets_reports_rmse_and_r2_as_tensors_do():
    data = load_task(TaskSpec(name="diabetes"), {}, CPU)
    # batches of 59: the last is never a single row, which the loop drops; every row is seen
    tensors, _ = run(data, loss="mse", batch_size=59, lr=1e-2)
    sets, _ = run(as_sets(data), loss="mse", batch_size=59, lr=1e-2)
    same_metrics(sets.metrics, tensors.metrics)
    assert sets.metrics["val_r2"] is not None and sets.metrics["train_r2"] is not None


class Noisy(Dataset):
    """Items made on demand, with a random jitter: a transform that runs in the loader's workers."""

    def __init__(self, rows: int):
        self.x = torch.randn(rows, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        x = self.x[i] + 0.01 * torch.randn(4)
        return x, int(self.x[i, 0] > 0)


def test_loader_workers_decode_reproducibly_and_end_with_the_trial():
    data = LoaderTaskData(train_set=Noisy(96), val_set=Noisy(32), num_classes=2, input_shape=(4,))
    first, _ = run(data, loader_workers=1, batch_size=16, seed=3)
    assert multiprocessing.active_children() == []  # the persistent workers ended with the trial
    again, _ = run(data, loader_workers=1, batch_size=16, seed=3)
    other, _ = run(data, loader_workers=1, batch_size=16, seed=4)
    # the workers' random jitter comes from the trial's seed
    assert again.metrics["train_loss"] == first.metrics["train_loss"]
    assert other.metrics["train_loss"] != first.metrics["train_loss"]


def test_an_image_folder_trains_through_the_shipped_example(tmp_path):
    write_images(tmp_path / "images", per_class=20, size=12)  # the example resizes them to 8x8
    task = TaskSpec(name="imagefolder_task:build", data_dir=str(tmp_path / "images"), val_fraction=0.25)
    data = load_task(task, {"size": 8}, CPU, spec_dir=EXAMPLES)
    assert isinstance(data, LoaderTaskData) and len(data.train_set) == 30 and len(data.val_set) == 10
    result, reports = run(data, epochs=8, batch_size=10, lr=1e-2, loader_workers=1)
    assert len(reports) == 8
    assert result.metrics["val_acc"] >= 0.9  # bright against dark squares: learnable in a few epochs


def write_images(root: Path, per_class: int, size: int = 8) -> None:
    """Two classes of small PNGs: dark and bright squares with noise."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for label, (name, base) in enumerate((("dark", 60), ("bright", 190))):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(per_class):
            noise = torch.randint(-40, 41, (size, size, 3), generator=generator)
            pixels = (base + noise).clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pixels, "RGB").save(folder / f"{label}_{k}.png")


@pytest.mark.parametrize(
    "sets, expected",
    [
        ({"train_set": [], "val_set": [(torch.zeros(4), 1)]}, "train_set is empty"),
        ({"train_set": [(torch.zeros(3), 1)], "val_set": [(torch.zeros(4), 1)]}, "x has shape (3,), not (4,)"),
        ({"train_set": [(torch.zeros(4), 0.5)], "val_set": [(torch.zeros(4), 1)]}, "y must be a class index"),
        ({"train_set": [[1, 2, 3]], "val_set": [(torch.zeros(4), 1)]}, "not an (x, y) pair"),
        ({"train_set": [(torch.zeros(4, dtype=torch.long), 1)], "val_set": [(torch.zeros(4), 1)]}, "float tensor"),
    ],
)
def test_unusable_data_sets_are_refused_with_the_reason(sets, expected):
    with pytest.raises(TaskError, match="unusable data") as refused:
        LoaderTaskData(**sets, num_classes=2, input_shape=(4,)).check("mine")
    assert expected in str(refused.value)


def test_loader_workers_is_a_training_parameter():
    assert TrainConfig(loader_workers=0).loader_workers == 0
    with pytest.raises(ValueError, match="loader_workers"):
        TrainConfig(loader_workers=-1)


def test_profile_runs_the_steps_of_a_task_of_data_sets(tmp_path):
    from engine.spec import load_spec
    from engine.trainer.profile import profile_trial

    write_images(tmp_path / "images", per_class=5)
    spec = load_spec(EXAMPLES / "imagefolder_task.toml")
    spec.task.data_dir = str(tmp_path / "images")
    spec.train["loader_workers"] = 0
    table = profile_trial(spec, {"lr": 1e-2}, steps=2, trace_path=tmp_path / "t.json", device="cpu", spec_dir=EXAMPLES)
    assert "2 training step(s) of batch 8 on cpu" in table  # 8 training images: one batch holds them


def test_a_trial_of_data_sets_stopped_by_its_pruner_ends_its_loader_workers():
    data = LoaderTaskData(train_set=Noisy(64), val_set=Noisy(16), num_classes=2, input_shape=(4,))
    config = TrainConfig(epochs=5, batch_size=16, loader_workers=1)
    result = train(config, data, CPU, lambda report: report.epoch == 2)  # pruned after epoch 2
    assert result.epochs_run == 2
    assert multiprocessing.active_children() == []
