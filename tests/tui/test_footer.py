"""The key footer (tui/widgets/footer.py) rebuilds only when the keys it shows change, and never while
another screen covers its screen; the keys are right again when that screen shows again."""

from __future__ import annotations

from textual.widgets import Footer

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.widgets.trial_table import TrialTable


async def test_the_footer_rebuilds_only_on_the_shown_screen_and_only_for_new_keys(small_store, make_app, monkeypatch):
    rebuilt: list[str] = []
    recompose = Footer.recompose

    async def counted(footer):
        rebuilt.append(type(footer.screen).__name__)
        return await recompose(footer)

    monkeypatch.setattr(Footer, "recompose", counted)
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: "digits_mlp" in screen_text(app), what="the studies list")
        await pilot.pause(0.2)
        rebuilt.clear()
        app.push_screen(StudyScreen("digits_mlp"))
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen) and app.screen.model.rows, what="trials")
        table = app.screen.query_one(TrialTable)
        await pilot.press("down", "down", "up")  # focus stays, the keys stay
        app.screen.refresh_bindings()
        app.screen.refresh_bindings()
        await pilot.pause(0.2)
        assert "StudiesScreen" not in rebuilt  # covered: Textual's Footer rebuilt it 6 times
        assert rebuilt.count("StudyScreen") <= 1, rebuilt  # its keys were published 5 times, the same keys
        assert table.has_focus and "e Export" in screen_text(app).splitlines()[-1]
        rebuilt.clear()
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, StudiesScreen), what="the studies list again")
        await wait_for(pilot, lambda: "Export" not in screen_text(app).splitlines()[-1], what="the Studies keys")
        assert "StudyScreen" not in rebuilt
