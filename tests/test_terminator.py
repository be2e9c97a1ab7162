"""When to stop tuning (engine/terminator.py, engine/run/early_stop.py): the rules in-process with exact
values, the estimator child against Optuna's own evaluator, and one real run stopped by the estimate. One
estimator child serves the module (starting one imports torch: seconds)."""

from __future__ import annotations

import json
import math
import time
from unittest import mock

import optuna
import pytest
from optuna.trial import TrialState

from engine.run.early_stop import ImprovementCheck
from engine.terminator import Estimate, Estimator, estimate_once, recorded, stop_verdict, stopped_by
from tests.helpers_run import StoreView, finish, start, tunetui_here, write_spec
from tui.data import StudyDelta
from tui.study_model import StudyModel


def test_the_run_stops_only_below_the_threshold_after_enough_trials():
    assert stop_verdict(Estimate(0.0004, 25), threshold=0.001, min_trials=20) == (
        "terminator: the improvement left (0.0004) fell below 0.001 after 25 complete trials"
    )
    assert stop_verdict(Estimate(0.0004, 19), threshold=0.001, min_trials=20) is None  # too few trials
    assert stop_verdict(Estimate(0.001, 25), threshold=0.001, min_trials=20) is None  # not below
    assert stop_verdict(Estimate(None, 25, "empty search space"), threshold=0.001, min_trials=20) is None


def test_the_recorded_estimate_with_the_most_trials_wins_and_junk_is_ignored():
    attrs = {
        "improvement:a": {"improvement": 0.5, "complete": 10},
        "improvement:b": {"improvement": 0.02, "complete": 30},
        "improvement:c": {"improvement": "0.0", "complete": 99},  # not a number: written by someone else
        "improvement:d": None,
        "run_target:a": 40,
    }
    assert recorded(attrs) == Estimate(0.02, 30)
    assert recorded(attrs, hosts=["a"]) == Estimate(0.5, 10)
    assert recorded({}) is None
    assert Estimate(0.02, 30).text() == "improvement left ≤ 0.02 (30 trials)"
    assert Estimate(0.0123456, 30).short() == "gain left ≤ 0.0123"
    assert stopped_by({"stopped_by:a": None, "stopped_by:b": "terminator: ..."}) == "terminator: ..."
    assert stopped_by({"stopped_by:a": None}) is None
    beats = [{"host": "a", "state": "stopped"}, {"host": "b", "state": "finished"}]
    assert stopped_by({"stopped_by:a": "terminator: x"}, beats) == "terminator: x"
    assert stopped_by({"stopped_by:b": "terminator: old"}, beats) is None  # b's last run ended otherwise
    # store text: its ESC bytes reached the terminal through `show` (rich's markup=False keeps them)
    assert stopped_by({"stopped_by:a": "\x1b[2J\x1b]0;pwned\x07terminator: x"}, beats) == "[2J]0;pwnedterminator: x"


def _study(n: int, direction: str = "maximize") -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: -((t.suggest_float("x", -3, 3) - 1) ** 2) + 0.1 * t.suggest_int("k", 1, 4)
                   + (0.05 if t.suggest_categorical("c", ["a", "b"]) == "a" else 0.0)
                   + 0.01 * math.log(t.suggest_float("lr", 1e-4, 1e-1, log=True)), n_trials=n)  # fmt: skip
    return study


def test_the_header_says_stopped_by_the_terminator_and_the_gain_left():
    model = StudyModel("s")
    attrs = {"stopped_by:a": "terminator: the improvement left (0.0004) fell below 0.001 after 25 complete trials",
             "improvement:a": {"improvement": 0.0004, "complete": 25}}  # fmt: skip
    model.apply(StudyDelta(name="s", study_id=1, status="stopped", user_attrs=attrs, first=True,
                           coordinators=[{"host": "a", "state": "stopped", "alive": False}]))  # fmt: skip
    assert "stopped: terminator" in model.title() and "gain left ≤ 0.0004" in model.title()
    model.apply(StudyDelta(name="s", study_id=1, status="running", user_attrs={**attrs, "stopped_by:a": None}))
    assert "stopped" not in model.title()


@pytest.fixture(scope="module")
def estimator_child():
    """The module's estimator child, started on first use; a test that ended it leaves the next a new one."""
    children: list[Estimator] = []

    def live() -> Estimator:
        if not children or children[-1].process.poll() is not None or children[-1].process.stdin.closed:
            children.append(Estimator())
        return children[-1]

    yield live
    for child in children:
        child.close()


def test_a_run_stops_when_the_improvement_left_falls_below_the_threshold(tmp_path, estimator_child):
    """The one real run: trials of 0.3 s, 100 of them allowed, a threshold any estimate is below."""
    estimator = estimator_child()  # for `show --improvement` below: its imports overlap the run
    extra = "\n[space.k]\ntype = \"int\"\nlow = 1\nhigh = 4\n"
    spec = write_spec(tmp_path, "enough", task="slow", n_trials=100, task_params={"epoch_s": 0.3}, extra=extra)
    text = spec.read_text().replace("n_trials = 100", "n_trials = 100\ntimeout_s = 90\n"
                                    "stop_when_improvement_below = 1e9\nstop_min_trials = 4")  # fmt: skip
    spec.write_text(text)
    url = f"sqlite:///{tmp_path}/enough.db"
    process = start(spec, url, "--workers", "1", log=tmp_path / "run.log")
    assert finish(process, timeout=150) == 0, (tmp_path / "run.log").read_text()[-2000:]
    view = StoreView(url)
    trials = view.trials("enough")
    host = next(iter({t["host"] for t in trials.values()}))
    why = json.loads(view.study_attr("enough", f"stopped_by:{host}"))
    assert why.startswith("terminator: the improvement left") and len(trials) < 100
    assert json.loads(view.study_attr("enough", f"improvement:{host}"))["complete"] >= 4
    assert [b["state"] for b in view.heartbeat("enough")] == ["stopped"]
    shown = tunetui_here("show", "enough", storage=url)
    assert shown.returncode == 0 and "stopped: terminator: the improvement left" in shown.stdout
    assert "improvement left ≤" in shown.stdout
    # estimated now, by the module's child (what estimate_once would start), left running for the next test
    with mock.patch("engine.terminator.Estimator", lambda: estimator), mock.patch.object(estimator, "close"):
        data = json.loads(tunetui_here("show", "enough", "--json", "--improvement", storage=url).stdout)
    complete = sum(1 for t in trials.values() if t["state"] == "COMPLETE")
    assert data["stopped_by"] == why and data["improvement"]["complete"] == complete
    assert data["improvement"]["improvement"] > 0 and data["improvement"]["error"] is None


def test_the_estimator_child_gives_optunas_own_regret_bound_and_the_check_says_stop(estimator_child):
    estimator = estimator_child()  # its imports overlap this process's own below
    from optuna.terminator import RegretBoundEvaluator  # torch, in this test process only

    from engine.trainer.regret import SEED

    study = _study(12, "minimize")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    expected = RegretBoundEvaluator(seed=SEED).evaluate(complete, study.direction)
    logs: list[str] = []
    check = ImprovementCheck(threshold=1e9, min_trials=12, host="here", log=logs.append, estimator=lambda: estimator)
    try:
        estimator.submit(complete, study.direction)
        assert estimator.busy and estimator.poll() is None  # asked, not waited for
        assert estimator.poll(timeout=120) == Estimate(pytest.approx(expected, rel=1e-9), 12)
        # the coordinator's check: asks once trials finished, never waits, records the estimate, says stop
        assert check.turn(study, finished=12) is None
        assert estimator.busy
        why = None
        deadline = time.monotonic() + 120
        while why is None and time.monotonic() < deadline:
            why = check.turn(study, finished=12)
            time.sleep(0.05)
    finally:
        check.close()
    assert why == f"terminator: the improvement left ({expected:.3g}) fell below 1e+09 after 12 complete trials"
    assert study.user_attrs["improvement:here"] == {"improvement": pytest.approx(expected, rel=1e-9), "complete": 12}
    assert any(line.startswith("improvement left ≤") for line in logs)
    assert estimator.process.poll() is not None  # ended with its stdin
    too_few = estimate_once(complete[:2], study.direction)
    assert too_few.improvement is None and "3 complete trials" in too_few.error
