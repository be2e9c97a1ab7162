"""When to stop tuning: Optuna's terminator estimate of the improvement still to gain, asked of a child
process (engine/trainer/regret.py, the torch side) so that the coordinator, the CLI and the TUI never import
torch; what the estimate means for a run (the opt-in `[budget] stop_when_improvement_below`), and how it is
recorded in the study's attrs and read back by `show` and the TUI's header.

Recorded per host, as the run targets are: `improvement:<host>` (the latest estimate of that host's run:
`{"improvement": x, "complete": n}`) and `stopped_by:<host>` (why that host's last run stopped early, a
sentence; cleared when the host starts a new run)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.text import safe

MIN_COMPLETE = 3  # fewer complete trials give the Gaussian process nothing to fit: no estimate
ROOT = Path(__file__).resolve().parent.parent  # the checkout: the child runs its `engine`, not the cwd's modules


def improvement_key(host: str) -> str:
    return f"improvement:{host}"


def stopped_key(host: str) -> str:
    return f"stopped_by:{host}"


@dataclass(frozen=True)
class Estimate:
    improvement: float | None  # the regret bound of the best trial, in the objective's units; None: none
    complete: int  # complete trials it was estimated from
    error: str | None = None  # why there is no estimate

    def text(self) -> str:
        if self.improvement is None:
            return "improvement left —"
        return f"improvement left ≤ {self.improvement:.3g} ({self.complete} trials)"

    def short(self) -> str:
        """For a one-line header: "gain left ≤ 0.0145" (or the error, short)."""
        return "gain left —" if self.improvement is None else f"gain left ≤ {self.improvement:.3g}"

    def record(self) -> dict:
        return {"improvement": self.improvement, "complete": self.complete}


def stop_verdict(estimate: Estimate, threshold: float, min_trials: int) -> str | None:
    """Why the run stops now, or None: the estimate fell below the spec's threshold after enough trials."""
    if estimate.improvement is None or estimate.complete < min_trials or estimate.improvement >= threshold:
        return None
    return (f"terminator: the improvement left ({estimate.improvement:.3g}) fell below {threshold:g} "
            f"after {estimate.complete} complete trials")  # fmt: skip


def recorded(attrs: Mapping[str, Any], hosts: Sequence[str] | None = None) -> Estimate | None:
    """The latest estimate a run recorded (of `hosts`, else of any host; the most trials wins)."""
    found = []
    for key, value in attrs.items():
        host = key.partition(":")[2]
        if key.startswith("improvement:") and isinstance(value, dict) and (hosts is None or host in hosts):
            improvement = value.get("improvement")
            if isinstance(improvement, int | float) and isinstance(value.get("complete"), int):
                found.append(Estimate(float(improvement), value["complete"]))
    return max(found, key=lambda e: e.complete, default=None)


def stopped_by(attrs: Mapping[str, Any], coordinators: Sequence[Mapping[str, Any]] | None = None) -> str | None:
    """Why a host's last run stopped early ("terminator: ..."), when one did; with the heartbeat rows, only
    of hosts whose coordinator ended `stopped` (another host's old early stop says nothing of this one).
    Store text: control bytes stripped."""
    hosts = None if coordinators is None else {c["host"] for c in coordinators if c.get("state") == "stopped"}
    reasons = sorted(safe(v) for k, v in attrs.items()
                     if k.startswith("stopped_by:") and v and (hosts is None or k.partition(":")[2] in hosts))  # fmt: skip
    return reasons[0] if reasons else None


def request_line(complete_trials: list, direction) -> bytes:
    """What the estimator child reads: the trials' values, params and distributions as one JSON line."""
    from optuna.distributions import distribution_to_json
    from optuna.study import StudyDirection

    trials = [{"value": t.value, "params": t.params,
               "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()}}
              for t in complete_trials]  # fmt: skip
    maximize = direction == StudyDirection.MAXIMIZE
    return (json.dumps({"direction": "maximize" if maximize else "minimize", "trials": trials}) + "\n").encode()


class Estimator:
    """A long-lived estimator child (imports cost seconds, an estimate ~0.2-1 s): one request at a time,
    answered without blocking the caller (`poll`). The child ends when its stdin closes."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("TUNETUI_STORAGE", "PGPASSWORD", "PGPASSFILE")}
        env["OMP_NUM_THREADS"] = "1"  # one core: the workers train on the others
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen([sys.executable, "-m", "engine.trainer.regret"], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        start_new_session=True)  # fmt: skip
        self.asked: int | None = None  # complete trials of the request in flight

    @property
    def busy(self) -> bool:
        return self.asked is not None

    def submit(self, complete_trials: list, direction) -> None:
        """Ask for the estimate of these complete trials (FrozenTrials) of a study going `direction`."""
        try:
            self.process.stdin.write(request_line(complete_trials, direction))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child is gone: `poll` says so
        self.asked = len(complete_trials)

    def poll(self, timeout: float = 0.0) -> Estimate | None:
        """The answer to the request in flight, once it came (else None)."""
        if self.asked is None or not select.select([self.process.stdout], [], [], timeout)[0]:
            return None
        line, complete, self.asked = self.process.stdout.readline(), self.asked, None
        if not line:
            return Estimate(None, complete, "the estimator process ended")
        answer = json.loads(line)
        return Estimate(answer.get("improvement"), complete, answer.get("error"))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def estimate_once(complete_trials: list, direction, timeout: float = 120.0) -> Estimate:
    """One estimate, waited for (`show --improvement`, the TUI's `T` from a thread)."""
    if len(complete_trials) < MIN_COMPLETE:
        return Estimate(None, len(complete_trials), f"needs {MIN_COMPLETE} complete trials")
    estimator = Estimator()
    try:
        estimator.submit(complete_trials, direction)
        return estimator.poll(timeout) or Estimate(None, len(complete_trials), "the estimate took too long")
    finally:
        estimator.close()


def estimate_study(store, name: str) -> Estimate:
    """The estimate for a study of any store (read-only), waited for: `show --improvement`, the TUI's `T`."""
    from optuna.trial import TrialState

    study = store.optuna_study(name)
    if len(study.directions) > 1:
        return Estimate(None, 0, "a study with several objectives has no single improvement to estimate")
    return estimate_once(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), study.direction)
