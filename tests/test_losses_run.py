"""The engine loop's losses run for real: `tunetui run` in a subprocess, its coordinator and a worker, 2 trials
of 2 epochs. A regression (diabetes, mse and huber) reports RMSE, MAE and R2 and is tuned on val_rmse; a
binary task with bce_logits reports accuracy."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import optuna
import pytest

from tests.conftest import run_cli
from tests.helpers_run import StoreView, tunetui_here
from tui.data import StudyWatcher, Want
from tui.study_model import StudyModel
from tui.table_columns import TableColumns

pytestmark = pytest.mark.usefixtures("no_stray_processes")
REGRESSION_METRICS = ["train_rmse", "train_mae", "train_r2", "val_rmse", "val_mae", "val_r2"]

SPEC = """
[study]
name = "{name}"
metric = "{metric}"
direction = "{direction}"
value = "last"

[budget]
n_trials = 2

[sampler]
kind = "grid"

[pruner]
kind = "none"

[task]
name = "{task}"

[train]
epochs = 2
batch_size = 64
lr = 0.003
{train}
[space.loss]
type = "categorical"
choices = {losses}
"""


def run(tmp_path: Path, name: str, task: str, metric: str, direction: str, losses: list[str], train: str = "",
        space: str = ""):  # fmt: skip
    spec = tmp_path / f"{name}.toml"
    choices = "[" + ", ".join(f'"{loss}"' for loss in losses) + "]"
    spec.write_text(SPEC.format(name=name, task=task, metric=metric, direction=direction, losses=choices,
                                train=train) + space, encoding="utf-8")  # fmt: skip
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return url, optuna.load_study(study_name=name, storage=url).trials, StoreView(url)


def test_a_regression_with_mse_and_huber_is_tuned_on_val_rmse(tmp_path):
    url, trials, store = run(tmp_path, "diabetes", "diabetes", "val_rmse", "minimize", ["mse", "huber"])
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert sorted(t.params["loss"] for t in trials) == ["huber", "mse"]
    for t in trials:
        # standardized targets: an MLP after 2 epochs does better than the mean (rmse 1) and worse than 0
        assert 0.3 < t.value < 1.2
        epochs = store.rows("SELECT epoch, train_loss, val_loss, val_acc FROM tt_epoch WHERE trial_number = :n "
                            "ORDER BY epoch", n=t.number)  # fmt: skip
        assert [e[0] for e in epochs] == [1, 2]
        assert all(e[1] is not None and e[2] is not None and e[3] is None for e in epochs)  # no accuracy
        log = " ".join(r[0] for r in store.rows("SELECT line FROM tt_log WHERE trial_number = :n", n=t.number))
        assert "val_rmse=" in log and "val_r2=" in log and "val_acc" not in log
        # every reported metric is kept per epoch, and shown: show --json, show --trial, the CSV export
        extra = [json.loads(r[0]) for r in store.rows("SELECT extra_json FROM tt_epoch WHERE trial_number = :n "
                                                      "ORDER BY epoch", n=t.number)]  # fmt: skip
        assert [list(e) for e in extra] == [[*REGRESSION_METRICS, "params"]] * 2  # the model's size every epoch
        assert extra[-1]["val_rmse"] == pytest.approx(t.value)  # value = "last"
        shown = json.loads(tunetui_here("show", "diabetes", "--trial", str(t.number), "--json", storage=url).stdout)
        assert [{k: e[k] for k in (*REGRESSION_METRICS, "params")} for e in shown["epochs"]] == extra
        table = tunetui_here("show", "diabetes", "--trial", str(t.number), storage=url, env={"COLUMNS": "250"}).stdout
        assert all(name in table for name in REGRESSION_METRICS) and f"{extra[0]['val_r2']:.4f}" in table
    best = json.loads(tunetui_here("show", "diabetes", "--json", storage=url).stdout)["best"]
    assert best["metrics"]["val_rmse"] == pytest.approx(best["value"]) and "val_r2" in best["metrics"]
    rows = list(csv.DictReader(io.StringIO(tunetui_here("export", "diabetes", "--format", "csv", storage=url).stdout)))
    for row in rows:
        assert float(row["final_val_rmse"]) == pytest.approx(float(row["value"]))
        assert all(row[f"final_{name}"] for name in REGRESSION_METRICS) and row["final_val_acc"] == ""
    # the workbench's trial table: a column per metric of the last epoch, val_rmse being the value column's
    watcher, model, columns = StudyWatcher(url, "diabetes"), StudyModel("diabetes"), TableColumns()
    delta = watcher.poll(Want())
    watcher.close()
    model.apply(delta)
    assert model.objective_metrics == ("val_rmse",)  # as the run recorded the study
    assert all(t.metrics["val_rmse"] == pytest.approx(t.value) and "val_acc" not in t.metrics for t in delta.trials)
    columns.objective_metrics = model.objective_metrics
    columns.fit(delta.trials)
    assert [c.key for c in columns.all() if c.key.startswith("metric:")] == [
        f"metric:{name}" for name in ("val_loss", "val_mae", "val_r2", "params", "train_loss", "train_mae", "train_r2",
                                      "train_rmse")]  # fmt: skip


def test_bce_logits_trains_a_binary_task_and_reports_accuracy(tmp_path):
    url, trials, store = run(tmp_path, "cancer", "breast_cancer", "val_acc", "maximize", ["bce_logits"],
                             train="label_smoothing = 0.1\n",
                             space='[space.batch_size]\ntype = "categorical"\nchoices = [32, 64]\n')  # fmt: skip
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        assert t.params["loss"] == "bce_logits" and 0.8 < t.value <= 1.0
        last = store.rows("SELECT val_acc, train_acc, val_loss FROM tt_epoch WHERE trial_number = :n AND epoch = 2",
                          n=t.number)[0]  # fmt: skip
        assert last[0] == pytest.approx(t.value) and 0.5 < last[1] <= 1.0 and math.isfinite(last[2])
