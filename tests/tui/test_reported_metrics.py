"""Metrics beyond the engine's columns in the workbench: the Curves chart of the study's own metric and the
Detail view's last-epoch metrics (names from the store are text, never markup or terminal bytes)."""

from __future__ import annotations

from rich.console import Console

from engine.store.queries import TrialRow
from tui.widgets.curves import charts_for
from tui.widgets.diagnosis import trial_detail

EPOCHS = {3: [{"epoch": e, "train_loss": 1 / e, "val_loss": 2 / e, "train_rmse": 0.9 / e, "val_rmse": 1.0 / e,
               "val_r2": 0.1 * e} for e in (1, 2)]}  # fmt: skip


def test_the_accuracy_chart_plots_the_studys_own_metric_and_its_train_twin():
    chart = charts_for("selected", [3], EPOCHS, metric="val_rmse")["acc"]
    assert chart.title == "val_rmse #3"
    assert [(s.label, list(s.ys)) for s in chart.series] == [("train", [0.9, 0.45]), ("val", [1.0, 0.5])]
    compared = charts_for("compare", [3, 4], {**EPOCHS, 4: EPOCHS[3]}, metric="val_r2")["acc"]
    assert [s.label for s in compared.series] == ["#3 val", "#3 train", "#4 val", "#4 train"]
    assert list(compared.series[0].ys) == [0.1, 0.2] and list(compared.series[1].ys) == [None, None]  # no train_r2
    # a built-in metric keeps the accuracy chart
    assert charts_for("selected", [3], EPOCHS, metric="val_loss")["acc"].title == "accuracy #3"


def test_an_own_metric_name_is_made_safe_for_the_chart_title():
    assert charts_for("selected", [3], EPOCHS, metric="f1\x1b[31m")["acc"].title == "f1[31m #3"


def render(view) -> str:
    console = Console(width=100, record=True, color_system=None)
    console.print(view)
    return console.export_text()


def test_detail_lists_the_last_epochs_own_metrics():
    row = TrialRow(number=3, trial_id=4, state="COMPLETE", value=0.5, params={"lr": 0.01}, started=None,
                   finished=None, reason=None, epochs=2, flags=0)  # fmt: skip
    text = render(trial_detail(row, {}, [], None, EPOCHS[3] + [{"epoch": 3, "[red]x": 1.5}]))
    assert "metrics" in text and "[red]x" in text and "1.5" in text
    text = render(trial_detail(row, {}, [], None, EPOCHS[3]))
    assert "metrics" in text and "val_rmse" in text and "train_loss" not in text  # columns stay in Curves


def test_detail_titles_stay_on_one_line_above_a_narrow_table():
    row = TrialRow(number=3, trial_id=4, state="COMPLETE", value=0.5, params={"x": 1}, started=None,
                   finished=None, reason=None, epochs=0, flags=0)  # fmt: skip
    text = render(trial_detail(row, {}, [], None, [{"epoch": 4, "intermediate": 1.0}]))  # what trial.report wrote
    assert "metrics (epoch 4)" in text.splitlines(), text
