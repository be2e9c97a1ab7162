"""A rerun never mixes incomparable values into a study: another direction, metric or search space is refused
(exit 2, both values named) before anything is written; studies without a recorded identity are adopted."""

from __future__ import annotations

import json

import optuna
import pytest
import sqlalchemy as sa

from engine.identity import ATTR, differences, study_identity
from engine.spec import load_spec
from engine.store import sqlite_path, with_driver
from tests.conftest import fresh_postgres_database
from tests.helpers_run import tunetui, tunetui_here, write_spec

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def snapshot(url: str) -> tuple:
    """What a refused run must leave as it was: trials, study attrs, heartbeats, and the SQLite file's bytes."""
    engine = sa.create_engine(with_driver(url), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        trials = conn.execute(sa.text("SELECT trial_id, state FROM trials ORDER BY trial_id")).all()
        attrs = conn.execute(sa.text("SELECT key, value_json FROM study_user_attributes ORDER BY key")).all()
        names = sa.inspect(conn).get_table_names()
        beats = conn.execute(sa.text("SELECT * FROM tt_heartbeat")).all() if "tt_heartbeat" in names else []
    engine.dispose()
    db = sqlite_path(url)
    return trials, attrs, beats, db.read_bytes() if db is not None else None


def stored_identity(url: str, name: str) -> dict | None:
    study = optuna.load_study(study_name=name, storage=with_driver(url))
    return study.user_attrs.get(ATTR)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"), prefix="ident")


def test_a_rerun_with_another_metric_direction_or_space_is_refused_before_anything_is_written(tmp_path, any_url):
    spec = write_spec(tmp_path, "ident", "tiny")
    first = tunetui("run", str(spec), "--trials", "1", "--quiet", storage=any_url, timeout=120)
    assert first.returncode == 0, first.stderr
    recorded = stored_identity(any_url, "ident")
    assert recorded == study_identity(load_spec(spec))
    assert recorded["metrics"] == ["val_acc"] and recorded["directions"] == ["maximize"]
    assert recorded["value_rule"] == "mean_last_3"  # the default rule
    before = snapshot(any_url)

    changes = {
        ("--set", 'study.metric="val_loss"'): "metric val_acc; this spec says val_loss",
        ("--set", 'study.direction="minimize"'): "direction maximize; this spec says minimize",
        ("--set", "space.lr.high=0.5"): "search space lr = ",
        ("--set", 'study.value="best"'): "value rule mean_last_3; this spec says best_epoch",
    }
    # the first refusal is a real `tunetui run --detach` process; the others end in the same pre-flight
    # check before anything starts, so they run in this process
    for (change, named), how in zip(changes.items(), ("detach", "here", "here", "here"), strict=True):
        args = ("run", str(spec), "--trials", "1", "--quiet", *change)
        if how == "detach":
            done = tunetui(*args, "--detach", storage=any_url)
        else:
            done = tunetui_here(*args, storage=any_url)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"study ident was created with {named}" in done.stderr, done.stderr
        assert "--study-name NEW" in done.stderr and "internal error" not in done.stderr
        assert snapshot(any_url) == before  # no trial, attr, heartbeat or byte changed

    renamed = tunetui("run", str(spec), "--trials", "1", "--quiet", "--set", 'study.metric="val_loss"',
                      "--set", 'study.direction="minimize"', "--study-name", "ident_loss", storage=any_url,
                      timeout=120)  # fmt: skip
    assert renamed.returncode == 0, renamed.stderr
    assert stored_identity(any_url, "ident_loss")["metrics"] == ["val_loss"]
    # the same spec still resumes: nothing above changed the study (snapshot), and a rerun of the same spec
    # passes this check in test_study_e2e.py (digits_store, SQLite) and test_postgres.py (host-a's restart)


def test_a_study_without_identity_is_compared_on_its_directions_and_adopted(tmp_path):
    url = f"sqlite:///{tmp_path}/store.db"
    optuna.create_study(study_name="legacy_min", storage=url, direction="minimize")
    optuna.create_study(study_name="legacy_max", storage=url, direction="maximize")
    refused = tunetui_here("run", str(write_spec(tmp_path, "legacy_min")), "--trials", "1", "--quiet", storage=url)
    assert refused.returncode == 2, refused.stderr
    assert "study legacy_min was created with direction minimize; this spec says maximize" in refused.stderr
    assert stored_identity(url, "legacy_min") is None

    spec = write_spec(tmp_path, "legacy_max")
    adopted = tunetui("run", str(spec), "--trials", "1", "--quiet", storage=url, timeout=120)
    assert adopted.returncode == 0, adopted.stderr
    assert stored_identity(url, "legacy_max") == study_identity(load_spec(spec))


def test_differences_name_only_fields_both_sides_have():
    old = {"directions": ["maximize"], "metrics": ["val_acc"]}
    new = {"directions": ["maximize"], "metrics": ["val_loss"], "value_rule": "best_epoch",
           "space": json.dumps({})}  # fmt: skip
    assert differences(old, new) == ["metric val_acc; this spec says val_loss"]
    assert differences(new, new) == []


def test_a_study_an_earlier_tunetui_ran_keeps_its_metric_value_rule_and_space(tmp_path):
    # what a coordinator before identities left: the metric and the spec it ran, every value its best epoch
    url = f"sqlite:///{tmp_path}/store.db"
    spec = write_spec(tmp_path, "older", "tiny")
    study = optuna.create_study(study_name="older", storage=url, direction="maximize")
    study.set_user_attr("metric", "val_acc")
    study.set_user_attr("spec_toml", spec.read_text())
    before = snapshot(url)
    rule = tunetui_here("run", str(spec), "--trials", "1", "--quiet", storage=url)  # the default is mean_last_3 now
    assert rule.returncode == 2, rule.stdout + rule.stderr
    assert "value rule best_epoch; this spec says mean_last_3" in rule.stderr
    wider = tunetui_here("run", str(spec), "--trials", "1", "--quiet", "--set", 'study.value="best"',
                         "--set", "space.lr.high=0.5", storage=url)  # fmt: skip
    assert wider.returncode == 2 and "search space lr = " in wider.stderr, wider.stderr
    assert snapshot(url) == before
    same = tunetui("run", str(spec), "--trials", "1", "--quiet", "--set", 'study.value="best"', storage=url)
    assert same.returncode == 0, same.stderr
    assert stored_identity(url, "older")["value_rule"] == "best_epoch"
