"""The Launch screen on a study that exists: it says so (trials, changed [train] values) before adding to it;
its fields keep their text on focus; and the trial count launched is the one a later `s` starts again with."""

from __future__ import annotations

import pytest

from engine.store import Store
from tests.helpers_run import write_spec
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tests.tui.test_launch import open_launch
from tui.screens.restart import RestartScreen
from tui.screens.study import StudyScreen


async def test_an_existing_study_is_named_with_its_trials_and_changed_train_values(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        await wait_for(pilot, lambda: "digits_mlp exists in this store: 12 trials (same [train])" in screen_text(app),
                       what="the notice")  # fmt: skip
        screen.query_one("#launch-set").value = "train.epochs=2 train.activation=tanh"
        await wait_for(pilot, lambda: "epochs 20 -> 2" in screen_text(app), what="the changed values")
        assert "activation 'relu' -> 'tanh'" in screen_text(app)


async def test_a_new_study_gets_no_notice(tmp_path, make_app, studies_dir):
    app = make_app(f"sqlite:///{tmp_path / 'fresh.db'}")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        await pilot.pause(0.3)
        assert "exists in this store" not in screen_text(app)


async def test_a_focused_field_keeps_its_text(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        await wait_for(pilot, lambda: screen.query_one("#launch-trials").value == "30", what="the budget")
        await pilot.press("tab", "shift+tab")  # focus away and back: the text is not selected
        await pilot.press("5")
        assert screen.query_one("#launch-trials").value == "305"


def complete(url: str, name: str) -> int:
    store = Store(url, read_only=True)
    try:
        return sum(t.state == "COMPLETE" for t in store.trials(store.study_id(name)))
    finally:
        store.close()


def run_target(url: str, name: str) -> int | None:
    store = Store(url, read_only=True)
    try:
        attrs = store.study_attrs(store.study_id(name))
    finally:
        store.close()
    return next((v for k, v in attrs.items() if k.startswith("run_target:")), None)


@pytest.mark.slow
async def test_s_starts_again_with_the_trial_count_launched(tmp_path, make_app, studies_dir, no_stray_processes):
    spec = write_spec(studies_dir, "again", n_trials=4)  # the spec's budget: 4; the form asks for 1
    url = f"sqlite:///{tmp_path / 'again.db'}"
    app = make_app(url)
    async with app.run_test(size=(200, 30)) as pilot:
        screen = await open_launch(pilot, app, spec)
        screen.query_one("#launch-trials").value = "1"
        screen.query_one("#launch-device").value = "cpu"
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, StudyScreen), timeout=90, what="the launch")
        await wait_for(pilot, lambda: app.screen.model.shown_status() == "finished", timeout=120,
                       what="the first run's end")  # fmt: skip
        assert run_target(url, "again") == 1
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, RestartScreen), what="the spec choice")
        await pilot.press("enter")
        await wait_for(pilot, lambda: run_target(url, "again") == 2, timeout=90, what="1 more trial, not 4")
        await wait_for(pilot, lambda: complete(url, "again") == 2, timeout=120, what="the second trial")
