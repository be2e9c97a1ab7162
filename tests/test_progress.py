"""A run's progress and ETA (engine/progress.py), in-process with exact values; the watcher re-reads the
run's target when a new run starts; `show` prints it."""

from __future__ import annotations

import time

import optuna
import pytest

from engine.progress import RECENT, RunProgress, eta_s, run_progress
from engine.store import Store, TrialRow
from tests.tui.builders import build_live_run, build_study
from tui.data import StudyWatcher, Want
from tui.study_model import StudyModel

NOW = 10_000.0


def row(number: int, state: str = "COMPLETE", host: str | None = "a", started: float | None = 0.0,
        finished: float | None = None, reason: str | None = None) -> TrialRow:  # fmt: skip
    return TrialRow(number, number + 1, state, None, {}, started, finished, reason, 0, 0, host=host)


def live(host: str = "a", workers: int = 1, alive: bool = True) -> dict:
    return {"host": host, "workers": workers, "alive": alive, "state": "running"}


def test_eta_is_the_typical_trial_times_what_is_left_less_what_runs_over_the_workers():
    assert eta_s(3, [10.0, 20.0, 30.0], workers=2, running_elapsed=[5.0]) == (3 * 20 - 5) / 2
    # one trial left, running for 30 s of a typical 40: 10 s, on one of the four workers
    assert eta_s(1, [40.0], workers=4, running_elapsed=[10.0, 30.0]) == 10.0
    assert eta_s(2, [10.0], workers=1, running_elapsed=[25.0]) == 10.0  # overdue: counted as done, not negative
    assert eta_s(0, [10.0], workers=1) == 0.0
    assert eta_s(0, [], workers=1) == 0.0
    assert eta_s(4, [], workers=2) is None  # nothing finished yet: unknown


def test_progress_counts_the_live_hosts_trials_toward_their_targets():
    rows = [
        row(0, finished=100.0), row(1, "PRUNED", started=100.0, finished=160.0),
        row(2, "FAIL", started=160.0, finished=180.0, reason="nan_loss"),
        row(3, "FAIL", started=180.0, finished=190.0, reason="orphaned"),  # not counted
        row(4, "RUNNING", started=NOW - 30.0),
        row(5, host="b", finished=5.0), row(6, host=None, finished=1.0),  # another host; Optuna alone
    ]  # fmt: skip
    progress = run_progress(rows, {"run_target:a": 10, "run_target:b": 4}, [live("a", workers=2)], NOW)
    # 3 counted of 10; durations 100, 60, 20: median 60; 7 left less the running trial's 30 s, over 2 workers
    assert progress == RunProgress(done=3, target=10, eta_s=(7 * 60 - 30) / 2)
    assert progress.text() == "3/10 trials · ETA 3m15s" and progress.short() == "3/10 ETA 3m15s"
    both = run_progress(rows, {"run_target:a": 10, "run_target:b": 4}, [live("a", 2), live("b", 1)], NOW)
    assert (both.done, both.target) == (4, 14)


def test_the_eta_follows_the_latest_trials_only():
    slow = [row(i, started=0.0, finished=1000.0 + i) for i in range(5)]
    fast = [row(5 + i, started=2000.0 + i, finished=2010.0 + i) for i in range(RECENT)]
    progress = run_progress(slow + fast, {"run_target:a": 16}, [live()], NOW)
    assert progress.eta_s == 10.0  # one left, 10 s each: the slow early trials are out of the window


def test_no_progress_without_a_live_run_or_a_target_and_an_unknown_eta_before_any_trial_ends():
    rows = [row(0, finished=10.0)]
    assert run_progress(rows, {"run_target:a": 5}, [live(alive=False)], NOW) is None
    assert run_progress(rows, {}, [live()], NOW) is None
    assert run_progress(rows, {"run_target:a": 5}, [], NOW) is None
    started = run_progress([row(0, "RUNNING", started=NOW - 5)], {"run_target:a": 50}, [live()], NOW)
    assert started.text() == "0/50 trials · ETA —"
    # the target is store data: a bool, a string or a 400-digit number (which overflowed the ETA's float,
    # an internal error in `show`) is no target
    for junk in (True, "50", -3, 10**400):
        assert run_progress(rows, {"run_target:a": junk}, [live()], NOW) is None


def test_the_study_header_shows_the_progress_while_a_run_is_active():
    from tui.data import StudyDelta

    model = StudyModel("s")
    model.apply(StudyDelta(name="s", study_id=1, status="running", coordinators=[live(workers=1)],
                           user_attrs={"run_target:a": 4}, trials=[row(0, finished=250.0), row(1, "RUNNING", started=200.0)],
                           polled_at=300.0, first=True))  # fmt: skip
    assert "[/b] · running 1/4 ETA 10m50s · best" in model.title()  # 3 left of 250 s each, less the running one's 100 s
    ended = model.apply(StudyDelta(name="s", study_id=1, status="finished", coordinators=[live(alive=False)],
                                   polled_at=400.0))  # fmt: skip
    assert ended.title and "1/4" not in model.title() and "ETA" not in model.title()


def test_the_watcher_reads_the_new_target_when_a_new_run_starts(tmp_path):
    url = f"sqlite:///{tmp_path}/runs.db"
    build_study(url, n_trials=6, running=2, heartbeat=None, host="host-a")
    store = Store(url)
    sid = store.study_id("digits_mlp")
    study = optuna.load_study(study_name="digits_mlp", storage=store.optuna_storage())
    study.set_user_attr("run_target:host-a", 6)
    store.beat(sid, "host-a", pid=1, started=time.time() - 60, state="running", workers=2, device="cpu")
    watcher = StudyWatcher(url, "digits_mlp")
    first = watcher.poll(Want())
    assert {r.host for r in first.trials} == {"host-a"}
    progress = run_progress(first.trials, first.user_attrs, first.coordinators, first.polled_at)
    assert (progress.done, progress.target) == (4, 6)
    assert watcher.poll(Want()).user_attrs is None  # nothing changed: the attrs are not read again

    study.set_user_attr("run_target:host-a", 10)  # a new run on the host: 4 more trials
    store.beat(sid, "host-a", pid=2, started=time.time(), state="running", workers=2, device="cpu")
    store.close()
    news = watcher.poll(Want())
    assert news.user_attrs is not None and news.user_attrs["run_target:host-a"] == 10


@pytest.fixture
def live_run_store(tmp_path) -> str:
    url = f"sqlite:///{tmp_path}/live.db"
    build_live_run(url)
    return url


def test_show_prints_the_runs_progress(live_run_store, capsys):
    import json

    from engine.cli import main

    assert main(["show", "digits_mlp", "--storage", live_run_store, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["progress"]["done"], shown["progress"]["target"]) == (4, 9)
    assert main(["show", "digits_mlp", "--storage", live_run_store]) == 0
    assert "run: 4/9 trials · ETA " in capsys.readouterr().out
