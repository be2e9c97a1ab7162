"""The Studies screen: list, open, filter, delete with confirmation, new study and spec editing entry points."""

from __future__ import annotations

from textual.widgets import DataTable, OptionList

from engine.store import Store
from tests.tui.builders import build_study
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.confirm import ConfirmScreen
from tui.screens.editor import EditorScreen
from tui.screens.launch import LaunchScreen
from tui.screens.picker import SpecPicker
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen


def rows(app) -> int:
    return app.screen.query_one(DataTable).row_count


async def test_lists_every_study_with_state_trials_best_started_and_device(small_store, make_app):
    build_study(small_store, name="second", n_trials=3, seed=4)
    app = make_app(small_store)
    async with app.run_test(size=(120, 24)) as pilot:  # below 120 columns `started` is left out
        await wait_for(pilot, lambda: rows(app) == 2, what="two studies")
        text = screen_text(app)
        assert "digits_mlp" in text and "second" in text
        assert "finished" in text and "12: 10c 1p 1f" in text and "0.963" in text
        assert "2025-01-06 09:00" in text and "cpu" in text


async def test_enter_opens_the_study_and_escape_comes_back(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rows(app) == 1)
        await pilot.press("enter")
        assert isinstance(app.screen, StudyScreen) and app.screen.study_name == "digits_mlp"
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen)


async def test_slash_filters_by_name(small_store, make_app):
    build_study(small_store, name="resnet_c10", n_trials=2, seed=3)
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rows(app) == 2)
        await pilot.press("slash", "r", "e", "s")
        assert rows(app) == 1 and "resnet_c10" in screen_text(app)
        await pilot.press("enter")  # back to the table, filter kept
        assert rows(app) == 1
        await pilot.press("escape")
        assert rows(app) == 2


async def test_delete_asks_first_and_n_keeps_the_study(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rows(app) == 1)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Delete study digits_mlp?" in screen_text(app)
        await pilot.press("n")
        assert isinstance(app.screen, StudiesScreen)
        await pilot.pause(0.2)
        assert rows(app) == 1


async def test_delete_with_y_removes_the_study_from_the_store(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rows(app) == 1)
        await pilot.press("d", "y")
        await wait_for(pilot, lambda: rows(app) == 0, what="the study gone")
        assert "No study in this store yet" in screen_text(app)
    assert Store(small_store, read_only=True).studies() == []


async def test_delete_of_a_running_study_is_refused(running_store, make_app):
    app = make_app(running_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rows(app) == 1)
        await pilot.press("d")
        assert isinstance(app.screen, StudiesScreen)
        assert any("stop it before deleting" in n.message for n in app._notifications)


async def test_n_picks_a_spec_and_opens_the_launch_screen(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        assert isinstance(app.screen, SpecPicker)
        assert "digits_mlp.toml" in screen_text(app)
        options = app.screen.query_one(OptionList)
        options.highlighted = next(i for i in range(options.option_count)
                                   if options.get_option_at_index(i).id.endswith("digits_mlp.toml"))  # fmt: skip
        await pilot.press("enter")
        assert isinstance(app.screen, LaunchScreen)
        assert app.screen.spec_path.name == "digits_mlp.toml"
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen)


async def test_capital_e_opens_a_spec_in_the_editor(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("E", "enter")
        assert isinstance(app.screen, EditorScreen)


async def test_an_empty_or_missing_store_says_how_to_begin(tmp_path, make_app):
    app = make_app(f"sqlite:///{tmp_path}/none.db")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "No study in this store yet" in screen_text(app))
        await pilot.press("enter")  # nothing to open: a hint, not a crash
        assert isinstance(app.screen, StudiesScreen)
    assert not (tmp_path / "none.db").exists()  # the TUI never creates a store


async def test_question_mark_lists_every_key_and_closes(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        text = screen_text(app)
        for line in ("Open", "New", "Edit spec", "Delete", "Filter", "Quit", "command palette"):
            assert line in text
        await pilot.press("escape")
        assert isinstance(app.screen, StudiesScreen)


async def test_q_quits(small_store, make_app):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
    assert app.return_code == 0
