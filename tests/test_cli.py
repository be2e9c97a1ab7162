"""The headless CLI: exit codes, messages, and that it never imports textual."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from engine.cli import main
from engine.store import Store
from tests.conftest import ROOT, STUDIES, run_cli
from tests.helpers_run import tunetui_here

DIGITS = str(STUDIES / "digits_mlp.toml")


def test_validate_ok_prints_a_summary():
    result = run_cli("validate", DIGITS)
    assert result.returncode == 0
    assert result.stdout.startswith("ok ")
    assert "study digits_mlp" in result.stdout and "9 dimensions (2 conditional)" in result.stdout


def test_validate_bad_spec_exits_2_with_the_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "b"\ndireciton = "up"\n[train]\nepochs = 0\n[budget]\nn_trials = 0\n')
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    # every problem, in line order, as the help promises; an unknown key with the closest known one
    lines = result.stderr.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{bad}:3", f"{bad}:5", f"{bad}:7"], result.stderr
    assert "study.direciton" in lines[0] and "did you mean 'direction'?" in lines[0]
    assert f"{bad}:5: train.epochs:" in lines[1] and f"{bad}:7: budget.n_trials:" in lines[2]
    assert "Traceback" not in result.stderr


PROGRAM, HERE = True, False  # a real `python -m engine.cli` process, or main() in this process


@pytest.mark.parametrize(
    ("args", "program"),
    [
        (["run"], PROGRAM),  # missing spec: argparse's exit
        (["run", DIGITS, "--trials", "0"], HERE),
        (["run", DIGITS, "--trials", "many"], HERE),
        (["run", DIGITS, "--workers", "0"], HERE),
        (["run", DIGITS, "--device", "tpu:0"], PROGRAM),  # checked after the run re-executes itself
        (["run", DIGITS, "--set", "no-equals-sign"], HERE),
        (["run", DIGITS, "--set", "train.epochs=-1"], PROGRAM),
        (["run", "does/not/exist.toml"], PROGRAM),
        (["frobnicate"], PROGRAM),
        (["export", "x", "--format", "xml"], HERE),
        (["profile", DIGITS, "--trial-params", "[1, 2]"], HERE),
    ],
)
def test_bad_input_exits_2_without_a_traceback(args, program, tmp_path):
    """Some as programs (exit codes through argparse and the run's re-execution), the rest in-process."""
    storage = f"sqlite:///{tmp_path}/s.db" if args and args[0] == "run" else None
    if program:
        result = run_cli(*args, *(["--storage", storage] if storage else []))
    else:
        result = tunetui_here(*args, storage=storage)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    assert not (tmp_path / "s.db").exists(), "bad input must not create a store"


def test_unknown_study_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="real", storage=Store(url).optuna_storage())
    result = tunetui_here("show", "ghost", storage=url)
    assert result.returncode == 1
    assert "no study named 'ghost'" in result.stderr and "real" in result.stderr


def test_corrupt_store_is_a_clear_error_and_is_left_alone(tmp_path):
    db = tmp_path / "corrupt.db"
    garbage = b"this is not a database" * 100
    db.write_bytes(garbage)
    url = f"sqlite:///{db}"
    for args in (["ls"], ["show", "x"], ["run", DIGITS, "--trials", "1"]):
        if args[0] == "run":  # as a program: the run re-executes itself before it opens the store
            result = run_cli(*args, "--storage", url)
        else:
            result = tunetui_here(*args, storage=url)
        assert result.returncode == 1, (args, result.stderr)
        assert "not a" in result.stderr.lower() or "not usable" in result.stderr.lower(), result.stderr
        assert "Traceback" not in result.stderr
    assert db.read_bytes() == garbage


def test_ls_on_a_missing_store_says_so(tmp_path):
    result = tunetui_here("ls", storage=f"sqlite:///{tmp_path}/none.db")
    assert result.returncode == 0
    assert "no studies yet" in result.stdout
    assert not (tmp_path / "none.db").exists()


def test_ls_and_show_read_a_store(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    store = Store(url)
    study = optuna.create_study(study_name="made", storage=store.optuna_storage(), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    ls = tunetui_here("ls", "--json", storage=url)
    assert ls.returncode == 0
    [row] = json.loads(ls.stdout)
    assert row["study_name"] == "made" and row["counts"] == {"COMPLETE": 3}
    show = tunetui_here("show", "made", "--json", storage=url)
    info = json.loads(show.stdout)
    assert info["best"]["value"] == pytest.approx(study.best_value)
    assert info["best"]["params"]["x"] == pytest.approx(study.best_params["x"])


def test_control_without_a_running_coordinator_exits_1(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="idle", storage=Store(url).optuna_storage())
    result = tunetui_here("stop", "idle", storage=url)
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
        "import engine.run.coordinator, engine.export, engine.store; "
        "assert 'textual' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120, capture_output=True)


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


CORES = len(os.sched_getaffinity(0))
HUGE = str(10**30)
# every option that takes a trial number: each refuses a number that is none (exit 2, by argparse, before any read)
TRIAL_NUMBER_ARGS = [
    (["show", "x", "--trial"], "argument --trial"),
    (["export", "x", "--best-spec", "b.toml", "--trial"], "argument --trial"),
    (["export", "x", "--weights", "-o", "w.pt", "--trial"], "argument --trial"),
    (["kill", "x"], "argument trial"),
]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", DIGITS, "--timeout", "-5"], "--timeout must be a positive number of seconds (got -5.0)"),
        (["run", DIGITS, "--timeout", "nan"], "--timeout must be a positive number of seconds (got nan)"),
        (["run", DIGITS, "--timeout", "inf"], "--timeout must be a positive number of seconds (got inf)"),
        (["run", DIGITS, "--trials", "-1"], "--trials must be between 1 and 1,000,000 (got -1)"),
        (["run", DIGITS, "--trials", "1000000000000"], "--trials must be between 1 and 1,000,000"),
        (["run", DIGITS, "--trials", "1e12"], "argument --trials: expected a whole number, e.g. 3 (got '1e12')"),
        (["run", DIGITS, "--trials", HUGE], "--trials must be between 1 and 1,000,000 (got 1000000000000000000000000000000)"),
        (["run", DIGITS, "--trials", "nan"], "argument --trials: expected a whole number, e.g. 3 (got 'nan')"),
        (["run", DIGITS, "--trials", "1" * 5000], "argument --trials: a number of 5000 digits is far too large"),
        (["run", DIGITS, "--workers", "1e3"], "argument --workers: expected a whole number, e.g. 3 (got '1e3')"),
        (["run", DIGITS, "--workers", "two"], "argument --workers: expected a whole number, e.g. 3 (got 'two')"),
        (["run", DIGITS, "--workers", "-1"], "--workers must be at least 1 (got -1)"),
        (["run", DIGITS, "--study-name", ""], "--study-name '': a study name is 1-100 letters"),
        (["run", DIGITS, "--device", "cuda:9"], "--device cuda:9: cuda:9 is not here"),
        (["run", DIGITS, "--workers", "100000"], f"--workers 100000: more CPU workers than the {CORES} core(s)"),
        (["run", DIGITS, "--workers", str(CORES + 1), "--device", "cpu"], f"use at most {CORES}"),
        (["run", DIGITS, "--workers", "100000", "--detach"], "more CPU workers than"),
        (["run", DIGITS, "--set", "a=" + "[" * 5000 + "]" * 5000], "--set a: the value is nested too deeply"),
        (["run", DIGITS, "--set", "task.params.a=" + "[" * 60 + "]" * 60], "nested more than 50 levels"),
        *[([*command, value], f"{argument}: expected a trial number, a whole number 0 or more (got {value!r})")
          for command, argument in TRIAL_NUMBER_ARGS for value in ("-1", "nan", "1e3", "1.5", "third", "")],
        *[([*command, HUGE], f"{argument}: no trial number is that large (got '{HUGE}')")
          for command, argument in TRIAL_NUMBER_ARGS],
        (["profile", DIGITS, "--steps", "0"], "--steps must be between 1 and 10,000 (got 0)"),
        (["profile", DIGITS, "--steps", "100000"], "--steps must be between 1 and 10,000"),
        (["profile", DIGITS, "--steps", "nan"], "argument --steps: expected a whole number, e.g. 3 (got 'nan')"),
    ],
)
def test_bad_numbers_and_names_exit_2_with_what_was_wrong(args, says, tmp_path, monkeypatch, capsys):
    """Nothing is started and nothing is created: no store, no state folder. In-process (the checks are
    engine/launch.py's; test_bad_input_exits_2_without_a_traceback runs the command as a program)."""
    storage = [] if args[0] == "profile" else ["--storage", f"sqlite:///{tmp_path}/s.db"]
    monkeypatch.chdir(tmp_path)
    try:
        code = main([*args, *storage])
    except SystemExit as exited:  # argparse's own refusals
        code = exited.code
    stderr = capsys.readouterr().err
    assert code == 2, (code, stderr)
    assert says in stderr
    assert "internal error" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "bad input must create nothing"


@pytest.mark.parametrize("args", [
    ["ls", "--storage", ""], ["run", DIGITS, "--storage", " "], ["--storage", "", "ls"],
    ["run", DIGITS, "--device", ""], ["show", "x", "--artifacts", ""], ["export", "x", "-o", ""],
    ["export", "x", "--best-spec", ""], ["export", "x", "--tensorboard", ""], ["profile", DIGITS, "--trace", ""],
])  # fmt: skip
def test_an_empty_value_is_bad_input_not_the_default(args, tmp_path, monkeypatch):
    """`--storage "$STORE"` with STORE unset ran on the default store (`run` made ./.tunetui/); `-o ""` said
    it could not write the standard output, `--best-spec ""` wrote the CSV to it, exit 0."""
    monkeypatch.chdir(tmp_path)
    result = tunetui_here(*args, storage=None)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "the value is empty: give a" in result.stderr and "internal error" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "bad input must create nothing"


def test_an_empty_storage_url_or_artifacts_folder_in_a_spec_is_refused(tmp_path):
    for key in ("url", "artifacts"):
        spec = tmp_path / f"{key}.toml"
        spec.write_text(Path(DIGITS).read_text() + f'\n[storage]\n{key} = ""\n')
        result = tunetui_here("validate", str(spec), storage=None)
        assert result.returncode == 2 and f"storage.{key}: String should have at least 1 character" in result.stderr


def test_a_trial_number_the_study_does_not_have_is_bad_input(tmp_path):
    """`show --trial 99` exited 1 while `export --best-spec --trial 99` exited 2; `kill` sent the request
    and its coordinator answered with the error (exit 1). Now every one exits 2 and says the trials there
    are; `kill` sends nothing."""
    from tests.optuna_only import build_optuna_only_store

    url = f"sqlite:///{tmp_path}/s.db"
    build_optuna_only_store(url)  # `plain`: trials 0-5
    for args in (["show", "plain", "--trial", "6"], ["kill", "plain", "99"]):
        result = tunetui_here(*args, storage=url)
        assert result.returncode == 2, (args, result)
        assert f"study plain has no trial {args[-1]} (its trials are 0-5)" in result.stderr
    assert "nothing was sent" in result.stderr
    assert tunetui_here("show", "plain", "--trial", "5", storage=url).returncode == 0  # the last one is there


def test_a_device_named_in_the_spec_that_is_not_here_exits_2(tmp_path):
    spec = tmp_path / "gpu.toml"
    spec.write_text(Path(DIGITS).read_text() + '\n[devices]\ndevice = "cuda:9"\n')
    result = tunetui_here("run", str(spec), storage=f"sqlite:///{tmp_path}/s.db")
    assert result.returncode == 2 and "[devices] device cuda:9: cuda:9 is not here" in result.stderr
    assert not (tmp_path / "s.db").exists()


def test_spec_workers_beyond_the_cores_exit_2(tmp_path):
    spec = tmp_path / "many.toml"
    text = Path(DIGITS).read_text()
    assert "[devices]" not in text
    spec.write_text(text + f'\n[devices]\ndevice = "cpu"\nworkers = {CORES + 1}\n')
    result = tunetui_here("run", str(spec), storage=f"sqlite:///{tmp_path}/s.db")
    assert result.returncode == 2
    assert f"[devices] workers {CORES + 1}: more CPU workers than the {CORES} core(s)" in result.stderr


def test_validate_reads_no_endless_or_odd_file(tmp_path):
    """/dev/zero, a FIFO (no writer: must not hang), a folder and a file over 1 MiB are refused."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    for path, says in (("/dev/zero", "not a regular file"), (str(fifo), "not a regular file"),
                       (str(tmp_path), "not a regular file"), (str(big), "larger than 1024 KiB")):  # fmt: skip
        result = run_cli("validate", path, timeout=30)
        assert result.returncode == 2, (path, result.stderr)
        assert says in result.stderr and "Traceback" not in result.stderr


def test_deeply_nested_toml_exits_2_with_a_clear_message(tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    shallow_but_deep = tmp_path / "deep100.toml"
    shallow_but_deep.write_text('[study]\nname = "d"\n[task.params]\na = ' + "[" * 100 + "]" * 100 + "\n")
    for path in (deep, shallow_but_deep):
        for args in (["validate"], ["run", "--storage", f"sqlite:///{tmp_path}/s.db"]):
            result = run_cli(args[0], str(path), *args[1:])
            assert result.returncode == 2, (args, path, result.stderr)
            assert "nested more than 50 levels deep" in result.stderr
            assert "RecursionError" not in result.stderr and "internal error" not in result.stderr
    assert not (tmp_path / "s.db").exists()
