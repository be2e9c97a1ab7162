"""Stores made by Optuna alone: read in every command, never written; every trial state and several objectives.

The same tests on a SQLite file and on the real PostgreSQL server, through the plain URL a user would type."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import sqlalchemy as sa

from engine.store import Store, with_driver
from tests.helpers_run import tunetui, tunetui_here
from tests.optuna_only import STATES


def _no_bare_constant(name: str):
    raise AssertionError(f"not strict JSON: bare {name}")


def strict_json(text: str):
    return json.loads(text, parse_constant=_no_bare_constant)


def tables(url: str) -> list[str]:
    if url.endswith(".log"):  # a journal file: no tables
        return []
    engine = sa.create_engine(with_driver(url), poolclass=sa.pool.NullPool)
    try:
        return sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def file_bytes(url: str) -> tuple | None:
    """The store file's bytes and its folder's listing (a journal's lock file, a SQLite -wal would show)."""
    from engine.store import journal_path, resolve_url, sqlite_path

    path = sqlite_path(url) if "://" in url else journal_path(resolve_url(url))
    if path is None:
        return None
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


def test_every_read_command_works_and_nothing_is_written(optuna_store):
    before_tables, before_bytes = tables(optuna_store), file_bytes(optuna_store)
    assert not [t for t in before_tables if t.startswith("tt_")]

    # `ls` and `show` as real processes; the other commands in this process (the same code, no Python start)
    listed = tunetui("ls", "--json", storage=optuna_store)
    assert listed.returncode == 0, listed.stderr
    studies = {s["study_name"]: s for s in strict_json(listed.stdout)}
    assert studies["plain"]["counts"] == {state: 1 if state != "COMPLETE" else 2 for state in STATES}
    assert studies["plain"]["best"] == "inf"  # +inf encoded, not a bare Infinity
    # a RUNNING trial and no tunetui coordinator: maybe a live study.optimize elsewhere, never "finished"
    assert studies["plain"]["status"] == "unfinished"
    assert studies["pareto"]["best"] is None and studies["pareto"]["pareto_front"] == 2
    table = tunetui_here("ls", storage=optuna_store, env={"COLUMNS": "200"})
    assert table.returncode == 0 and "2 obj, 2 Pareto" in table.stdout, table.stdout + table.stderr

    shown = tunetui("show", "plain", storage=optuna_store, env={"COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "complete 2, fail 1, pruned 1, running 1, waiting 1" in shown.stdout
    assert "best trial #1: value inf" in shown.stdout
    for number in range(6):  # a trial in each state, alone
        one = tunetui_here("show", "plain", "--trial", str(number), "--json", storage=optuna_store)
        assert one.returncode == 0, one.stderr
        assert strict_json(one.stdout)["state"] in STATES

    rows = tunetui_here("export", "plain", storage=optuna_store)
    assert rows.returncode == 0, rows.stderr
    exported = list(csv.DictReader(io.StringIO(rows.stdout)))
    assert [r["state"] for r in exported] == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
    assert exported[1]["value"] == "inf" and exported[0]["param_kind"] in ("a", "b")
    as_json = tunetui_here("export", "plain", "--format", "json", storage=optuna_store)
    assert as_json.returncode == 0 and strict_json(as_json.stdout)[1]["value"] == "inf", as_json.stderr
    best_spec = tunetui_here("export", "plain", "--best-spec", "/dev/null", storage=optuna_store)
    assert best_spec.returncode == 1 and "not started by tunetui" in best_spec.stderr
    assert "internal error" not in best_spec.stderr

    assert tables(optuna_store) == before_tables
    assert file_bytes(optuna_store) == before_bytes


def test_several_objectives_show_every_value_and_the_pareto_front(optuna_store):
    shown = tunetui_here("show", "pareto", "--json", storage=optuna_store)
    assert shown.returncode == 0, shown.stderr
    info = strict_json(shown.stdout)
    assert info["directions"] == ["maximize", "minimize"] and info["best"] is None
    assert [(t["number"], t["values"]) for t in info["pareto_front"]] == [(0, [0.9, 0.3]), (1, [0.8, 0.1])]
    text = tunetui_here("show", "pareto", storage=optuna_store)
    assert "#0: values (0.9000, 0.3000)" in text.stdout and "#2" not in text.stdout, text.stdout
    rows = list(csv.DictReader(io.StringIO(tunetui_here("export", "pareto", storage=optuna_store).stdout)))
    assert [(r["value_0"], r["value_1"]) for r in rows] == [("0.9", "0.3"), ("0.8", "0.1"), ("0.7", "0.5")]
    assert "value" not in rows[0]
    trial = strict_json(tunetui_here("show", "pareto", "--trial", "2", "--json", storage=optuna_store).stdout)
    assert trial["values"] == [0.7, 0.5] and trial["value"] is None


def test_control_says_there_is_no_coordinator_and_writes_nothing(optuna_store, capsys):
    from engine.cli import main  # in-process: the command's own code, without a second interpreter

    before_tables, before_bytes = tables(optuna_store), file_bytes(optuna_store)
    for command in (["stop", "plain"], ["stop", "plain", "--now"], ["pause", "plain"], ["resume", "plain"],
                    ["kill", "plain", "4"]):  # fmt: skip
        assert main([*command, "--storage", optuna_store]) == 1
        assert "no tunetui coordinator for this study" in capsys.readouterr().err
    assert tables(optuna_store) == before_tables and file_bytes(optuna_store) == before_bytes


def test_opening_without_create_never_creates_tables(optuna_store):
    before = tables(optuna_store)
    store = Store(optuna_store, create=False)
    try:
        sid = store.study_id("plain")
        assert len(store.trials(sid)) == 6 and store.heartbeats(sid) == [] and store.epochs(sid) == []
        # no epochs without telemetry: what is known is the steps each trial reported (trial.report)
        assert [(t.epochs, t.reported) for t in store.trials(sid)] == [(0, 3)] * 4 + [(0, 1), (0, 0)]
        from engine.store import StoreError

        with pytest.raises(StoreError, match="no tunetui coordinator"):
            store.request(sid, "stop")
    finally:
        store.close()
    assert tables(optuna_store) == before


def test_tui_control_and_delete_create_no_table(optuna_store):
    """The TUI's control keypress and its study delete open the store without creating a table."""
    from engine.control import NoCoordinator, send
    from tui.data import delete_study

    before = tables(optuna_store)
    store = Store(optuna_store, create=False)  # as the Study screen opens it for a control key
    try:
        with pytest.raises(NoCoordinator, match="no tunetui coordinator"):
            send(store, "plain", "pause")
    finally:
        store.close()
    assert tables(optuna_store) == before
    if optuna_store.endswith(".log"):  # a journal file is never written: the delete is refused
        before_bytes = file_bytes(optuna_store)
        from engine.store import StoreError

        with pytest.raises(StoreError, match="read-only"):
            delete_study(optuna_store, "plain")
        assert file_bytes(optuna_store) == before_bytes
        return
    delete_study(optuna_store, "plain")
    assert tables(optuna_store) == before
    store = Store(optuna_store, read_only=True)
    try:
        assert [s["study_name"] for s in store.studies()] == ["pareto"]
    finally:
        store.close()


def test_strict_json_helper_rejects_bare_infinity():
    with pytest.raises(AssertionError):
        strict_json(json.dumps({"v": math.inf}))


def test_a_run_into_a_journal_file_is_refused_and_writes_nothing(tmp_path):
    from tests.optuna_only import build_optuna_only_store

    journal = str(tmp_path / "optuna.log")
    build_optuna_only_store(journal)
    before = file_bytes(journal)
    ran = tunetui_here("run", "studies/digits_mlp.toml", "--trials", "1", storage=journal)  # refused: in this process
    assert ran.returncode == 2 and "read-only" in ran.stderr, ran.stderr
    assert file_bytes(journal) == before
