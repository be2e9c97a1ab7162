"""`tunetui PATH` opens the workbench on a store file: a SQLite file (.db/.sqlite/.sqlite3) or an Optuna
journal (.log, or any file of journal lines, as optuna-dashboard takes it); a missing file is a typo (exit 2)."""

from __future__ import annotations

import os

import pytest

from engine.store import resolve_url
from tui.entry import main, store_path_argv


@pytest.mark.parametrize("name", ["study.db", "study.sqlite", "study.sqlite3", "journal.log"])
def test_a_store_file_as_first_argument_opens_the_workbench_on_it(name):
    assert store_path_argv([f"some/{name}", "--studies-dir", "s"]) == ["tui", "--storage", f"some/{name}",
                                                                       "--studies-dir", "s"]  # fmt: skip


def test_commands_and_options_are_left_as_they_are(tmp_path):
    for argv in (["ls"], ["show", "x.db"], ["--storage", "x.db"], [], ["nosuch"]):
        assert store_path_argv(argv) == argv
    existing = tmp_path / "optuna_study"  # an existing file without a suffix is a store file too
    existing.write_text("")
    assert store_path_argv([str(existing)])[:2] == ["tui", "--storage"]


def test_paths_resolve_to_absolute_sqlite_or_journal_urls(tmp_path):
    for name in ("a.db", "a.sqlite", "a.sqlite3"):
        assert resolve_url(name, base=tmp_path) == f"sqlite:///{tmp_path}/{name}"
    assert resolve_url("j.log", base=tmp_path) == f"journal:///{tmp_path}/j.log"
    journal = tmp_path / "journal.txt"  # no .log: its first line says what it is
    journal.write_text('{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n')
    assert resolve_url(str(journal)) == f"journal:///{journal}"


def test_a_missing_store_file_is_refused_before_the_workbench_opens(tmp_path, capsys):
    assert main([str(tmp_path / "typo.db")]) == 2
    assert "no store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_folder_or_fifo_named_like_a_journal_is_bad_input_not_a_missing_store(tmp_path, capsys):
    from engine.cli import main as cli_main

    (tmp_path / "dir.log").mkdir()
    os.mkfifo(tmp_path / "fifo.log")
    cases = (("dir.log", "a folder", "it is a folder"), ("fifo.log", "not a regular file", "not a regular file"))
    for name, kind, why in cases:
        # was "no studies yet (the store does not exist)", exit 0, for a path that exists
        assert cli_main(["--storage", str(tmp_path / name), "ls"]) == 2
        assert f"{tmp_path / name} is {kind}" in capsys.readouterr().err
        assert main([str(tmp_path / name)]) == 2
        assert f"no store at {tmp_path / name} ({why})" in capsys.readouterr().err  # was "(no such file)"


@pytest.mark.parametrize("argv", [[], ["tui"], ["--storage", "elsewhere.db"]])
def test_no_path_opens_the_workbench_on_the_default_or_named_store(argv, monkeypatch):
    import tui.app

    opened = []
    monkeypatch.setattr(tui.app, "run_app", lambda storage, studies: opened.append(storage))
    assert main(argv) == 0  # 08b5d22 made a bare `tunetui` a TypeError (Path(None))
    assert opened == [None if "--storage" not in argv else "elsewhere.db"]
