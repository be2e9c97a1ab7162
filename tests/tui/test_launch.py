"""The Launch screen: defaults from the spec, input checks, and the real CLI's refusal shown verbatim."""

from __future__ import annotations

import os

from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.screens.editor import EditorScreen
from tui.screens.launch import LaunchScreen


async def open_launch(pilot, app, spec):
    app.push_screen(LaunchScreen(spec))
    # mounted: the storage field is filled in on mount, right before the spec is read
    await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.query("#launch-storage")
                   and app.screen.query_one("#launch-storage").value, what="the Launch screen")  # fmt: skip
    return app.screen


async def test_shows_the_spec_and_fills_defaults_from_it(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        text = screen_text(app)
        assert "digits_mlp: maximize val_acc on task digits" in text
        assert screen.query_one("#launch-trials").value == "30"
        assert screen.query_one("#launch-device").value == "auto"
        assert screen.query_one("#launch-storage").value == small_store


async def test_overrides_must_be_key_value(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        screen.query_one("#launch-set").value = "train.epochs"
        await pilot.press("ctrl+l")
        assert "overrides are KEY=VALUE" in screen_text(app)


async def test_the_cli_refusal_is_shown_and_nothing_starts(small_store, make_app, studies_dir):
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        screen.query_one("#launch-set").value = "budget.n_trials=0"
        await pilot.press("ctrl+l")
        # the message's lines appear once the Static is laid out again: wait for the last one
        await wait_for(pilot, lambda: "nothing was started" in screen_text(app), timeout=60)
        assert "could not start digits_mlp" in screen_text(app) and "budget.n_trials" in screen_text(app)
        assert isinstance(app.screen, LaunchScreen)


async def test_a_broken_spec_is_reported_and_ctrl_o_opens_the_editor(small_store, make_app, studies_dir):
    bad = studies_dir / "bad.toml"
    bad.write_text('[study]\nname = "bad"\n[sampler]\nkind = "nope"\n')
    app = make_app(small_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_launch(pilot, app, bad)
        assert "this spec has problems" in screen_text(app) and "sampler" in screen_text(app)
        await pilot.press("ctrl+l")
        assert "fix the spec first" in screen_text(app)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, EditorScreen), what="the editor")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchScreen), what="the Launch screen again")


async def test_more_workers_than_cores_is_refused_and_nothing_starts(tmp_path, make_app, studies_dir):
    cores = len(os.sched_getaffinity(0))
    url = f"sqlite:///{tmp_path}/fresh.db"
    app = make_app(url)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        screen.query_one("#launch-device").value = "cpu"
        screen.query_one("#launch-workers").value = str(cores + 1)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: "nothing was started" in screen_text(app), timeout=30)
        text = screen_text(app)
        assert "could not start digits_mlp" in text and f"more CPU workers than the {cores} core(s)" in text
        assert isinstance(app.screen, LaunchScreen)
    assert not (tmp_path / "fresh.db").exists()


async def test_a_count_that_is_no_whole_number_is_refused_in_words_and_nothing_starts(tmp_path, make_app, studies_dir):
    """The trials and workers fields read as the CLI's --trials/--workers (engine/launch.py whole_number):
    was `invalid literal for int() with base 10: '1e3'`, and for a pasted page of digits Python's limit."""
    url = f"sqlite:///{tmp_path}/fresh.db"
    app = make_app(url)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_launch(pilot, app, studies_dir / "digits_mlp.toml")
        for field, typed, says in (("trials", "1e3", "trials: expected a whole number, e.g. 3 (got '1e3')"),
                                   ("workers", "9" * 5000, "workers: a number of 5000 digits is far too large")):  # fmt: skip
            screen.query_one(f"#launch-{field}").value = typed
            await pilot.press("ctrl+l")
            await wait_for(pilot, lambda says=says: says in screen_text(app), what=says)
            screen.query_one(f"#launch-{field}").value = ""
        assert isinstance(app.screen, LaunchScreen)
    assert not (tmp_path / "fresh.db").exists()
