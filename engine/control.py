"""Control requests to a study's live coordinators (stop, stop_now, pause, resume, kill): the one path for
`tunetui stop/pause/resume/kill` and the TUI's keys. The request row goes through engine/store; the first
coordinator to answer it writes the answer, which `wait_for_answer` reads back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.report import find_study
from engine.store import NO_COORDINATOR, Store

ANSWER_WAIT_S = 10.0  # a coordinator polls its requests about once a second; longer means it is busy or gone
POLL_S = 0.2


class NoCoordinator(Exception):
    """Nothing was sent: no coordinator of the study is alive to answer."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    text: str
    answered: bool = True  # False: no coordinator answered within the wait; the request stays queued


def send(store: Store, study_name: str, action: str, arg: str | None = None) -> int:
    """Insert the request for the study's live coordinators; its id. NoCoordinator when none is alive (a
    store made by Optuna alone has none: nothing is written to it)."""
    study = find_study(store, study_name)
    if not store.has_table("tt_control"):
        raise NoCoordinator(f"study {study_name}: {NO_COORDINATOR}")
    if not any(b["alive"] for b in study["coordinators"]):
        raise NoCoordinator(f"study {study_name} has no running coordinator (status: {study['status']})")
    return store.request(study["study_id"], action, arg)


def wait_for_answer(
    store: Store,
    request_id: int,
    action: str,
    wait_s: float = ANSWER_WAIT_S,
    cancelled: Callable[[], bool] = lambda: False,
) -> Answer:
    """The first coordinator's answer ("error: ..." is a refusal), or after `wait_s` the word that the
    request is queued. `cancelled` ends the wait early (the TUI closing)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not cancelled():
        row = store.request_status(request_id)
        if row and row["done"]:
            result = str(row["result"])
            return Answer(not result.startswith("error"), result)
        time.sleep(POLL_S)
    return Answer(True, f"request {action} queued; the coordinator has not answered yet", answered=False)


def ask(store: Store, study_name: str, action: str, arg: str | None = None, wait_s: float = ANSWER_WAIT_S) -> Answer:
    """Send the request and wait for its answer; a refusal to send is an Answer that is not ok."""
    try:
        request_id = send(store, study_name, action, arg)
    except NoCoordinator as err:
        return Answer(False, str(err), answered=False)
    return wait_for_answer(store, request_id, action, wait_s)
