"""Outside text in the TUI: study names with markup, ESC bytes and 500 characters, a categorical choice
`[/]`, and a task's error text with ESC bytes and markup, on every screen that shows them (Pilot)."""

from __future__ import annotations

import pytest

from engine.text import safe
from tests.hostile import (
    ERROR_TEXT,
    ESC_NAME,
    FAILING_STUDY,
    LONG_NAME,
    MARKUP_CHOICE,
    MARKUP_NAME,
    build_hostile_store,
)
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory) -> str:
    return build_hostile_store(tmp_path_factory.mktemp("hostile-tui"))


def toasts(app) -> list[str]:
    return [n.message for n in app._notifications]


def terminal_safe(app) -> str:
    text = screen_text(app)
    assert not any(ch in text for ch in "\x1b\x07\x9b"), repr(text)
    return text


async def test_studies_screen_lists_hostile_names_as_text(hostile_store, make_app):
    app = make_app(hostile_store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: MARKUP_NAME in screen_text(app), what="the study a[/]b listed")
        text = terminal_safe(app)
        assert "[31mred" in text and FAILING_STUDY in text and "nnnnnnnn" in text


@pytest.mark.parametrize("name", (MARKUP_NAME, ESC_NAME, LONG_NAME), ids=("markup", "esc", "long"))
async def test_study_screen_table_and_detail_show_names_and_choices_as_text(hostile_store, make_app, name):
    app = make_app(hostile_store, open_study=name)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 1, what="the trial")
        await wait_for(pilot, lambda: MARKUP_CHOICE in screen_text(app), what="the choice [/] in the table")
        assert name[:20].replace("\x1b", "") in terminal_safe(app)
        await pilot.press("4")  # detail
        await wait_for(pilot, lambda: f"choice  {MARKUP_CHOICE}" in screen_text(app), what="detail params")
        terminal_safe(app)
        await pilot.press("x")  # nothing to stop: the toast names the study
        await wait_for(pilot, lambda: toasts(app), what="the toast")
        await pilot.pause(0.2)  # rendered: a toast read as markup would fail here
        assert toasts(app) == [f"{safe(name)} is finished: nothing to stop"]


async def test_failing_task_error_text_in_detail_log_and_toasts_is_plain_text(hostile_store, make_app):
    app = make_app(hostile_store, open_study=FAILING_STUDY)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 1, what="the trial")
        await pilot.press("4")
        await wait_for(pilot, lambda: "boom [bold]loud[/bold]" in screen_text(app), what="the error in detail")
        terminal_safe(app)
        await pilot.press("6")
        await wait_for(pilot, lambda: "FAIL error: RuntimeError: [31mboom" in screen_text(app), what="log")
        terminal_safe(app)
        screen = app.screen
        assert isinstance(screen, StudyScreen)
        screen.notify(f"could not start: {screen.model.details[0].attrs['fail_hint']}", severity="error")
        await wait_for(pilot, lambda: toasts(app), what="the error toast")
        await pilot.pause(0.2)
        assert toasts(app) == ["could not start: " + safe("RuntimeError: " + ERROR_TEXT)]
        terminal_safe(app)


async def test_a_spec_problem_quoting_markup_and_esc_is_shown_as_text_in_launch_and_editor(
    hostile_store, make_app, studies_dir
):
    from tui.screens.editor import EditorScreen
    from tui.screens.launch import LaunchScreen

    bad = studies_dir / "bad[b].toml"
    bad.write_text('[study]\nname = "x"\n[sampler]\nkind = "[/]\\u001b[31m"\n')
    app = make_app(hostile_store)
    async with app.run_test(size=(120, 30)) as pilot:
        app.push_screen(LaunchScreen(bad))
        # words, not lines: the message wraps where the (temporary) path is long
        await wait_for(pilot, lambda: "unknown kind '[/][31m'" in " ".join(screen_text(app).split()),
                       what="the spec's problem")  # fmt: skip
        terminal_safe(app)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
        await wait_for(pilot, lambda: "'[/][31m'; expected" in screen_text(app), what="the editor's issue")
        assert "bad[b].toml · invalid" in terminal_safe(app)
