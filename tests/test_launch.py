"""engine/launch.py in-process: the one launch path of `tunetui run [--detach]` and the TUI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from engine.launch import (
    Detached,
    RunRequest,
    UsageError,
    apply_overrides,
    child_argv,
    existing_study,
    explain_refusal,
    prepare,
    train_differences,
)
from engine.spec import SpecError
from tests.conftest import STUDIES

DIGITS = STUDIES / "digits_mlp.toml"


def test_the_detached_command_line_carries_the_flags_and_never_the_url():
    request = RunRequest("studies/a.toml", trials=3, timeout=9.5, device="cpu", workers=2, study_name="b",
                         overrides=("train.epochs=2",), graceful=True)  # fmt: skip
    assert child_argv(request) == [
        sys.executable, "-m", "engine.cli", "run", str(Path("studies/a.toml").resolve()), "--storage-from-env",
        "--quiet", "--trials", "3", "--timeout", "9.5", "--device", "cpu", "--workers", "2", "--study-name", "b",
        "--set", "train.epochs=2", "--graceful",
    ]  # fmt: skip


def test_overrides_and_study_name_reach_the_spec_and_its_text(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    prepared = prepare(RunRequest(DIGITS, study_name="renamed", overrides=("train.epochs=2",)), url)
    assert prepared.spec.study.name == "renamed" and prepared.spec.train["epochs"] == 2
    assert 'name = "renamed"' in prepared.text and prepared.url == url
    assert not (tmp_path / "s.db").exists()  # checks only: nothing is created


@pytest.mark.parametrize(
    "request_,says",
    [
        (RunRequest(DIGITS, trials=0), "--trials must be between 1 and 1,000,000"),
        (RunRequest(DIGITS, workers=len(os.sched_getaffinity(0)) + 1, device="cpu"), "more CPU workers than"),
        (RunRequest(DIGITS, device="tpu:0"), "--device:"),
        (RunRequest(DIGITS, overrides=("nokey",)), "--set expects KEY=VALUE"),
        (RunRequest(DIGITS, overrides=("train.epochs=1", "train.epochs.x=1")), "epochs is not a table"),
    ],
)
def test_bad_requests_are_refused_before_anything_starts(request_, says, tmp_path):
    with pytest.raises(UsageError, match=says):
        prepare(request_, f"sqlite:///{tmp_path}/s.db")
    assert list(tmp_path.iterdir()) == []


def test_a_spec_error_reads_as_the_cli_prints_it(tmp_path):
    with pytest.raises(SpecError) as refused:
        prepare(RunRequest(DIGITS, overrides=("budget.n_trials=0",)), f"sqlite:///{tmp_path}/s.db")
    text = explain_refusal(refused.value)
    assert "budget.n_trials" in text and text.endswith("nothing was started.")
    once = explain_refusal(UsageError("study x was created with ...: nothing was started"))
    assert once.count("nothing was started") == 1


def test_overrides_use_toml_values_and_bare_words():
    data = {"train": {"epochs": 5}}
    apply_overrides(data, ["train.epochs=2", "train.optimizer=sgd", 'study.name="n"', "train.milestones=[1, 2]"])
    assert data == {"train": {"epochs": 2, "optimizer": "sgd", "milestones": [1, 2]}, "study": {"name": "n"}}


def test_the_answer_of_a_start_names_what_happened(tmp_path):
    log = tmp_path / "x\x1b[2J.log"  # outside text: a control byte in the path is not printed
    up = Detached("x", 42, log, up=True, exit_code=None)
    assert up.ok and up.summary().startswith("started coordinator for x: pid 42") and "\x1b" not in up.summary()
    done = Detached("x", 42, log, up=False, exit_code=0)
    assert done.ok and "ran and exited (nothing was left to run)" in done.report()
    failed = Detached("x", 42, log, up=False, exit_code=1, log_tail="already has a running coordinator")
    assert not failed.ok
    assert failed.summary().splitlines() == ["already has a running coordinator", failed.report()]
    assert "exited (code 1) before it came up" in failed.report()
    hung = Detached("x", 42, log, up=False, exit_code=None)
    assert not hung.ok and "did not come up within 60s; stopped it (pid 42)" in hung.report()


def test_train_differences_names_each_changed_value_and_what_a_side_leaves_to_the_default():
    stored = {"epochs": 20, "activation": "relu", "seed": 0, "clip_norm": 5.0}
    new = {"epochs": 2, "activation": "relu", "seed": 0, "dropout": 0.1}
    assert train_differences(stored, new) == ["clip_norm 5.0 -> default", "dropout default -> 0.1", "epochs 20 -> 2"]
    assert train_differences(new, dict(new)) == []


def test_existing_study_counts_trials_and_compares_with_the_stored_spec(tmp_path):
    from engine.spec import load_spec
    from tests.tui.builders import build_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = load_spec(STUDIES / "digits_mlp.toml")
    assert existing_study(url, spec) is None  # no store yet
    build_study(url)
    found = existing_study(url, spec)
    assert found is not None and found.trials == 12 and found.stored_spec and found.train_changes == []
    changed = spec.model_copy(update={"train": {**spec.train, "epochs": 3}})
    assert existing_study(url, changed).train_changes == ["epochs 20 -> 3"]
