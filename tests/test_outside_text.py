"""Outside text is never markup or terminal control: hostile study names, params and error text through
every CLI command that shows them (a real run's store, tests/hostile.py; `ls` runs as a real program, the
other commands in this process: the same code and output streams, without a Python start each)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from engine.text import markup_safe, safe, safe_lines
from tests.conftest import run_cli
from tests.helpers_run import tunetui_here
from tests.hostile import (
    ESC_NAME,
    FAILING_STUDY,
    HOSTILE_NAMES,
    LONG_NAME,
    MARKUP_CHOICE,
    MARKUP_NAME,
    build_hostile_store,
)


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> str:
    return build_hostile_store(tmp_path_factory.mktemp("hostile"))


def cli_ok(*args: str, program: bool = False):
    result = run_cli(*args) if program else tunetui_here(*args, storage=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "internal error" not in result.stderr
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream, stream
    return result


def test_safe_removes_every_control_character():
    assert safe("\x1b[31mred\x07\x9b2J") == "[31mred2J"
    assert safe("a\tb\nc\rd") == "a b c d"
    assert safe_lines("one\x1b\ntwo") == "one\ntwo"
    assert markup_safe("a[/]b\x1b") == "a\\[/]b"
    assert safe(3.5) == "3.5"


def test_ls_lists_every_study_whatever_its_name(hostile_store):
    out = cli_ok("ls", "--storage", hostile_store, program=True).stdout
    assert MARKUP_NAME in out and FAILING_STUDY in out
    listed = json.loads(cli_ok("ls", "--json", "--storage", hostile_store).stdout)
    assert {s["study_name"] for s in listed} == {*HOSTILE_NAMES, FAILING_STUDY}  # JSON keeps them exactly


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=("markup", "esc", "long"))
def test_show_prints_hostile_names_and_choices_as_text(hostile_store, name):
    out = cli_ok("show", name, "--storage", hostile_store).stdout
    assert safe(name)[:20] in out
    assert f"choice = '{MARKUP_CHOICE}'" in out
    assert "choice" in cli_ok("show", name, "--trial", "0", "--storage", hostile_store).stdout


def test_failing_task_error_text_reaches_the_terminal_as_text(hostile_store):
    shown = cli_ok("show", FAILING_STUDY, "--trial", "0", "--storage", hostile_store).stdout
    assert "boom [bold]loud[/bold]" in shown  # the markup is shown as typed, not applied
    assert "failures: error 1" in cli_ok("show", FAILING_STUDY, "--storage", hostile_store).stdout


def test_unknown_study_error_lists_names_without_control_bytes(hostile_store):
    result = tunetui_here("show", "nope", storage=hostile_store)
    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "no study named 'nope'" in result.stderr


def test_exports_keep_data_and_no_raw_escape(hostile_store, tmp_path):
    rows = list(csv.DictReader(io.StringIO(cli_ok("export", MARKUP_NAME, "--storage", hostile_store).stdout)))
    assert rows[0]["param_choice"] == MARKUP_CHOICE
    assert rows[0]["param_colour"] == safe(ESC_NAME)  # CSV: the control byte dropped, the rest kept
    out = tmp_path / "fails.json"
    cli_ok("export", FAILING_STUDY, "--format", "json", "-o", str(out), "--storage", hostile_store)
    assert b"\x1b" not in out.read_bytes()  # JSON escapes control characters as \u001b
    esc = json.loads(cli_ok("export", ESC_NAME, "--format", "json", "--storage", hostile_store).stdout)
    assert esc[0]["param_choice"] == MARKUP_CHOICE and esc[0]["param_colour"] == ESC_NAME
    assert len(cli_ok("export", LONG_NAME, "--storage", hostile_store).stdout.splitlines()) == 2
