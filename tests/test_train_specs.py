"""The shipped study specs validate, and each one's trial trains on tiny files in its task's format."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import torch

from engine.space import suggest
from engine.spec import load_spec
from engine.trainer.tasks import clear_cache, load_task
from engine.trainer.train import train
from tests.test_tasks import write_cifar, write_mnist

STUDIES = Path(__file__).resolve().parents[1] / "studies"
SHIPPED = ["digits_mlp", "mnist_mlp", "cifar10_cyclic", "fashion_mnist", "diabetes_mlp"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_trains_one_epoch(name, tmp_path):
    spec = load_spec(STUDIES / f"{name}.toml")
    assert spec.study.name == name
    if spec.task.name in ("mnist", "fashion_mnist"):
        write_mnist(tmp_path, "MNIST" if spec.task.name == "mnist" else "FashionMNIST", n=60)
    elif spec.task.name == "cifar10":
        write_cifar(tmp_path, per_batch=12)
    task = spec.task.model_copy(update={"data_dir": str(tmp_path), "download": False, "subset": 48})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = suggest(study.ask(), spec)
    config = spec.train_config(params).model_copy(update={"epochs": 1, "batch_size": 16})
    clear_cache()
    data = load_task(task, spec.task_params(params), torch.device("cpu"))
    result = train(config, data, torch.device("cpu"), lambda report: False)
    assert result.epochs_run == 1 and math.isfinite(result.metrics[spec.study.metric])
    if "val_acc" in result.metrics:
        assert 0.0 <= result.metrics["val_acc"] <= 1.0
    clear_cache()


def test_shipped_image_specs_download_only_by_their_own_choice():
    for name in ("mnist_mlp", "cifar10_cyclic", "fashion_mnist"):
        assert load_spec(STUDIES / f"{name}.toml").task.download is True
    assert load_spec(STUDIES / "digits_mlp.toml").task.download is False
