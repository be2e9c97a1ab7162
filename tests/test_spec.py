"""Spec parsing: the shipped specs load, and each kind of bad input gets one clear message with its path."""

from __future__ import annotations

import optuna
import pytest

from engine.space import build_pruner, build_sampler, grid_size, suggest
from engine.spec import SpecError, StudySpec, condition_holds, load_spec, parse_spec
from engine.spec_text import find_line
from tests.conftest import STUDIES
from tests.helpers_run import tunetui_here

HEAD = '[study]\nname = "t"\n'


def test_every_shipped_spec_validates():
    specs = sorted(STUDIES.rglob("*.toml"))
    assert specs, "studies/ has no spec"
    for path in specs:
        spec = load_spec(path)
        assert isinstance(spec, StudySpec)
        spec.train_config({})  # the fixed part alone is a valid training config


def test_default_spec_has_the_documented_shape():
    spec = load_spec(STUDIES / "digits_mlp.toml")
    assert spec.study.name == "digits_mlp"
    assert spec.budget.n_trials == 30
    assert spec.sampler.kind == "tpe" and spec.pruner.kind == "median"
    assert spec.space["dropout_2"].when == {"layers": {"ge": 3}}
    assert spec.space["momentum"].when == {"optimizer": "sgd"}


def test_minimal_spec_gets_defaults():
    spec = parse_spec(HEAD)
    assert spec.study.direction == "maximize" and spec.study.metric == "val_acc"
    assert spec.task.name == "digits" and spec.sampler.kind == "tpe"
    assert spec.train_config({}).epochs == 10


BAD_SPECS = [
    # (name, toml body after the [study] head or full text, expected path, expected words)
    ("toml syntax", "[study]\nname = \n", "", "not valid TOML"),
    ("missing study", '[budget]\nn_trials = 3\n', "study", "required but missing"),
    ("bad study name", '[study]\nname = "has spaces!"\n', "study.name", "should match pattern"),
    ("unknown top key", HEAD + "[bogus]\nx = 1\n", "bogus", "unknown key"),
    ("unknown study key", '[study]\nname = "t"\ncolour = "red"\n', "study.colour", "unknown key"),
    ("bad direction", '[study]\nname = "t"\ndirection = "up"\n', "study.direction", "'maximize' or 'minimize'"),
    ("bad metric", '[study]\nname = "t"\nmetric = "f1"\n', "study.metric", "val_acc"),
    ("any metric needs an own loop", '[study]\nname = "t"\nmetric = "val_f1"\n', "study.metric",
     "any other name needs a loop of your own ([task] loop)"),
    ("a metric that is no name", '[study]\nname = "t"\nmetric = "val rmse"\n[task]\nloop = "m:f"\n',
     "study.metric", "should match pattern"),
    ("a loop that is no module:function", HEAD + '[task]\nloop = "loop.py"\n', "task.loop", "should match pattern"),
    ("a loop and a task name", HEAD + '[task]\nname = "mnist"\nloop = "m:f"\n', "task",
     "give `loop` or `name`, not both"),
    ("a loop and the default task's name", HEAD + '[task]\nname = "digits"\nloop = "m:f"\n', "task",
     "give `loop` or `name`, not both"),
    ("negative trials", HEAD + "[budget]\nn_trials = 0\n", "budget.n_trials", "greater than or equal to 1"),
    ("bad sampler kind", HEAD + '[sampler]\nkind = "bayes"\n', "sampler", "unknown kind 'bayes'"),
    ("sampler option of another kind", HEAD + '[sampler]\nkind = "random"\nn_startup_trials = 3\n',
     "sampler.n_startup_trials", "unknown key"),
    ("bad pruner", HEAD + '[pruner]\nkind = "early"\n', "pruner.kind", "'median'"),
    ("unknown train key", HEAD + "[train]\nlearning_rate = 0.1\n", "train.learning_rate",
     "unknown training parameter"),
    ("bad fixed value", HEAD + '[train]\noptimizer = "lion"\n', "train.optimizer", "'adamw', 'adam' or 'sgd'"),
    ("unknown dimension", HEAD + '[space.lrr]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n', "space.lrr",
     "unknown training parameter"),
    ("dimension without type", HEAD + "[space.lr]\nlow = 0.1\nhigh = 0.2\n", "space.lr", "needs a 'type' key"),
    ("dimension bad type", HEAD + '[space.lr]\ntype = "real"\nlow = 0.1\nhigh = 0.2\n', "space.lr",
     "unknown kind 'real'"),
    ("low above high", HEAD + '[space.lr]\ntype = "float"\nlow = 0.5\nhigh = 0.1\n', "space.lr",
     "must not exceed high"),
    ("log with non-positive low", HEAD + '[space.lr]\ntype = "float"\nlow = 0.0\nhigh = 0.1\nlog = true\n',
     "space.lr", "log scale needs low > 0"),
    ("log with step", HEAD + '[space.lr]\ntype = "float"\nlow = 0.1\nhigh = 0.5\nlog = true\nstep = 0.1\n',
     "space.lr", "cannot be combined"),
    ("bound outside the parameter's range", HEAD + '[space.dropout]\ntype = "float"\nlow = 0.0\nhigh = 1.5\n',
     "space.dropout.high", "not a valid dropout"),
    ("categorical choice invalid", HEAD + '[space.activation]\ntype = "categorical"\nchoices = ["relu", "swish"]\n',
     "space.activation.choices", "'swish' is not a valid activation"),
    ("empty choices", HEAD + '[space.activation]\ntype = "categorical"\nchoices = []\n',
     "space.activation.choices", "at least 1 item"),
    ("duplicate choices", HEAD + '[space.width]\ntype = "categorical"\nchoices = [64, 64]\n',
     "space.width.choices", "unique"),
    ("condition on a later dimension",
     HEAD + '[space.dropout_2]\ntype = "float"\nlow = 0.0\nhigh = 0.5\nwhen = { layers = { ge = 2 } }\n'
     '[space.layers]\ntype = "int"\nlow = 1\nhigh = 3\n',
     "space.dropout_2.when.layers", "declared above"),
    ("grid with a continuous float", HEAD + '[sampler]\nkind = "grid"\n[space.lr]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n',
     "space.lr.step", "needs a step"),
    ("a regression metric for a classification loss", '[study]\nname = "t"\nmetric = "val_rmse"\n[train]\nloss = "bce_logits"\n[task]\nname = "breast_cancer"\n',
     "study.metric", "expected one of val_acc, val_loss, train_acc, train_loss, params, latency_ms for a classification loss (bce_logits) "
     "(got 'val_rmse'); val_rmse is reported by regression losses (mse, huber)"),
    ("a classification metric for a regression loss", '[study]\nname = "t"\nmetric = "val_acc"\n[task]\nname = "diabetes"\n[train]\nloss = "huber"\n',
     "study.metric", "val_acc is reported by classification losses (cross_entropy, bce_logits)"),
    ("a regression task without a regression loss", '[study]\nname = "t"\nmetric = "val_rmse"\n[task]\nname = "diabetes"\n',
     "task.name", "task 'diabetes' is a regression (float targets): expected loss mse or huber (got cross_entropy)"),
    ("a classification task with a regression loss", HEAD + '[train]\nloss = "mse"\n', "train.loss",
     "task 'digits' is a classification: expected loss cross_entropy or bce_logits (got mse)"),
    ("bce_logits on ten classes", HEAD + '[train]\nloss = "bce_logits"\n', "train.loss",
     "bce_logits needs a task with two classes (breast_cancer, or one of your own); 'digits' has more"),
    ("losses of both kinds", HEAD + '[space.loss]\ntype = "categorical"\nchoices = ["cross_entropy", "mse"]\n',
     "space.loss.choices", "mixes classification and regression losses"),
    ("an unknown loss", HEAD + '[train]\nloss = "l1"\n', "train.loss", "'cross_entropy', 'mse', 'huber' or 'bce_logits'"),
    ("bad device", HEAD + '[devices]\ndevice = "tpu"\n', "devices.device", "expected auto, cpu, cuda"),
    ("wrong value type", HEAD + '[budget]\nn_trials = "many"\n', "budget.n_trials",
     'expected an integer, got a string ("many")'),
    ("a checkpoint of an own loop", '[study]\nname = "t"\nmetric = "val_f1"\n[task]\nloop = "m:train"\n[train]\ncheckpoint = true\n',
     "train.checkpoint", "a loop of its own ([task] loop) is not checkpointed"),
    ("an infinite terminator threshold", HEAD + "[budget]\nstop_when_improvement_below = inf\n",
     "budget.stop_when_improvement_below", "finite number"),
    ("int dimension with float bound", HEAD + '[space.layers]\ntype = "int"\nlow = 1.5\nhigh = 3\n',
     "space.layers.low", "expected an integer, got a number (1.5)"),
]  # fmt: skip


@pytest.mark.parametrize("name,text,path,words", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_gets_a_clear_message(name, text, path, words):
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "study.toml")
    paths = [issue.path for issue in caught.value.issues]
    assert path in paths, f"expected an issue at {path!r}, got {paths}: {caught.value}"
    message = str(caught.value)
    assert words in message, message
    assert message.startswith("study.toml")
    assert "Traceback" not in message


TYPED = HEAD + """seed = "3"
[budget]
n_trials = true
timeout_s = true
[devices]
memory_fraction = "0.5"
[train]
epochs = "3"
lr = true
batch_norm = 1
[space.width]
type = "int"
low = 16.0
high = 64
[space.dropout]
type = "float"
low = 0
high = true
"""


def test_toml_types_are_checked_not_coerced(tmp_path):
    """`n_trials = true` was read as 1, `epochs = "3"` as 3, `high = true` as 1.0: each is now a problem of
    its own (file, line, field path, the type expected and the one found), all printed by `validate` at once,
    exit 2. An integer where a number is expected stays fine (`low = 0` above)."""
    spec = tmp_path / "typed.toml"
    spec.write_text(TYPED)
    result = tunetui_here("validate", str(spec), storage=None)
    assert result.returncode == 2, result
    assert result.stderr.splitlines() == [
        f'{spec}:3: study.seed: expected an integer, got a string ("3"): write it without quotes',
        f"{spec}:5: budget.n_trials: expected an integer, got a boolean (true)",
        f"{spec}:6: budget.timeout_s: expected a number, got a boolean (true)",
        f'{spec}:8: devices.memory_fraction: expected a number, got a string ("0.5"): write it without quotes',
        f'{spec}:10: train.epochs: expected an integer, got a string ("3"): write it without quotes',
        f"{spec}:11: train.lr: expected a number, got a boolean (true)",
        f"{spec}:12: train.batch_norm: expected true or false, got an integer (1)",
        f"{spec}:15: space.width.low: expected an integer, got a number (16.0)",
        f"{spec}:20: space.dropout.high: expected a number, got a boolean (true)",
    ]


@pytest.mark.parametrize(("dimension", "says"), [
    ('[space.layers]\ntype = "categorical"\nchoices = [1, 2.0]\n', "space.layers.choices: 2.0 is not a valid "
     "layers: expected an integer"),
    ('[space.batch_norm]\ntype = "categorical"\nchoices = [0, 1]\n', "space.batch_norm.choices: 0 is not a "
     "valid batch_norm: expected true or false"),
    ('[space.epochs]\ntype = "float"\nlow = 1\nhigh = 3\n', "space.epochs.low: 1.0 is not a valid epochs: "
     "expected an integer"),  # suggest_float's 1.7 epochs would fail every trial
])  # fmt: skip
def test_a_dimension_whose_values_have_the_wrong_type_is_refused(dimension, says):
    with pytest.raises(SpecError) as caught:
        parse_spec(HEAD + dimension, "s.toml")
    assert says in str(caught.value)


def test_integers_fill_number_fields():
    spec = parse_spec(HEAD + "[budget]\ntimeout_s = 60\n[train]\nlr = 1\nclip_norm = 5\n[space.dropout]\n"
                      'type = "float"\nlow = 0\nhigh = 0.5\n')  # fmt: skip
    assert spec.budget.timeout_s == 60.0 and spec.train_config({}).lr == 1.0 and spec.space["dropout"].low == 0.0


def test_errors_carry_the_line_of_the_field():
    text = HEAD + '\n[space.lr]\ntype = "float"\nlow = 0.5\nhigh = 0.1\n\n[train]\nepochs = -3\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "s.toml")
    by_path = {i.path: i for i in caught.value.issues}
    assert by_path["space.lr"].line == 4  # the [space.lr] header


def test_train_value_error_points_at_its_line():
    text = HEAD + "[train]\nepochs = 0\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "s.toml")
    assert caught.value.issues[0].path == "train.epochs"
    assert caught.value.issues[0].line == 4
    assert str(caught.value).startswith("s.toml:4: train.epochs:")


def test_every_problem_at_once_in_reading_order_with_the_closest_known_name():
    """A wrong field no longer hides the unknown training keys behind it (the model check ran only once
    every field was valid), and each unknown key names the closest one the format knows."""
    text = (HEAD + 'direciton = "maximize"\n[budget]\nn_trials = -3\n[train]\nepoch = 3\n'
            '[space.lrr]\ntype = "float"\nlow = 1e-4\nhigh = 0.1\nlgo = true\n'
            '[space.dropout]\ntype = "float"\nlow = 0.0\nhigh = 0.5\nwhen = { width = 3 }\n')  # fmt: skip
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "s.toml")
    found = [(i.line, i.path, i.message) for i in caught.value.issues]
    assert [(line, path) for line, path, _ in found] == [
        (3, "study.direciton"), (5, "budget.n_trials"), (7, "train.epoch"), (8, "space.lrr"),
        (12, "space.lrr.lgo"), (17, "space.dropout.when.width"),
    ]  # fmt: skip
    hints = {path: message for _, path, message in found}
    assert hints["study.direciton"].endswith("did you mean 'direction'?")
    assert hints["train.epoch"].endswith("did you mean 'epochs'?")
    assert hints["space.lrr"].endswith("did you mean 'lr'?")
    assert hints["space.lrr.lgo"].endswith("did you mean 'log'?")  # a swap of two letters beats 'low'
    assert "did you mean" not in hints["budget.n_trials"]


def test_find_line_locates_nested_keys():
    text = '[study]\nname = "x"\n[space.lr]\ntype = "float"\nlow = 1\n'
    assert find_line(text, ("space", "lr", "low")) == 5
    assert find_line(text, ("study", "name")) == 2
    assert find_line(text, ("nothing",)) is None


def test_unreadable_and_non_utf8_files_are_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(tmp_path / "missing.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_spec(binary)


@pytest.mark.parametrize(
    "condition,value,expected",
    [
        ({"ge": 2}, 3, True), ({"ge": 2}, 1, False), ("sgd", "sgd", True), ("sgd", "adam", False),
        (["sgd", "adam"], "adam", True), ({"in": [1, 2]}, 3, False), ({"gt": 1, "lt": 4}, 4, False),
        ({"ge": 2}, "text", False),
    ],
)  # fmt: skip
def test_condition_semantics(condition, value, expected):
    assert condition_holds(condition, value) is expected


def test_conditional_dimensions_are_sampled_only_when_their_condition_holds():
    spec = load_spec(STUDIES / "digits_mlp.toml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_sgd = seen_other = 0
    for _ in range(60):
        trial = study.ask()
        params = suggest(trial, spec)
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert ("dropout_2" in params) == (params["layers"] >= 3)
        assert 3e-4 <= params["lr"] <= 3e-2
        spec.train_config(params)  # every sample is a valid training config
        study.tell(trial, 0.0)
        seen_sgd += params["optimizer"] == "sgd"
        seen_other += params["optimizer"] != "sgd"
    assert seen_sgd and seen_other


@pytest.mark.parametrize("kind", ["tpe", "random", "cmaes", "qmc", "gp"])
def test_each_sampler_builds_and_samples(kind):
    text = (
        HEAD
        + f'[sampler]\nkind = "{kind}"\n[space.lr]\ntype = "float"\nlow = 0.001\nhigh = 0.1\nlog = true\n'
    )
    spec = parse_spec(text)
    study = optuna.create_study(sampler=build_sampler(spec), pruner=build_pruner(spec))
    for _ in range(3):
        trial = study.ask()
        value = suggest(trial, spec)["lr"]
        assert 0.001 <= value <= 0.1
        study.tell(trial, value)


def test_grid_sampler_covers_the_grid():
    text = HEAD + (
        '[sampler]\nkind = "grid"\n[space.lr]\ntype = "float"\nlow = 0.1\nhigh = 0.3\nstep = 0.1\n'
        '[space.optimizer]\ntype = "categorical"\nchoices = ["adam", "sgd"]\n'
    )
    spec = parse_spec(text)
    assert grid_size(spec) == 6
    study = optuna.create_study(sampler=build_sampler(spec))
    seen = set()
    for _ in range(6):
        trial = study.ask()
        params = suggest(trial, spec)
        seen.add((round(params["lr"], 6), params["optimizer"]))
        study.tell(trial, 0.0)
    assert len(seen) == 6


@pytest.mark.parametrize("kind", ["median", "percentile", "successive_halving", "hyperband", "none"])
def test_each_pruner_builds(kind):
    spec = parse_spec(HEAD + f'[pruner]\nkind = "{kind}"\n')
    assert isinstance(build_pruner(spec), optuna.pruners.BasePruner)


def test_user_task_may_declare_its_own_parameters():
    text = (
        HEAD
        + '[task]\nname = "mytask:build"\n[train]\nhidden = 3\n[space.noise]\ntype = "float"\nlow = 0\nhigh = 1\n'
    )
    spec = parse_spec(text)
    assert spec.task_params({"noise": 0.5, "lr": 0.1}) == {"hidden": 3, "noise": 0.5}
    assert spec.train_config({"noise": 0.5, "lr": 0.1}).lr == 0.1


def test_an_own_loop_may_name_any_metric_and_gets_every_parameter():
    spec = parse_spec(
        '[study]\nname = "t"\nmetric = "val_rmse"\ndirection = "minimize"\n[task]\nloop = "diabetes:train"\n'
        'params = { folds = 3 }\n[train]\nepochs = 4\nwidth_factor = 2\n'
        '[space.lr]\ntype = "float"\nlow = 1e-4\nhigh = 1e-1\n[space.hidden]\ntype = "int"\nlow = 8\nhigh = 64\n'
    )
    assert spec.study.metric == "val_rmse" and spec.task.loop == "diabetes:train"
    assert spec.train_config({"lr": 0.01}).epochs == 4
    # the loop trains itself: [train] keys the engine knows (epochs) and sampled ones (lr) reach it too
    assert spec.task_params({"lr": 0.01, "hidden": 16}) == {
        "folds": 3, "epochs": 4, "width_factor": 2, "lr": 0.01, "hidden": 16, "__metrics__": ["val_rmse"]
    }
