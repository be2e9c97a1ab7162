"""Notes (N on a trial, N on a study), an edited copy (Q), a retry (R) and a remedy (F) from the Study screen,
driven by keys on real stores (tests/tui/builders.py); stores tunetui only reads refuse before any form."""

from __future__ import annotations

import optuna
import pytest
from textual.widgets import Input

from engine.store import Store
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.screens.trial_forms import NoteScreen, ParamsScreen
from tui.widgets.trial_table import TrialTable


def trials(url: str, study: str = "digits_mlp") -> list:
    return optuna.load_study(study_name=study, storage=Store(url, create=False).optuna_storage()).trials


async def on_trial(pilot, number: int, count: int = 12) -> None:
    table = pilot.app.screen.query_one(TrialTable)
    await wait_for(pilot, lambda: len(table.rows) == count, what=f"{count} trials")
    table.move_to(number)
    await wait_for(pilot, lambda: pilot.app.screen.model.selected == number, what=f"trial #{number} selected")


def toasts(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_n_writes_a_note_on_a_finished_trial_shown_as_text_in_detail(any_store, make_app):
    app = make_app(any_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await on_trial(pilot, 3)
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen), what="the note form")
        app.screen.query_one(Input).value = "best so far [b]bold?[/b]"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "note saved on trial #3" in toasts(app), what="the note saved")
        assert trials(any_store)[3].user_attrs["note"] == "best so far [b]bold?[/b]"
        await pilot.press("4")  # the Detail tab
        await wait_for(pilot, lambda: "note: best so far [b]bold?[/b]" in screen_text(app), what="the note in Detail")


async def test_n_on_the_studies_screen_writes_the_study_note_shown_in_detail(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, StudiesScreen) and app.screen.selected_name, what="the list")
        await pilot.press("N")
        await wait_for(pilot, lambda: isinstance(app.screen, NoteScreen), what="the note form")
        app.screen.query_one(Input).value = "lr sweep for the paper"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "note saved on study digits_mlp" in toasts(app), what="the note saved")
        await pilot.press("enter", "4")  # open the study, Detail tab
        await wait_for(pilot, lambda: "study note: lr sweep for the paper" in screen_text(app), what="the study note")
    study = optuna.load_study(study_name="digits_mlp", storage=Store(small_store, create=False).optuna_storage())
    assert study.user_attrs["note"] == "lr sweep for the paper"


async def test_q_enqueues_an_edited_copy_and_refuses_values_outside_the_space(any_store, make_app):
    app = make_app(any_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await on_trial(pilot, 2)
        source = trials(any_store)[2].params
        await pilot.press("Q")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen), what="the params form")
        assert "float 0.0003..0.03 log" in screen_text(app)
        app.screen.query_one("#param-0", Input).value = "0.5"  # lr, above the space's 0.03
        await pilot.press("enter")
        await wait_for(pilot, lambda: "outside the search space" in screen_text(app), what="the refusal")
        assert isinstance(app.screen, ParamsScreen) and len(trials(any_store)) == 12  # nothing enqueued
        app.screen.query_one("#param-0", Input).value = "0.005"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "enqueued trial #12" in toasts(app), what="the copy enqueued")
        await wait_for(pilot, lambda: 12 in app.screen.query_one(TrialTable).rows, what="the WAITING row")
    copy = trials(any_store)[12]
    assert copy.state == optuna.trial.TrialState.WAITING
    assert copy.system_attrs["fixed_params"] == {**source, "lr": 0.005}
    assert copy.user_attrs == {"origin": f"copy of #2, edited: lr {source['lr']!r} -> 0.005"}


async def test_r_retries_only_a_failed_trial(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await on_trial(pilot, 3)
        await pilot.press("R")
        await wait_for(pilot, lambda: "only a failed trial is retried" in toasts(app), what="the refusal")
        await on_trial(pilot, 9)  # FAIL nan_loss
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert "Retry trial #9?" in screen_text(app) and "origin: retry of #9" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: "enqueued trial #12 (retry of #9)" in toasts(app), what="the retry")
    retry, failed = trials(small_store)[12], trials(small_store)[9]
    assert retry.system_attrs["fixed_params"] == failed.params and retry.user_attrs == {"origin": "retry of #9"}


async def test_f_shows_the_remedy_diff_before_enqueueing_it(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await on_trial(pilot, 5)  # an overfitting finding
        dropout = trials(small_store)[5].params["dropout"]
        new = round(min(0.5, dropout + 0.2), 6)
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the diff")
        shown = screen_text(app)
        assert f"dropout: {dropout!r} -> {new!r}" in shown and "remedy of #5: dropout +0.2" in shown
        await pilot.press("n")  # nothing goes in without a yes
        await pilot.pause(0.2)
        assert len(trials(small_store)) == 12
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the diff again")
        await pilot.press("y")
        await wait_for(pilot, lambda: "enqueued trial #12" in toasts(app), what="the remedy enqueued")
        await on_trial(pilot, 12, 13)
        await pilot.press("4")
        await wait_for(pilot, lambda: "enqueued: remedy of #5: dropout +0.2" in screen_text(app), what="its origin")
    remedy = trials(small_store)[12]
    where = "params" if new <= 0.4 else "overrides"  # the space's dropout is 0..0.4
    placed = remedy.system_attrs["fixed_params"] if where == "params" else remedy.user_attrs["overrides"]
    assert placed["dropout"] == pytest.approx(new)


async def test_stores_tunetui_only_reads_refuse_notes_and_enqueues_before_any_form(optuna_store, make_app):
    app = make_app(optuna_store, open_study="plain")
    async with app.run_test(size=(100, 30)) as pilot:
        await on_trial(pilot, 0, 6)
        for key in ("N", "Q", "F"):
            app._notifications.clear()
            await pilot.press(key)
            await wait_for(pilot, lambda: "nothing was written" in toasts(app), what=f"{key} refused")
            assert isinstance(app.screen, StudyScreen)
        assert "only reads" in toasts(app) or "read-only" in toasts(app)
        await pilot.press("escape")  # the Studies screen: its N (a study's note) is refused too
        await wait_for(pilot, lambda: isinstance(app.screen, StudiesScreen) and app.screen.selected_name, what="list")
        app._notifications.clear()
        await pilot.press("N")
        await wait_for(pilot, lambda: "nothing was written" in toasts(app), what="the study note refused")
        assert isinstance(app.screen, StudiesScreen)
