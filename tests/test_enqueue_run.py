"""Enqueued trials in REAL coordinators (digits, 1 epoch, 1 worker): a remedy enqueued before a run and an
edited copy enqueued while that run is going (paused, then resumed) both run, with the values they carry,
as the stored params, the attrs and the lr the worker trained with (tt_epoch) show; and they count toward
the run's trials like sampled ones."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution

from engine.enqueue import copy_plan, enqueue, remedy_plan, study_spec
from engine.store import Store
from tests.helpers_run import StoreView, finish, start, tunetui_here, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]

LR = FloatDistribution(0.01, 0.1, log=True)  # a tenth of any lr of the space is below it: an override
SPEC = """
[study]
name = "eq"
direction = "maximize"
metric = "val_acc"
seed = 3

[sampler]
kind = "random"

[pruner]
kind = "none"

[task]
name = "digits"

[train]
epochs = 1
activation = "tanh"
histograms = false

[space.lr]
type = "float"
low = 0.01
high = 0.1
log = true
"""


def test_a_remedy_and_an_edited_copy_run_with_their_values(tmp_path):
    spec = tmp_path / "eq.toml"
    spec.write_text(SPEC)
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    store = Store(url)  # the study with one finished trial to start from, as an earlier run leaves it
    study = optuna.create_study(study_name="eq", storage=store.optuna_storage(), direction="maximize")
    study.set_user_attr("spec_toml", SPEC)
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.02}, distributions={"lr": LR}, value=0.5))
    sid = store.study_id("eq")
    recorded = study_spec(store.study_attrs(sid))
    (source,) = store.trials(sid)
    findings = [{"kind": "lr_too_high"}, {"kind": "vanishing_gradients"}]
    remedy = remedy_plan(recorded, 0, source.params, {}, findings)
    assert remedy.overrides == {"lr": pytest.approx(0.002), "activation": "relu", "init": "kaiming"}
    assert enqueue(store, "eq", remedy) == 1  # before the run: the next run takes it first

    coordinator = start(spec, url, "--trials", "3", "--workers", "1", log=tmp_path / "run.log")
    wait_for(lambda: view.heartbeat("eq") and view.heartbeat("eq")[0]["state"] == "running", 60, "the run")
    paused = tunetui_here("pause", "eq", storage=url)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    copy, problems = copy_plan(recorded, 0, source.params, {}, {"lr": "0.05"})
    assert problems == []
    copied = enqueue(store, "eq", copy)  # while the run goes on (paused): it must take this one too
    assert tunetui_here("resume", "eq", storage=url).returncode == 0
    assert finish(coordinator, 180) == 0, (tmp_path / "run.log").read_text()

    trials = {t.number: t for t in store.trials(sid)}
    attrs = {n: store.trial_attrs(sid, n) for n in trials}
    lrs = dict(view.rows("SELECT trial_number, lr FROM tt_epoch WHERE study_id = :s", s=sid))
    store.close()
    assert sorted(trials) == [0, 1, 2, 3] and {t.state for t in trials.values()} == {"COMPLETE"}  # none waits
    assert "lr" not in trials[1].params  # overridden, never sampled: the params claim no lr it did not use
    assert attrs[1]["origin"] == "remedy of #0: relu + kaiming init, lr/10"
    assert attrs[1]["overrides"]["lr"] == pytest.approx(0.002)
    assert lrs[1] == pytest.approx(0.002)  # the worker trained with the override
    assert trials[copied].params == {"lr": 0.05} and attrs[copied]["origin"] == "copy of #0, edited: lr 0.02 -> 0.05"
    assert lrs[copied] == pytest.approx(0.05)
    assert view.study_attr("eq", "run_target:" + attrs[1]["host"]) == "3"  # the 3 this run counted
