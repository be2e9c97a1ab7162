"""Studies with several objectives (`[study] objectives`): the spec's rules, the identity that records the list,
each objective's value rule, the engine's model measures (params, latency_ms), and one real run through the
coordinator and a worker: two values per trial, the Pareto front in `show`, `export --best-spec` asking for a
front trial, the TensorBoard export of the measures read back, and a changed objective list refused."""

from __future__ import annotations

import json
import re

import optuna
import pytest
import torch

from engine.config import TrainConfig
from engine.identity import differences, study_identity
from engine.launch import UsageError, refuse_another_study
from engine.spec import SpecError, TaskSpec, load_spec, parse_spec
from engine.value import objective_values
from tests.conftest import run_cli
from tests.helpers_run import tunetui_here

TWO = 'objectives = [{ metric = "val_acc", direction = "maximize" }, { metric = "params", direction = "minimize" }]\n'


def spec_of(study: str = TWO, rest: str = "") -> str:
    return f'[study]\nname = "mo"\n{study}{rest}'


def problems(text: str) -> str:
    with pytest.raises(SpecError) as err:
        parse_spec(text, "mo.toml")
    return str(err.value)


def test_objectives_give_the_metrics_and_directions_and_turn_pruning_off():
    spec = parse_spec(spec_of())
    assert spec.study.metrics == ["val_acc", "params"] and spec.study.directions == ["maximize", "minimize"]
    assert spec.pruner.kind == "none"  # Optuna cannot prune several objectives: off when [pruner] is left out
    assert spec.study.summary() == "maximize val_acc, minimize params"
    single = parse_spec(spec_of('metric = "val_loss"\ndirection = "minimize"\n'))
    assert single.study.metrics == ["val_loss"] and single.pruner.kind == "median"


@pytest.mark.parametrize(
    ("study", "rest", "expected"),
    [
        (TWO + 'metric = "val_acc"\n', "", r"study\.metric: give `objectives` or `metric`/`direction`, not both"),
        (TWO, '[pruner]\nkind = "median"\n', r"pruner\.kind: a study with several objectives cannot prune"),
        (TWO, '[sampler]\nkind = "cmaes"\n', r"sampler\.kind: the cmaes sampler optimizes one objective"),
        (TWO, "[budget]\nstop_when_improvement_below = 0.01\n", r"budget\.stop_when_improvement_below: Optuna's "
         "terminator estimates the improvement left in one objective"),
        ('objectives = [{ metric = "val_acc", direction = "maximize" }]\n', "", r"list two or more objectives"),
        ('objectives = [{ metric = "val_acc", direction = "maximize" }, { metric = "val_acc", direction = '
         '"minimize" }]\n', "", r"study\.objectives\.1\.metric: 'val_acc' is named twice"),
        (TWO.replace("params", "val_f1"), "", r"study\.objectives\.1\.metric: expected one of .*params, latency_ms"),
    ],
)
def test_a_bad_objective_list_is_one_clear_problem(study, rest, expected):
    assert re.search(expected, problems(spec_of(study, rest)))


def test_the_model_measures_fit_any_loss_and_latency_is_timed_only_when_named():
    regression = parse_spec(spec_of(TWO.replace("val_acc", "val_rmse").replace('"maximize"', '"minimize"', 1),
                                    '[task]\nname = "diabetes"\n[train]\nloss = "mse"\n'))  # fmt: skip
    assert regression.study.metrics == ["val_rmse", "params"]
    assert not parse_spec(spec_of()).train_config({}).measure_latency
    timed = parse_spec(spec_of(TWO.replace("params", "latency_ms")))
    assert timed.train_config({}).measure_latency
    # a loop of its own reports whatever it measures: every objective's metric is checked in its reports
    loop = parse_spec(spec_of(TWO.replace("val_acc", "val_f1"), '[task]\nloop = "m:train"\n'))
    assert loop.task_params({})["__metrics__"] == ["val_f1", "params"]


def test_the_identity_records_the_objective_list_and_names_a_changed_one():
    single, two = parse_spec(spec_of()), parse_spec(spec_of())
    single = parse_spec(spec_of('metric = "val_acc"\n'))
    assert study_identity(two)["metrics"] == ["val_acc", "params"]
    assert study_identity(two)["directions"] == ["maximize", "minimize"]
    assert differences(study_identity(single), study_identity(two)) == [
        "directions maximize; this spec says maximize, minimize", "metrics val_acc; this spec says val_acc, params"]  # fmt: skip
    other = parse_spec(spec_of(TWO.replace("params", "latency_ms")))
    assert differences(study_identity(two), study_identity(other)) == [
        "metrics val_acc, params; this spec says val_acc, latency_ms"]  # fmt: skip


def test_each_objective_takes_its_value_by_the_rule_and_its_own_direction():
    curves = {"val_acc": {1: 0.5, 2: 0.9, 3: 0.7}, "params": {1: 300.0, 2: 100.0, 3: 200.0}}
    metrics, directions = ["val_acc", "params"], ["maximize", "minimize"]
    assert objective_values(curves, {}, metrics, directions, "best") == ([0.9, 100.0], [2, 2])
    assert objective_values(curves, {}, metrics, directions, "last") == ([0.7, 200.0], [3, 3])
    means, epochs = objective_values(curves, {}, metrics, directions, "mean_last_3")
    assert means == pytest.approx([0.7, 200.0]) and epochs == [3, 3]
    # a metric never reported per epoch: the final metrics, else no value (the trial fails no_metric)
    assert objective_values({"val_acc": {1: 0.5}}, {"params": 42.0}, metrics, directions, "last") == (
        [0.5, 42.0], [1, None])  # fmt: skip
    assert objective_values({"val_acc": {1: 0.5}}, {"params": float("nan")}, metrics, directions, "last")[0] == [
        0.5, None]  # fmt: skip


def test_the_engine_reports_the_parameter_count_and_times_inference_when_asked():
    from engine.trainer.models import build_model
    from engine.trainer.tasks import load_task
    from engine.trainer.train import train

    data = load_task(TaskSpec(name="digits", subset=300), {}, torch.device("cpu"))
    for measure in (False, True):
        reports = []
        config = TrainConfig(epochs=1, width=32, measure_latency=measure, telemetry=False)
        train(config, data, torch.device("cpu"), lambda r, kept=reports: kept.append(r) is not None)
        model = build_model(config, data.input_shape, data.num_classes)
        assert reports[0].metrics["params"] == sum(p.numel() for p in model.parameters())
        assert ("latency_ms" in reports[0].metrics) is measure
    assert 0 < reports[0].metrics["latency_ms"] < 10_000


def test_an_own_loop_must_report_every_objectives_metric():
    from engine.trainer.context import TrialContext
    from engine.trainer.train import TrialFailed

    sent = []
    ctx = TrialContext({}, torch.device("cpu"), TrainConfig(epochs=2), ["val_f1", "params"],
                       lambda *message: sent.append(message), lambda: False)  # fmt: skip
    assert ctx.report(1, {"val_f1": 0.5, "params": 10}) is False
    with pytest.raises(TrialFailed, match="report\\(epoch 2\\) has no 'params'"):
        ctx.report(2, {"val_f1": 0.6})
    assert len(sent) == 1 and ctx.failure.reason == "no_metric"


SPEC = """
[study]
name = "mo"
objectives = [{ metric = "val_acc", direction = "maximize" }, { metric = "params", direction = "minimize" }]
value = "last"

[budget]
n_trials = 2

[sampler]
kind = "grid"

[task]
name = "digits"

[train]
epochs = 1
batch_size = 64
measure_latency = true

[space.width]
type = "categorical"
choices = [16, 64]
"""


@pytest.mark.usefixtures("no_stray_processes")
def test_a_real_run_with_two_objectives_tells_two_values_shows_its_front_and_exports_a_front_trial(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    spec = tmp_path / "mo.toml"
    spec.write_text(SPEC, encoding="utf-8")
    url = f"sqlite:///{tmp_path}/store.db"
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--device", "cpu", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "objectives: maximize val_acc, minimize params" in result.stdout  # run's summary: the front

    study = optuna.load_study(study_name="mo", storage=url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_acc", "params"]
    assert study.user_attrs["tt_identity"]["metrics"] == ["val_acc", "params"]
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2 and all(len(t.values) == 2 for t in trials)
    from engine.store import Store

    store = Store(url, read_only=True)
    study_id = store.study_id("mo")
    for t in trials:  # each value is its metric's last epoch, as the store recorded it
        last = store.epochs(study_id, t.number)[-1]
        assert t.values == [last["val_acc"], last["params"]] and last["latency_ms"] > 0
    store.close()
    front = sorted(t.number for t in study.best_trials)  # Optuna's own front

    shown = tunetui_here("show", "mo", storage=url)  # reads and refusals: in this process
    assert shown.returncode == 0, shown.stderr
    assert "objectives: maximize val_acc, minimize params" in shown.stdout
    assert f"Pareto front: {len(front)} trial(s)" in shown.stdout
    as_json = json.loads(tunetui_here("show", "mo", "--json", storage=url).stdout)
    assert sorted(t["number"] for t in as_json["pareto_front"]) == front
    assert as_json["objectives"] == ["val_acc", "params"]

    out = tmp_path / "best.toml"
    refused = tunetui_here("export", "mo", "--best-spec", str(out), storage=url)
    assert refused.returncode == 2 and not out.exists()
    assert "name a trial of its Pareto front with --trial N" in refused.stderr
    assert all(f"#{n} (val_acc " in refused.stderr for n in front)
    written = tunetui_here("export", "mo", "--best-spec", str(out), "--trial", str(front[0]), storage=url)
    assert written.returncode == 0, written.stderr
    assert load_spec(out).study.metrics == ["val_acc", "params"]  # a runnable spec: it parses
    assert f"trial {front[0]} of mo" in out.read_text()

    boards = tmp_path / "tb"
    exported = tunetui_here("export", "mo", "--tensorboard", str(boards), storage=url)
    assert exported.returncode == 0, exported.stderr
    run = event_accumulator.EventAccumulator(str(boards / f"trial_{trials[0].number:04d}"), size_guidance={"scalars": 0})
    run.Reload()
    assert {"epoch/params", "epoch/latency_ms", "epoch/val_acc"} <= set(run.Tags()["scalars"])
    assert run.Scalars("epoch/params")[-1].value == trials[0].values[1]

    # the launch's check (before anything starts) on the study this run recorded
    changed = parse_spec(SPEC.replace('"params"', '"latency_ms"'))
    with pytest.raises(UsageError, match="metrics val_acc, params; this spec says val_acc, latency_ms"):
        refuse_another_study(url, changed)


def test_the_best_spec_of_a_named_trial(tmp_path):
    """One objective: `--trial N` writes any complete trial's spec. Several: only a Pareto-front trial's, and
    the refusal lists the front."""
    from engine.export import FrontTrialNeeded, best_spec_toml
    from engine.store import Store
    from tests.tui.builders import build_pareto_study, build_study

    url = f"sqlite:///{tmp_path}/store.db"
    build_study(url)  # 12 trials of digits_mlp: #5 pruned, #9 failed
    front = build_pareto_study(url)  # #0, #2, #4 on the front
    store = Store(url, read_only=True)
    try:
        assert "trial 3 of digits_mlp (value" in best_spec_toml(store, "digits_mlp", 3)
        with pytest.raises(FrontTrialNeeded, match="no complete trial 5"):
            best_spec_toml(store, "digits_mlp", 5)
        with pytest.raises(FrontTrialNeeded, match=r"front: #0 \(val_acc 0.8, params 1200\); #2 .*; #4 "):
            best_spec_toml(store, "pareto_mlp")
        with pytest.raises(FrontTrialNeeded, match="trial 1 is not on its Pareto front"):
            best_spec_toml(store, "pareto_mlp", 1)
        assert all(f"trial {n} of pareto_mlp" in best_spec_toml(store, "pareto_mlp", n) for n in front)
    finally:
        store.close()
    # the CLI never replaces a spec the user wrote without --force (it did, silently: even the spec it ran)
    from engine.cli import main

    mine = tmp_path / "mine.toml"
    mine.write_text("# my spec\n")
    assert main(["--storage", url, "export", "digits_mlp", "--best-spec", str(mine), "--trial", "3"]) == 2
    assert mine.read_text() == "# my spec\n"
    assert main(["--storage", url, "export", "digits_mlp", "--best-spec", str(mine), "--trial", "3", "--force"]) == 0
    assert "trial 3 of digits_mlp" in mine.read_text()


def test_show_of_a_study_with_several_objectives_has_no_improvement_and_no_values_for_a_failed_trial(tmp_path, capsys):
    from engine.cli import main

    url = f"sqlite:///{tmp_path}/mo.db"
    study = optuna.create_study(study_name="two", storage=url, directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 3.0], params={}, distributions={}))
    # was exit 0 with the estimate silently left out
    assert main(["--storage", url, "show", "two", "--improvement"]) == 2
    assert "--improvement: study 'two' has 2 objectives" in capsys.readouterr().err
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={}, distributions={}))
    assert main(["--storage", url, "show", "two", "--trial", "1"]) == 0
    assert "trial #1 FAIL values=-" in capsys.readouterr().out  # was "values=()"
