"""A trial killed by the user reads as killed everywhere: the store (FAIL, fail_reason killed), `show`, the
export, and the TUI's table and header. A REAL coordinator runs it; `tunetui kill` kills the trial."""

from __future__ import annotations

import csv
import json

import pytest

from tests.helpers_run import StoreView, finish, start, tunetui_here, wait_for, write_spec
from tests.tui.conftest import wait_for as wait_in_app
from tests.tui.screen_text import screen_text
from tui.widgets.trial_table import TrialTable

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("no_stray_processes")]


async def test_a_killed_trial_is_killed_in_the_store_show_the_export_and_the_table(tmp_path, make_app):
    # 4 s trials with an epoch every 0.1 s: the victim has reported epochs when the kill lands (the case that
    # was recorded as an ordinary PRUNED)
    spec = write_spec(tmp_path, "kt", "slow", n_trials=2, epochs=40, task_params={"epoch_s": 0.1})
    url, view = f"sqlite:///{tmp_path}/store.db", StoreView(f"sqlite:///{tmp_path}/store.db")
    coordinator = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    wait_for(lambda: view.trials("kt").get(0, {}).get("epochs", 0) >= 1, 60, "trial 0 to report an epoch")
    killed = tunetui_here("kill", "kt", "0", storage=url)  # commands of another process: here, to save a start
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert finish(coordinator, 120) == 0, (tmp_path / "run.log").read_text()
    trials = view.trials("kt")
    assert (trials[0]["state"], trials[0]["reason"]) == ("FAIL", "killed")
    assert trials[1]["state"] == "COMPLETE"

    shown = json.loads(tunetui_here("show", "kt", "--json", storage=url).stdout)
    assert shown["fail_reasons"] == {"killed": 1} and shown["counts"].get("PRUNED", 0) == 0
    trial = json.loads(tunetui_here("show", "kt", "--trial", "0", "--json", storage=url).stdout)
    assert (trial["state"], trial["reason"]) == ("FAIL", "killed")
    exported = tmp_path / "kt.csv"
    assert tunetui_here("export", "kt", "--output", str(exported), storage=url).returncode == 0
    rows = {int(r["number"]): r for r in csv.DictReader(exported.open())}
    assert (rows[0]["state"], rows[0]["fail_reason"]) == ("FAIL", "killed")

    app = make_app(url, open_study="kt")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_in_app(pilot, lambda: len(app.screen.query_one(TrialTable).rows) == 2, what="two trials")
        await pilot.pause(0.1)
        lines = screen_text(app).splitlines()
        assert "trials 2: 1c 1k" in lines[0], lines[0]  # killed, not pruned or an unexplained fail
        row = next(line for line in lines if line.lstrip("› ").startswith("0 "))
        assert "killed" in row and "pruned" not in row, row
