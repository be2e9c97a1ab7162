"""engine/control.py in-process: the one control path of `tunetui stop/pause/resume/kill` and the TUI."""

from __future__ import annotations

import threading
import time

import optuna
import pytest

from engine import control
from engine.cli import main
from engine.store import Store


@pytest.fixture
def live_store(tmp_path) -> str:
    """A study whose coordinator looks alive (a fresh heartbeat); no real coordinator answers."""
    url = f"sqlite:///{tmp_path}/store.db"
    Store(url).close()  # the tt_* tables, as a coordinator creates them
    optuna.create_study(study_name="s", storage=url)
    store = Store(url)
    store.beat(store.study_id("s"), "host-a", pid=4242, started=time.time(), state="running")
    store.close()
    return url


def answer_first_request(url: str, result: str) -> threading.Thread:
    """What a coordinator does: claim the study's open request and answer it."""

    def coordinator() -> None:
        store = Store(url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = [r for r in store.control_rows(store.study_id("s")) if not r["done"]]
            if rows:
                store.answer_request(rows[0]["id"], "host-a", result)
                break
            time.sleep(0.05)
        store.close()

    thread = threading.Thread(target=coordinator)
    thread.start()
    return thread


@pytest.mark.parametrize("result,ok", [("paused", True), ("error: no running trial 9", False)])
def test_ask_returns_the_coordinators_answer(live_store, result, ok):
    coordinator = answer_first_request(live_store, result)
    store = Store(live_store, create=False)
    try:
        answer = control.ask(store, "s", "pause")
    finally:
        store.close()
        coordinator.join()
    assert answer == control.Answer(ok, result)


def test_no_answer_within_the_wait_says_queued(live_store):
    store = Store(live_store, create=False)
    try:
        answer = control.ask(store, "s", "stop", wait_s=0.3)
        assert (answer.ok, answer.answered) == (True, False) and "queued" in answer.text
        assert [r["action"] for r in store.control_rows(store.study_id("s"))] == ["stop"]
    finally:
        store.close()


def test_a_cancelled_wait_ends_at_once(live_store):
    store = Store(live_store, create=False)
    try:
        request_id = control.send(store, "s", "pause")
        began = time.monotonic()
        answer = control.wait_for_answer(store, request_id, "pause", wait_s=60, cancelled=lambda: True)
    finally:
        store.close()
    assert not answer.answered and time.monotonic() - began < 30


def test_a_study_without_a_live_coordinator_gets_no_request(live_store):
    store = Store(live_store)
    store.beat(store.study_id("s"), "host-a", state="finished")
    try:
        with pytest.raises(control.NoCoordinator, match="has no running coordinator .status: finished"):
            control.send(store, "s", "pause")
        assert store.control_rows(store.study_id("s")) == []
    finally:
        store.close()


def test_the_cli_prints_the_answer_and_exits_by_it(live_store, capsys):
    study = optuna.load_study(study_name="s", storage=live_store)
    for _ in range(10):  # trials 0-9: kill sends nothing for a trial the study does not have
        study.ask()
    coordinator = answer_first_request(live_store, "killing trial 3")
    assert main(["kill", "s", "3", "--storage", live_store]) == 0
    coordinator.join()
    assert capsys.readouterr().out.strip() == "killing trial 3"
    coordinator = answer_first_request(live_store, "error: no running trial 9")
    assert main(["kill", "s", "9", "--storage", live_store]) == 1
    coordinator.join()
    assert "error: no running trial 9" in capsys.readouterr().err
    assert main(["pause", "nope", "--storage", live_store]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err
