"""The lean journal reader (engine/store/journal_log.py) against Optuna's own JournalStorage read of the same
file, field by field: journals written through Optuna's API with every operation its op codes cover
(every trial state, several objectives, user and system attrs, intermediate values, params of every
distribution, enqueued and added trials, a deleted study, records another process wrote that Optuna
ignores), read whole, in steps and as they grow; and the fallback to Optuna's reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from engine.store import Store, StoreError
from engine.store.journal import JournalStore, OptunaJournalReader
from engine.store.journal_log import JournalLog

CHOICES = (None, True, 3, 2.5, "text", 'quote " and ünïcode')


def journal(path: Path) -> optuna.storages.JournalStorage:
    """Optuna's own writer; each call is another process as far as the journal knows (a new worker id)."""
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def build_every_operation(path: Path) -> None:
    """A journal with a line of every op code Optuna writes, and lines Optuna's replay ignores."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = journal(path)
    gone = optuna.create_study(study_name="gone", storage=storage)
    gone.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    optuna.delete_study(study_name="gone", storage=storage)  # its trials keep their ids

    study = optuna.create_study(study_name="every", storage=storage, direction="maximize")
    study.set_user_attr("note", {"nested": [1, 2.5, "x"]})
    storage.set_study_system_attr(study._study_id, "system", "hidden")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -1.0, 1.0)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_float("stepped", 0.0, 1.0, step=0.25)
        layers = trial.suggest_int("layers", 1, 8)
        trial.suggest_int("width", 16, 256, log=True)
        trial.suggest_int("even", 0, 10, step=2)
        choice = trial.suggest_categorical("choice", CHOICES)
        trial.suggest_categorical('ключ "q"', ["a", "b"])  # a name JSON escapes
        trial.set_user_attr("choice_was", repr(choice))
        trial.set_user_attr("fail_reason", None if trial.number != 3 else "boom")
        trial.storage.set_trial_system_attr(trial._trial_id, "sys", trial.number)
        for step in range(3):
            trial.report(x * step if step != 1 else math.nan, step)
        if trial.number == 2:
            raise optuna.TrialPruned()
        if trial.number == 3:
            raise RuntimeError("boom")
        if trial.number == 4:
            return math.inf
        return x + lr + layers

    study.optimize(objective, n_trials=6, catch=(RuntimeError,))
    finished = study.trials[0]
    other = journal(path)  # another process: its lines on a finished trial are written, then ignored
    for late in (
        lambda: other.set_trial_intermediate_value(finished._trial_id, 9, 1.0),
        lambda: other.set_trial_user_attr(finished._trial_id, "late", 1),
        lambda: other.set_trial_param(finished._trial_id, "late", 0.5, FloatDistribution(0, 1)),
        lambda: other.set_trial_state_values(finished._trial_id, TrialState.FAIL),
    ):
        with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
            late()
    running = study.ask()
    running.suggest_float("x", -1.0, 1.0)
    with pytest.raises(ValueError):  # a param whose distribution differs from the study's: ignored
        running.suggest_categorical("layers", ["one", "two"])
    running.report(0.5, 0)
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):  # the name taken: the line is ignored
        optuna.create_study(study_name="every", storage=other)
    study.enqueue_trial({"x": 0.25, "layers": 2}, user_attrs={"queued": True})  # WAITING, a template trial
    study.enqueue_trial({"x": 0.5})
    popped = study.ask()  # the first enqueued trial, set RUNNING
    study.tell(popped, 1.5)
    study.add_trial(optuna.trial.create_trial(  # a finished trial added whole
        params={"x": 0.1, "choice": "text"}, value=2.0, user_attrs={"added": 1},
        distributions={"x": FloatDistribution(-1.0, 1.0), "choice": CategoricalDistribution(CHOICES)},
        intermediate_values={0: 1.0, 4: 2.0}, state=TrialState.COMPLETE,
    ))  # fmt: skip
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # added finished: later lines ignored
        other.set_trial_user_attr(study.trials[-1]._trial_id, "late", 1)

    pareto = optuna.create_study(study_name="pareto", storage=storage, directions=["maximize", "minimize"])
    for values in ((0.9, 0.3), (0.8, 0.1), (0.7, 0.5)):
        trial = pareto.ask()
        trial.suggest_int("k", 1, 3)
        pareto.tell(trial, list(values))
    pareto.add_trial(optuna.trial.create_trial(values=[0.95, 0.2], params={"k": 2},
                                               distributions={"k": IntDistribution(1, 3)}))  # fmt: skip
    pareto.tell(pareto.ask(), state=TrialState.FAIL)
    gone_again = optuna.create_study(study_name="gone", storage=storage)  # the name reused: a new study id
    gone_again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with path.open("a") as f:  # written only by Rustuna; Optuna's replay skips it
        f.write(json.dumps({"op_code": 10, "worker_id": "w", "study_id": 1, "trial_ids": [0]}) + "\n")


def same(a, b) -> bool:
    """Equal, types included, NaN equal to NaN (an intermediate value may be NaN)."""
    return repr(a) == repr(b)


def lean_and_optuna(path: Path) -> tuple[JournalStore, JournalStore]:
    lean = JournalStore(str(path), read_only=True)
    assert isinstance(lean.reader, JournalLog), "the lean reader gave up on a journal Optuna wrote"
    replay = JournalStore(str(path), read_only=True)
    replay.reader = OptunaJournalReader(path)
    return lean, replay


def assert_same_reads(lean: JournalStore, replay: JournalStore) -> None:
    """Every read tunetui makes of a journal, through both readers."""
    assert same(lean.studies(), replay.studies())
    for study in replay.studies():
        sid = study["study_id"]
        assert lean.study_id(study["study_name"]) == replay.study_id(study["study_name"]) == sid
        assert lean.directions(sid) == replay.directions(sid)
        assert same(lean.study_attrs(sid), replay.study_attrs(sid))
        rows = replay.trials(sid)
        assert same(lean.trials(sid), rows)  # every TrialRow field: state, values, params, times, reason
        since = rows[len(rows) // 2].trial_id
        assert same(lean.trials(sid, since_trial_id=since), [r for r in rows if r.trial_id > since])
        assert same(lean.pareto_front(sid), replay.pareto_front(sid))
        numbers = [r.number for r in rows]
        with lean.reading() as a, replay.reading() as b:
            assert same(
                lean.intermediate_values(a, sid, numbers), replay.intermediate_values(b, sid, numbers)
            )
            assert same(lean.intermediate_values(a, sid, numbers, after_step=1),
                        replay.intermediate_values(b, sid, numbers, after_step=1))  # fmt: skip
            for n in numbers:
                assert same(lean.trial_attrs_in(a, sid, n), replay.trial_attrs_in(b, sid, n))
        assert same(lean.attr_by_number(sid, "choice_was"), replay.attr_by_number(sid, "choice_was"))


def test_every_operation_reads_as_optunas_replay(tmp_path):
    path = tmp_path / "every.log"
    build_every_operation(path)
    lean, replay = lean_and_optuna(path)
    every = lean.study_id("every")
    states = [r.state for r in replay.trials(every)]
    assert set(states) == {"COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"}, states
    assert_same_reads(lean, replay)
    assert isinstance(lean.reader, JournalLog)  # no fallback along the way
    rows = lean.trials(every)
    assert rows[0].params["choice"] in CHOICES and "late" not in rows[0].params  # the late lines ignored
    assert rows[6].state == "RUNNING" and "layers" not in rows[6].params  # the categorical "layers" ignored
    assert rows[4].value == math.inf and rows[3].reason == "boom"


def test_rows_come_before_params_and_values_are_read_when_asked(tmp_path):
    """Step 1 gives the rows (states, values, times) without params; the next read gives them all."""
    path = tmp_path / "steps.log"
    build_every_operation(path)
    lean, replay = lean_and_optuna(path)
    sid = lean.study_id("every")
    with lean.reading() as reading:
        first = lean.changed_trials(reading, sid, 0, (), params_limit=2)
        assert lean.reader.params_pending
        assert all(r.params == {} for r in first) and [r.state for r in first] == [
            r.state for r in replay.trials(sid)
        ]
        assert same(lean.changed_trials(reading, sid, 0, (), params_limit=None), replay.trials(sid))
    assert not lean.reader.params_pending
    assert_same_reads(lean, replay)


def test_a_growing_journal_is_read_from_where_the_last_read_stopped(tmp_path):
    path = tmp_path / "grows.log"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="s", storage=journal(path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    lean = JournalStore(str(path), read_only=True)
    sid = lean.study_id("s")
    assert len(lean.trials(sid)) == 2
    read_to = lean.reader.offset
    assert read_to == path.stat().st_size

    running = study.ask()
    running.suggest_float("x", 0, 1)
    running.report(0.25, 0)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    text = path.read_bytes()
    with path.open("ab") as f:  # another process halfway through writing a line
        f.write(b'{"op_code":8,"worker_id":"w","trial_id":2,"user_a')
    rows = lean.trials(sid)
    assert [r.state for r in rows] == ["COMPLETE", "COMPLETE", "RUNNING", "COMPLETE"]
    assert lean.reader.offset == len(text)  # the unfinished line waits
    with path.open("ab") as f:
        f.write(b'ttr":{"note":"done"}}\n')
    with lean.reading() as reading:
        assert lean.trial_attrs_in(reading, sid, 2) == {"note": "done"}
        assert lean.intermediate_values(reading, sid, [2]) == [(2, 0, 0.25)]
    assert lean.reader.offset == path.stat().st_size
    study.tell(running, 0.5)
    _, replay = lean_and_optuna(path)
    assert_same_reads(lean, replay)
    assert isinstance(lean.reader, JournalLog)


def test_lines_in_another_form_are_read_as_json(tmp_path):
    """Key order, spaces and CRLF line ends are not what Optuna writes but are JSON Optuna reads."""
    path = tmp_path / "other.log"
    records = [
        {"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]},
        {"worker_id": "w", "op_code": 4, "study_id": 0, "datetime_start": "2026-01-02T03:04:05.000006+00:00"},
        {"op_code": 5, "worker_id": "w", "trial_id": 0, "param_name": "n", "param_value_internal": 2.0,
         "distribution": '{"name": "IntDistribution", "attributes": {"log": false, "step": 1, "low": 1, "high": 3}}'},
        {"op_code": 7, "worker_id": "w", "trial_id": 0, "step": 0, "intermediate_value": -1},
        {"op_code": 6, "worker_id": "w", "trial_id": 0, "state": 1, "values": [-0.5],
         "datetime_complete": "2026-01-02T03:04:06+01:00"},
    ]  # fmt: skip
    path.write_bytes(b"".join(json.dumps(r).encode() + b"\r\n" for r in records))
    lean, replay = lean_and_optuna(path)
    assert_same_reads(lean, replay)
    assert isinstance(lean.reader, JournalLog)
    (row,) = lean.trials(0)
    assert (
        row.params == {"n": 2}
        and row.values == (-0.5,)
        and row.finished - row.started == pytest.approx(-3599.000006)
    )


def test_a_record_the_lean_reader_does_not_know_is_read_by_optuna(tmp_path):
    path = tmp_path / "odd.log"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name="s", storage=journal(path)).optimize(lambda t: t.suggest_int("n", 1, 3), 2)
    with path.open("a") as f:  # Optuna takes any JSON value as a study name; tunetui's reader only text
        f.write(json.dumps({"op_code": 0, "worker_id": "w", "study_name": 7, "directions": [2]}) + "\n")
    store = Store(str(path), read_only=True)
    assert isinstance(store.reader, OptunaJournalReader)
    assert [s["study_name"] for s in store.studies()] == ["s", 7]
    assert [r.params for r in store.trials(store.study_id("s"))] == [r.params for r in store.trials(0)]
    assert len(store.trials(0)) == 2


def test_an_operation_no_optuna_knows_is_a_store_error(tmp_path):
    path = tmp_path / "newer.log"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name="s", storage=journal(path))
    before = path.read_bytes()
    with path.open("a") as f:
        f.write(json.dumps({"op_code": 42, "worker_id": "w"}) + "\n")
    with pytest.raises(StoreError, match="is not an Optuna journal file"):
        Store(str(path), read_only=True)
    with path.open("ab") as f:  # and one that is not JSON, after the first read
        f.truncate(len(before))
    store = Store(str(path), read_only=True)
    with path.open("ab") as f:
        f.write(b"not json\n" + before.splitlines(keepends=True)[0])
    bad = len(before.splitlines()) + 1  # json's own message said "line 1 column 1", within the line
    with pytest.raises(StoreError, match=f"is not an Optuna journal file \\(line {bad} is not JSON: 'not json'\\)"):
        store.studies()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["newer.log"]  # no lock file, nothing beside it


def test_the_study_screen_gets_a_big_journal_in_two_reads(tmp_path, monkeypatch):
    """The TUI's watcher: the rows first (no params), then, on the poll right after, every param."""
    from tui import data

    path = tmp_path / "big.log"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.create_study(study_name="s", storage=journal(path)).optimize(lambda t: t.suggest_int("n", 1, 3), 5)
    monkeypatch.setattr(data, "FIRST_PAINT_ROWS", 2)  # "big": more than 2 trials
    monkeypatch.setattr(data, "_journals", {})
    watcher = data.StudyWatcher(str(path), "s")
    first = watcher.poll(data.Want())
    assert first.partial and len(first.trials) == 5 and all(r.params == {} for r in first.trials)
    second = watcher.poll(data.Want())
    assert not second.partial and [sorted(r.params) for r in second.trials] == [["n"]] * 5


def test_the_shared_optuna_only_journals_read_as_optunas_replay(tmp_path):
    """The journals the store and TUI tests use (tests/optuna_only.py): one, two and three objectives."""
    from tests.optuna_only import build_optuna_only_store, build_three_objective_store

    path = tmp_path / "optuna.log"
    build_optuna_only_store(str(path))
    build_three_objective_store(str(path))
    lean, replay = lean_and_optuna(path)
    assert [s["study_name"] for s in lean.studies()] == ["plain", "pareto", "three"]
    assert_same_reads(lean, replay)
    assert isinstance(lean.reader, JournalLog)
