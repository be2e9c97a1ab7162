"""TensorBoard export of real training telemetry, read back with TensorBoard's own reader."""

from __future__ import annotations

import json

import pytest
import torch

from engine.config import TrainConfig
from engine.spec import TaskSpec
from engine.trainer.tasks import load_task
from engine.trainer.train import train

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def trial_rows(seed):
    data = load_task(TaskSpec(name="digits"), {}, torch.device("cpu"))
    reports = []
    train(
        TrainConfig(epochs=2, seed=seed), data, torch.device("cpu"), lambda r: reports.append(r) is not None
    )
    return {
        "epochs": [{"epoch": r.epoch, **r.metrics} for r in reports],
        "steps": [row for r in reports for row in r.steps],
        "layers": [{"epoch": r.epoch, **row} for r in reports for row in r.layers],
        "params": {"lr": 1e-3, "optimizer": "adamw", "seed": seed},
        "value": reports[-1].metrics["val_acc"],
    }


def test_scalars_and_histograms_per_trial(tmp_path):
    from engine.tensorboard_export import export_tensorboard

    trials = {0: trial_rows(0), 3: trial_rows(1), 4: {"epochs": [], "steps": [], "layers": []}}
    assert export_tensorboard(trials, tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial_0000", "trial_0003"]

    run = event_accumulator.EventAccumulator(
        str(tmp_path / "trial_0003"), size_guidance={"histograms": 0, "scalars": 0}
    )
    run.Reload()
    tags = run.Tags()
    assert {"epoch/val_acc", "epoch/train_loss", "step/loss", "layer_grad_norm/fc1"} <= set(tags["scalars"])
    val_acc = run.Scalars("epoch/val_acc")
    assert [e.step for e in val_acc] == [1, 2]
    assert val_acc[-1].value == pytest.approx(trials[3]["value"], rel=1e-6)
    assert [e.step for e in run.Scalars("step/loss")] == [row["step"] for row in trials[3]["steps"]]
    hist = run.Histograms("grad_hist/out")
    assert [h.step for h in hist] == [1, 2]
    counts = json.loads(trials[3]["layers"][-1]["hist_json"])["counts"]
    assert sum(hist[-1].histogram_value.bucket) == sum(counts) == 128 * 10
    assert (tmp_path / "trial_0003" / "hparams").is_dir()


def test_missing_tensorboard_is_a_clear_error(monkeypatch, tmp_path):
    import builtins

    from engine import tensorboard_export

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(tensorboard_export.TensorBoardMissing, match=r"pip install 'tunetui\[tensorboard\]'"):
        tensorboard_export.export_tensorboard({0: {"epochs": [{"epoch": 1, "val_acc": 0.5}]}}, tmp_path)


def test_a_study_in_the_store_exports(tmp_path):
    import optuna

    from engine.store import Store
    from engine.tensorboard_export import export_study_tensorboard

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    study = optuna.create_study(study_name="tb", storage=store.optuna_storage(), direction="maximize")
    rows = trial_rows(0)
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    study_id = store.study_id("tb")
    for epoch in rows["epochs"]:
        steps = [s for s in rows["steps"] if s["epoch"] == epoch["epoch"]]
        layers = [row for row in rows["layers"] if row["epoch"] == epoch["epoch"]]
        store.write_epoch(study_id, trial.number, epoch["epoch"], epoch, steps, layers)
    study.tell(trial, rows["value"])
    assert export_study_tensorboard(store, "tb", tmp_path / "tb") == 1
    run = event_accumulator.EventAccumulator(
        str(tmp_path / "tb" / "trial_0000"), size_guidance={"histograms": 0}
    )
    run.Reload()
    assert len(run.Scalars("epoch/val_acc")) == 2 and len(run.Histograms("grad_hist/fc1")) == 2
    with pytest.raises(ValueError, match="no study named 'nope'"):
        export_study_tensorboard(store, "nope", tmp_path / "x")
    store.close()


def test_every_reported_metric_beyond_the_columns_is_a_scalar(tmp_path):
    """A regression's val_rmse, the model's params, an own loop's names (tt_epoch.extra_json, spread into
    the rows): each is an `epoch/<name>` scalar, a name that could nest a tag made safe."""
    from engine.tensorboard_export import export_tensorboard

    epochs = [{"epoch": e, "val_loss": 1.0 / e, "val_rmse": 0.5 / e, "params": 1234.0, "val/f1": 0.1 * e}
              for e in (1, 2)]  # fmt: skip
    assert export_tensorboard({7: {"epochs": epochs}}, tmp_path) == 1
    run = event_accumulator.EventAccumulator(str(tmp_path / "trial_0007"), size_guidance={"scalars": 0})
    run.Reload()
    assert {"epoch/val_loss", "epoch/val_rmse", "epoch/params", "epoch/val_f1"} <= set(run.Tags()["scalars"])
    assert [(e.step, e.value) for e in run.Scalars("epoch/val_rmse")] == [(1, 0.5), (2, 0.25)]
    assert [e.value for e in run.Scalars("epoch/val_f1")] == pytest.approx([0.1, 0.2])
