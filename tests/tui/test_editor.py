"""The spec editor: validation as you type (debounced), errors with path and line, save when valid, fork."""

from __future__ import annotations

from textual.widgets import OptionList, TextArea

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.editor import EditorScreen, ForkScreen, set_study_name
from tui.screens.studies import StudiesScreen


async def open_editor(pilot, app, studies_dir):
    app.push_screen(EditorScreen(studies_dir / "digits_mlp.toml"))
    await pilot.pause(0.2)
    return app.screen


def replace_text(editor: EditorScreen, old: str, new: str) -> None:
    area = editor.query_one(TextArea)
    area.load_text(area.text.replace(old, new, 1))


async def test_a_valid_spec_says_valid(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(140, 24)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        assert editor.spec is not None and "valid: study digits_mlp, 9 dimensions" in screen_text(app)


async def test_errors_appear_after_a_pause_with_field_path_and_line(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        before = editor.validations
        replace_text(editor, "low = 3e-4", "low = -1.0")
        await pilot.pause(0.05)
        assert editor.validations == before  # debounced: not on every keystroke
        await wait_for(pilot, lambda: editor.spec is None, what="validation")
        issues = editor.query_one("#editor-issues", OptionList)
        text = str(issues.get_option_at_index(0).prompt)
        line = next(i for i, s in enumerate(editor.text.splitlines(), 1) if s.strip() == "[space.lr]")
        assert text.startswith(f"line {line}: space.lr") and "log scale needs low > 0" in text
        assert "1 problem" in str(editor.query_one("#editor-status").render())


async def test_problems_of_every_kind_are_listed_at_once_with_a_did_you_mean(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, "seed = 0", "sed = 0")  # an unknown key
        replace_text(editor, "n_trials = 30", "n_trials = 0")  # a value out of range
        replace_text(editor, 'kind = "tpe"', 'kind = "tpee"')  # a choice that does not exist
        await wait_for(pilot, lambda: len(editor.issues) == 3, what="three problems")
        issues = editor.query_one("#editor-issues", OptionList)
        listed = [str(issues.get_option_at_index(i).prompt) for i in range(issues.option_count)]
        assert len(listed) == 3 and "did you mean 'seed'?" in listed[0], listed
        assert "budget.n_trials" in listed[1] and "unknown kind 'tpee'" in listed[2], listed
        assert "3 problems" in str(editor.query_one("#editor-status").render())


async def test_enter_on_an_issue_jumps_to_its_line(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, "n_trials = 30", "n_trials = 0")
        await wait_for(pilot, lambda: editor.spec is None)
        await pilot.press("tab", "enter")
        area = editor.query_one(TextArea)
        assert area.has_focus
        assert "n_trials = 0" in area.document.get_line(area.cursor_location[0])


async def test_ctrl_s_refuses_an_invalid_spec_and_saves_a_valid_one(small_store, make_app, studies_dir):
    path = studies_dir / "digits_mlp.toml"
    original = path.read_text()
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, 'kind = "tpe"', 'kind = "nope"')
        await pilot.press("ctrl+s")
        assert path.read_text() == original
        assert any("not saved" in n.message for n in app._notifications)
        replace_text(editor, 'kind = "nope"', 'kind = "tpe"')
        replace_text(editor, "seed = 0", "seed = 7")
        await pilot.press("ctrl+s")
        assert "seed = 7" in path.read_text() and not editor.dirty


async def test_typing_updates_the_text_and_the_verdict(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        await pilot.press("ctrl+home", *"x = ", "enter")  # an unknown top-level key
        await wait_for(pilot, lambda: editor.spec is None and editor.issues)
        assert editor.dirty and "(modified)" in screen_text(app)


async def test_fork_saves_a_copy_under_a_new_name_and_shows_the_space_diff(
    small_store, make_app, studies_dir
):
    app = make_app(small_store)
    async with app.run_test(size=(100, 36)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, "high = 3e-2", "high = 0.1")
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, ForkScreen)
        text = screen_text(app)
        assert "search space changes" in text and "+high = 0.1" in text and "-high = 0.03" in text
        app.screen.query_one("#fork-name").value = "digits_wide_lr"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen))
    fork = studies_dir / "digits_wide_lr.toml"
    assert 'name = "digits_wide_lr"' in fork.read_text() and "high = 0.1" in fork.read_text()
    assert "high = 3e-2" in (studies_dir / "digits_mlp.toml").read_text()  # the original is untouched


async def test_fork_refuses_a_bad_name(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_editor(pilot, app, studies_dir)
        await pilot.press("ctrl+f")
        app.screen.query_one("#fork-name").value = "bad name!"
        await pilot.press("enter")
        assert isinstance(app.screen, ForkScreen) and "a study name is" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, EditorScreen)


async def test_escape_with_unsaved_changes_asks(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, "seed = 0", "seed = 1")
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert isinstance(app.screen, EditorScreen)
        await pilot.press("escape", "y")
        assert isinstance(app.screen, StudiesScreen)


def test_set_study_name_replaces_only_the_study_table_name():
    text = '[study]\nname = "a"\n[task]\nname = "digits"\n'
    assert set_study_name(text, "b") == '[study]\nname = "b"\n[task]\nname = "digits"\n'
    assert set_study_name("[study]\nseed = 1\n", "c") == '[study]\nname = "c"\nseed = 1\n'


async def test_the_problem_lines_are_marked_in_the_text_until_fixed(small_store, make_app, studies_dir):
    from tui.widgets.spec_text_area import PROBLEM_STYLE, SpecTextArea

    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        editor = await open_editor(pilot, app, studies_dir)
        replace_text(editor, "n_trials = 30", "n_trials = 0")
        replace_text(editor, "low = 3e-4", "low = -1.0")
        await wait_for(pilot, lambda: len(editor.issues) == 2, what="two problems")
        lines = editor.text.splitlines()
        budget = lines.index("n_trials = 0") + 1
        space = next(i for i, s in enumerate(lines, 1) if s.strip() == "[space.lr]")
        assert sorted(issue.line for issue in editor.issues) == [budget, space]
        area = editor.query_one(SpecTextArea)
        assert area.problem_lines == {budget - 1, space - 1}
        await pilot.press("tab", "enter")  # jump to the first problem: its line is on screen
        row = area.cursor_location[0]
        assert row in area.problem_lines
        await pilot.press("down")  # the cursor's line has its own background: look at the problem line from below
        await pilot.pause(0.1)
        drawn = area.render_line(row - area.scroll_offset.y)
        assert any(seg.style and seg.style.bgcolor == PROBLEM_STYLE.bgcolor and seg.style.underline
                   for seg in drawn if seg.text.strip())  # fmt: skip
        clean = area.render_line(row + 1 - area.scroll_offset.y)
        assert not any(seg.style and seg.style.bgcolor == PROBLEM_STYLE.bgcolor for seg in clean)
        replace_text(editor, "n_trials = 0", "n_trials = 30")
        replace_text(editor, "low = -1.0", "low = 3e-4")
        await wait_for(pilot, lambda: editor.spec is not None, what="valid again")
        assert area.problem_lines == frozenset()
        assert not any(seg.style and seg.style.bgcolor == PROBLEM_STYLE.bgcolor
                       for seg in area.render_line(row - area.scroll_offset.y))  # fmt: skip
