"""The headless CLI: exit codes, messages, and that it never imports textual."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest

from engine.cli import apply_overrides
from engine.store import Store
from tests.conftest import ROOT, STUDIES, run_cli

DIGITS = str(STUDIES / "digits_mlp.toml")


def test_validate_ok_prints_a_summary():
    result = run_cli("validate", DIGITS)
    assert result.returncode == 0
    assert result.stdout.startswith("ok ")
    assert "study digits_mlp" in result.stdout and "9 dimensions (2 conditional)" in result.stdout


def test_validate_bad_spec_exits_2_with_the_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "b"\n[train]\nepochs = 0\n')
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:4: train.epochs:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["run"],  # missing spec
        ["run", DIGITS, "--trials", "0"],
        ["run", DIGITS, "--trials", "many"],
        ["run", DIGITS, "--workers", "0"],
        ["run", DIGITS, "--device", "tpu:0"],
        ["run", DIGITS, "--set", "no-equals-sign"],
        ["run", DIGITS, "--set", "train.epochs=-1"],
        ["run", "does/not/exist.toml"],
        ["frobnicate"],
        ["export", "x", "--format", "xml"],
        ["profile", DIGITS, "--trial-params", "[1, 2]"],
    ],
)
def test_bad_input_exits_2_without_a_traceback(args, tmp_path):
    result = (
        run_cli(*args, "--storage", f"sqlite:///{tmp_path}/s.db")
        if args and args[0] == "run"
        else run_cli(*args)
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    assert not (tmp_path / "s.db").exists(), "bad input must not create a store"


def test_unknown_study_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="real", storage=Store(url).optuna_storage())
    result = run_cli("show", "ghost", "--storage", url)
    assert result.returncode == 1
    assert "no study named 'ghost'" in result.stderr and "real" in result.stderr


def test_corrupt_store_is_a_clear_error_and_is_left_alone(tmp_path):
    db = tmp_path / "corrupt.db"
    garbage = b"this is not a database" * 100
    db.write_bytes(garbage)
    for args in (["ls"], ["show", "x"], ["run", DIGITS, "--trials", "1"]):
        result = run_cli(*args, "--storage", f"sqlite:///{db}")
        assert result.returncode == 1, (args, result.stderr)
        assert "not a" in result.stderr.lower() or "not usable" in result.stderr.lower(), result.stderr
        assert "Traceback" not in result.stderr
    assert db.read_bytes() == garbage


def test_ls_on_a_missing_store_says_so(tmp_path):
    result = run_cli("ls", "--storage", f"sqlite:///{tmp_path}/none.db")
    assert result.returncode == 0
    assert "no studies yet" in result.stdout
    assert not (tmp_path / "none.db").exists()


def test_ls_and_show_read_a_store(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url)
    study = optuna.create_study(study_name="made", storage=store.optuna_storage(), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    ls = run_cli("ls", "--storage", url, "--json")
    assert ls.returncode == 0
    [row] = json.loads(ls.stdout)
    assert row["study_name"] == "made" and row["counts"] == {"COMPLETE": 3}
    show = run_cli("show", "made", "--storage", url, "--json")
    info = json.loads(show.stdout)
    assert info["best"]["value"] == pytest.approx(study.best_value)
    assert info["best"]["params"]["x"] == pytest.approx(study.best_params["x"])


def test_control_without_a_running_coordinator_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="idle", storage=Store(url).optuna_storage())
    result = run_cli("stop", "idle", "--storage", url)
    assert result.returncode == 1
    assert "no running coordinator" in result.stderr
    assert [r for r in Store(url).control_rows(1) if r["done"] is None] == [], (
        "no request is left behind for a later coordinator"
    )


def test_headless_commands_never_import_textual():
    code = (
        "import sys; from tui import entry; "  # the `tunetui` console script itself
        f"entry.main(['validate', {DIGITS!r}]); "
        "assert 'textual' not in sys.modules, 'textual imported'; "
        "import engine.coordinator, engine.export, engine.store; "
        "assert 'textual' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120, capture_output=True)


def test_overrides_use_toml_values():
    data = {"train": {"epochs": 5}}
    apply_overrides(
        data, ["train.epochs=2", "train.optimizer=sgd", 'study.name="n"', "train.milestones=[1, 2]"]
    )
    assert data == {"train": {"epochs": 2, "optimizer": "sgd", "milestones": [1, 2]}, "study": {"name": "n"}}


def test_profile_prints_top_operators_and_writes_a_trace(tmp_path):
    trace = tmp_path / "trace.json"
    result = run_cli(
        "profile", DIGITS, "--steps", "3", "--trace", str(trace), "--trial-params", '{"width": 32}'
    )
    assert result.returncode == 0, result.stderr
    assert "Self CPU" in result.stdout
    assert trace.exists() and json.loads(trace.read_text())["traceEvents"]


def test_layer_telemetry_keeps_input_to_output_order(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/s.db")
    layers = [{"layer": name, "grad_norm": 1.0, "weight_norm": 1.0} for name in ("stem", "stage1", "head")]
    store.write_epoch(1, 0, 1, {}, [], layers)
    assert [r["layer"] for r in store.layers(1, 0)] == ["stem", "stage1", "head"]
