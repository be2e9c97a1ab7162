"""The trial table's columns (tui/table_columns.py) and how a column sorts (tui/trial_cells.py), pure: one
column per reported metric, between the fixed columns and the parameters; the objectives' metrics are the
value column's."""

from __future__ import annotations

from engine.store import TrialRow
from tui.table_columns import TableColumns
from tui.trial_cells import best_first_descending, cell, sort_key


def trial(number: int, metrics: dict, **params) -> TrialRow:
    return TrialRow(number=number, trial_id=number + 1, state="COMPLETE", value=0.9, params=params, started=None,
                    finished=None, reason=None, epochs=3, flags=0, values=(0.9,), metrics=metrics)  # fmt: skip


def test_every_reported_metric_is_a_column_after_the_fixed_ones_and_before_the_parameters():
    columns = TableColumns()
    columns.objective_metrics = ("val_acc",)
    assert columns.fit([trial(0, {"train_loss": 0.3, "val_acc": 0.9, "val_loss": 0.35}, lr=0.01)])
    assert columns.fit([trial(1, {"latency_ms": 12.25, "val_f1": 0.875, "train_rmse": 1.5e-05}, width=64)])
    keys = [c.key for c in columns.all()]
    assert keys == ["number", "state", "value", "epochs", "duration", "flags", "metric:val_f1", "metric:val_loss",
                    "metric:latency_ms", "metric:train_loss", "metric:train_rmse", "param:lr", "param:width"]  # fmt: skip
    assert "val_acc" in columns.metrics  # the filter still knows it; the value column shows it
    widths = {c.key: (c.label, c.width) for c in columns.all()}
    # the header is the name the filter takes; the column as wide as its widest value (1.5e-05), at most 10
    assert widths["metric:val_f1"] == ("val_f1", 6) and widths["metric:train_rmse"] == ("train_rmse", 10)
    assert widths["metric:latency_ms"] == ("latency_ms", 10)
    assert not columns.fit([trial(2, {"val_f1": 0.5})])  # nothing new, nothing wider
    assert columns.fit([trial(3, {"val_f1": 1.23456e-05})])  # 1.235e-05: wider than its name
    assert {c.key: c.width for c in columns.all()}["metric:val_f1"] == 9


def test_a_study_optuna_alone_made_has_no_metric_columns():
    columns = TableColumns()
    columns.fit([trial(0, {}, lr=0.01)])
    assert [c.key for c in columns.all()][6:] == ["param:lr"]


def test_the_picker_says_what_a_metric_column_holds():
    columns = TableColumns()
    columns.fit([trial(0, {"val_f1": 0.8}, lr=0.01)])
    labels = dict(columns.picker(columns.all()))
    assert labels["metric:val_f1"] == "val_f1 (last epoch)" and labels["param:lr"] == "lr (parameter)"
    assert labels["flags"] == "!: diagnosis findings"


def test_a_metric_cell_is_the_last_epochs_value_and_sorts_best_first_where_its_name_says():
    row = trial(0, {"val_f1": 0.8, "latency_ms": None})
    assert cell(row, "metric:val_f1", 0.0) == 0.8 and cell(row, "metric:val_rmse", 0.0) is None
    assert sort_key(row, "metric:val_f1", 0.0) == (0, 0.8, "") and sort_key(row, "metric:latency_ms", 0.0) is None
    assert cell(trial(1, {}, val_f1="a param"), "param:val_f1", 0.0) == "a param"  # parameters stay apart
    higher = ["metric:val_acc", "metric:val_f1", "metric:test_r2", "metric:accuracy", "metric:val_AUC"]
    lower = ["metric:val_loss", "metric:val_rmse", "metric:latency_ms", "metric:params", "metric:val_mape"]
    assert all(best_first_descending(key, maximizing=False) for key in higher)
    assert not any(best_first_descending(key, maximizing=True) for key in lower)
    assert best_first_descending("value", maximizing=True) and not best_first_descending("value", maximizing=False)
    assert not best_first_descending("param:acc", maximizing=True)
