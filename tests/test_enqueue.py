"""Notes, enqueued copies, retries and remedies (engine/notes.py, engine/enqueue.py, engine/remedy.py): the
pure rules in-process, the writes on real stores (SQLite and PostgreSQL, built by tests/tui/builders.py), and
the refusal on stores tunetui only reads (made by Optuna alone: SQLite, journal, PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import tomllib

import optuna
import pytest

from engine.enqueue import (
    copy_plan,
    editable_params,
    enqueue,
    overrides_from,
    remedy_plan,
    retry_plan,
    study_spec,
)
from engine.export import best_spec_toml, export_rows, write_csv
from engine.notes import NOTE_MAX, write_note
from engine.remedy import remedy_for
from engine.space import suggest
from engine.spec import parse_spec
from engine.store import Store, StoreError
from tests.conftest import fresh_postgres_database
from tests.helpers_run import tunetui_here
from tests.test_optuna_only_store import file_bytes, tables
from tests.tui.builders import SPEC_PATH, build_study

SPEC = parse_spec(SPEC_PATH.read_text())  # digits_mlp: lr 3e-4..3e-2 log, width 64/128/256, [train] relu, kaiming
TANH_SPEC = parse_spec(SPEC_PATH.read_text().replace('activation = "relu"', 'activation = "tanh"')
                       .replace('init = "kaiming"\n', ""))  # fmt: skip
PARAMS = {"lr": 1e-3, "layers": 2, "width": 128, "dropout": 0.1, "weight_decay": 1e-4, "batch_size": 64,
          "optimizer": "adamw"}  # fmt: skip


# ---------------------------------------------------------------- remedies (pure)


@pytest.mark.parametrize(
    ("kinds", "current", "changes", "labels"),
    [
        (["vanishing_gradients"], {"activation": "tanh", "init": "default"},
         {"activation": "relu", "init": "kaiming"}, ("relu + kaiming init",)),
        (["lr_too_high"], {"lr": 0.02}, {"lr": 0.002}, ("lr/10",)),
        (["exploding_gradients", "lr_too_high"], {"lr": 0.02}, {"lr": 0.002}, ("lr/10",)),  # once, not /100
        (["overfitting"], {"dropout": 0.1, "weight_decay": 0.0}, {"dropout": 0.3}, ("dropout +0.2",)),
        (["overfitting"], {"dropout": 0.4, "weight_decay": 0.0}, {"dropout": 0.5}, ("dropout +0.2",)),
        (["overfitting"], {"dropout": 0.5, "weight_decay": 0.0}, {"weight_decay": 1e-4}, ("weight_decay x10",)),
        (["overfitting"], {"dropout": 0.6, "weight_decay": 0.01}, {"weight_decay": 0.1}, ("weight_decay x10",)),
        (["vanishing_gradients"], {"activation": "relu", "init": "kaiming"}, {}, ()),  # already so
        (["lr_too_low", "underfitting"], {"lr": 0.001}, {}, ()),  # several causes: no single change
    ],
)  # fmt: skip
def test_each_finding_has_its_remedy(kinds, current, changes, labels):
    remedy = remedy_for([{"kind": k} for k in kinds], current)
    assert remedy.changes == pytest.approx(changes) and remedy.labels == labels


def test_a_remedy_inside_the_space_is_a_param_and_outside_it_an_override_that_is_not_sampled():
    inside = remedy_plan(SPEC, 4, {**PARAMS, "lr": 1e-2}, {}, [{"kind": "lr_too_high"}])
    assert inside.params["lr"] == pytest.approx(1e-3) and inside.overrides == {}
    assert inside.origin == "remedy of #4: lr/10"

    outside = remedy_plan(SPEC, 4, PARAMS, {}, [{"kind": "lr_too_high"}])  # 1e-4 < the space's 3e-4
    assert "lr" not in outside.params and outside.overrides == {"lr": pytest.approx(1e-4)}
    (change,) = outside.changes
    assert (change.old, change.new) == (1e-3, pytest.approx(1e-4)) and "outside the search space" in change.how
    assert change.line().startswith("lr: 0.001 -> 0.0001")

    fixed = remedy_plan(TANH_SPEC, 4, PARAMS, {}, [{"kind": "vanishing_gradients"}])
    assert fixed.overrides == {"activation": "relu", "init": "kaiming"} and fixed.params == PARAMS
    assert {c.name: c.how for c in fixed.changes} == {"activation": "override: fixed in [train]",
                                                      "init": "override: not in the spec"}  # fmt: skip

    with pytest.raises(ValueError, match="no remedy to apply"):
        remedy_plan(SPEC, 4, PARAMS, {}, [{"kind": "vanishing_gradients"}])  # the spec has relu + kaiming


def test_a_copy_refuses_values_outside_the_space_naming_every_problem():
    texts = {"lr": "0.5", "width": "100", "layers": "2.5", "optimizer": "rmsprop", "dropout": "x"}
    plan, problems = copy_plan(SPEC, 3, PARAMS, {}, texts)
    assert plan is None and len(problems) == 5
    joined = "\n".join(problems)
    for expected in ("lr: 0.5 is outside the search space (float 0.0003..0.03 log)", "width: '100' is not one of 64, 128, 256",
                     "layers: '2.5' is not a whole number", "optimizer: 'rmsprop' is not one of adamw, adam, sgd",
                     "dropout: 'x' is not a number"):  # fmt: skip
        assert expected in joined

    # a page pasted into a field (5000 digits: int() refuses them) is quoted in 40 characters, not whole
    plan, problems = copy_plan(SPEC, 3, PARAMS, {}, {"layers": "9" * 5000, "optimizer": "x" * 5000})
    assert problems == [f"layers: '{'9' * 40}…' is not a whole number",
                        f"optimizer: '{'x' * 40}…' is not one of adamw, adam, sgd"]  # fmt: skip

    plan, problems = copy_plan(SPEC, 3, PARAMS, {"activation": "relu"}, {"lr": "0.005", "width": "256"})
    assert problems == [] and plan.params == {**PARAMS, "lr": 0.005, "width": 256}
    assert plan.origin == "copy of #3, edited: lr 0.001 -> 0.005, width 128 -> 256" and plan.overrides == {"activation": "relu"}
    assert [p.name for p in editable_params(SPEC, PARAMS)] == list(PARAMS)  # the spec's order
    assert editable_params(SPEC, PARAMS)[0].bounds == "float 0.0003..0.03 log"


def test_a_retry_keeps_params_and_overrides_and_refuses_a_space_that_moved():
    plan = retry_plan(SPEC, 9, PARAMS, {"lr": 1e-5})
    assert (plan.params, plan.overrides, plan.origin) == (PARAMS, {"lr": 1e-5}, "retry of #9")
    with pytest.raises(ValueError, match="#9's gone: not a dimension"):
        retry_plan(SPEC, 9, {**PARAMS, "gone": 1}, {})


def test_overrides_are_applied_instead_of_sampled_and_checked_as_data():
    study = optuna.create_study()
    trial = study.ask()
    params = suggest(trial, SPEC, {"lr": 1e-5, "activation": "tanh"})
    assert params["lr"] == 1e-5 and params["activation"] == "tanh"
    assert "lr" not in trial.params and "width" in trial.params  # the trial never claims the lr it did not use
    for bad, match in (("lr", "not a table"), ({"os.system": 1}, "neither a training value"), ({"lr": [1]}, "plain value")):
        with pytest.raises(ValueError, match=match):
            overrides_from(bad, SPEC)
    assert overrides_from(None, SPEC) == {}
    with pytest.raises(ValueError, match="recorded no spec"):
        study_spec({})


# ---------------------------------------------------------------- into real stores


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"), prefix="enqueue")
    build_study(url, n_trials=4)
    return url


def test_notes_go_on_finished_trials_and_studies_cleaned_and_bounded(store_url):
    store = Store(store_url, create=False)
    try:
        sid = store.study_id("digits_mlp")
        study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
        assert study.trials[0].state.is_finished()
        hostile = "lr too \x1b[31mhigh[/b]\x07\n" + "x" * 2000
        assert write_note(store, sid, 0, hostile) == ("lr too [31mhigh[/b]\n" + "x" * 2000)[:NOTE_MAX]
        write_note(store, sid, None, "  baseline study  ")
        assert store.trial_attrs(sid, 0)["note"].startswith("lr too [31mhigh[/b]\n")
        assert len(store.trial_attrs(sid, 0)["note"]) == NOTE_MAX
        assert store.study_attrs(sid)["note"] == "baseline study"
        write_note(store, sid, 0, "second thought")  # replaced, not added
        assert optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage()).trials[0].user_attrs["note"] == "second thought"
        write_note(store, sid, 0, "   ")  # empty: removed
        assert "note" not in store.trial_attrs(sid, 0)
        with pytest.raises(StoreError, match="no trial #99"):
            write_note(store, sid, 99, "nope")
    finally:
        store.close()


def test_an_enqueued_plan_is_a_waiting_trial_with_its_params_origin_and_overrides(store_url):
    store = Store(store_url, create=False)
    try:
        plan = remedy_plan(SPEC, 1, PARAMS, {}, [{"kind": "lr_too_high"}])
        number = enqueue(store, "digits_mlp", plan)
        assert number == 4
        trial = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage()).trials[number]
        assert trial.state == optuna.trial.TrialState.WAITING
        assert trial.system_attrs["fixed_params"] == plan.params and "lr" not in plan.params
        assert trial.user_attrs == {"origin": "remedy of #1: lr/10", "overrides": {"lr": pytest.approx(1e-4)}}
        write_note(store, store.study_id("digits_mlp"), number, "try \x1bthis")
        exported = {r["number"]: r for r in export_rows(store, "digits_mlp")}[number]  # no silent mix in exports
        assert (exported["origin"], exported["note"], exported["param_lr"]) == ("remedy of #1: lr/10", "try this", None)
        assert exported["overrides"] == {"lr": pytest.approx(1e-4)}
        out = io.StringIO()
        write_csv(list({r["number"]: r for r in export_rows(store, "digits_mlp")}.values()), None, out)
        (row,) = [r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["number"] == str(number)]
        assert json.loads(row["overrides"]) == {"lr": pytest.approx(1e-4)} and row["origin"] == "remedy of #1: lr/10"
        shown = tunetui_here("show", "digits_mlp", "--trial", str(number), storage=store_url).stdout
        for line in ("note: try this", "enqueued: remedy of #1: lr/10", "overrides (trained with, not sampled): lr=0.0001"):
            assert line in shown, shown
    finally:
        store.close()


def test_the_best_spec_of_a_remedy_trial_keeps_the_overrides_it_trained_with(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    build_study(url, n_trials=3)
    store = Store(url, create=False)
    try:
        study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
        params = {k: v for k, v in study.trials[0].params.items() if k != "lr"}
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: v for k, v in study.trials[0].distributions.items() if k != "lr"},
            value=0.999, user_attrs={"origin": "remedy of #0: lr/10", "overrides": {"lr": 1e-4, "activation": "tanh"}}))  # fmt: skip
        train = tomllib.loads(best_spec_toml(store, "digits_mlp"))["train"]
    finally:
        store.close()
    assert (train["lr"], train["activation"], train["width"]) == (1e-4, "tanh", params["width"])


def test_stores_tunetui_only_reads_refuse_notes_and_enqueues_and_stay_unchanged(optuna_store):
    before = tables(optuna_store), file_bytes(optuna_store)
    store = Store(optuna_store, create=False)
    try:
        sid = store.study_id("plain")
        with pytest.raises(StoreError, match="only reads it|read-only") as refused:
            write_note(store, sid, 0, "a note")
        assert "nothing was written" in str(refused.value)
        with pytest.raises(StoreError, match="nothing was written"):
            write_note(store, sid, None, "a study note")
        plan = copy_plan(SPEC, 0, PARAMS, {}, {})[0]
        with pytest.raises(StoreError, match="nothing was written"):
            enqueue(store, "plain", plan)
    finally:
        store.close()
    assert (tables(optuna_store), file_bytes(optuna_store)) == before
