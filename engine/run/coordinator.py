"""The coordinator: owns one study on this host (Optuna ask/tell), feeds workers, writes the store.

An event loop over a `RunState` (engine/run/state.py): each turn handles a signal, polls control requests,
beats the heartbeat, sweeps orphans, starts trials while the state is RUNNING and the budget allows, then
handles the workers' messages and replaces dead or overdue workers. The parts live next to it:
ledger.py (budgets, orphans, grid: pure), trials.py (each trial from ask to tell), pool.py (workers),
lease.py (lock and heartbeat), study.py (opening the study), protocol.py (the pipe's messages).

Fault model (docs/faults.md): a coordinator may die at any instruction (kill -9, OOM killer, power off);
the next one on the same host takes the study over through the per-(store, study, host) flock, fails the
trials the dead one left RUNNING (`orphaned`) and resumes the dead run's budget. Workers die with their
coordinator. Several hosts may run one study against one PostgreSQL store; each counts its own trials.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from engine.progress import target_key
from engine.pruning import PruneCopy, supports
from engine.report import KILLED
from engine.run import ledger
from engine.run.early_stop import ImprovementCheck
from engine.run.errors import CoordinatorError, StoreLost
from engine.run.lease import Lease, host_name
from engine.run.pool import Pool, SlotPlan, device_summary, plan
from engine.run.state import RunState
from engine.run.study import open_study, spec_commit
from engine.run.trials import Progress, Trials
from engine.space import grid_size
from engine.spec import StudySpec
from engine.store import Store, StoreError
from engine.terminator import stopped_key

optuna.logging.set_verbosity(optuna.logging.WARNING)

__all__ = ["Coordinator", "CoordinatorError", "Progress", "RunOptions", "StoreLost", "host_name"]

HEARTBEAT_EVERY_S = 2.0
CONTROL_EVERY_S = 0.5
CONTROL_FRESH_S = 30.0  # a request still unanswered when a coordinator starts is applied if this young
ORPHAN_SWEEP_S = 20.0  # how often RUNNING trials of other hosts' dead coordinators are looked for
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


@dataclass
class RunOptions:
    n_trials: int | None = None  # trials this run adds (None: spec budget)
    timeout_s: float | None = None
    workers: int | None = None
    device: str | None = None
    graceful: bool = False
    spec_path: str | None = None
    spec_text: str | None = None
    threads: int | None = None  # torch threads per worker (None: the cores split between workers)
    worker_max_trials: int | None = None  # replace a worker after this many trials (1: fresh per trial)


class Coordinator:
    def __init__(self, spec: StudySpec, store: Store, options: RunOptions,
                 on_progress: Callable[[Progress], None] | None = None,
                 log: Callable[[str], None] = print):  # fmt: skip
        self.spec, self.store, self.options, self.log = spec, store, options, log
        self.on_progress = on_progress or (lambda p: None)
        self.host = host_name()
        self.lease = Lease(store, spec.study.name, self.host, time.time())
        self.plan: list[SlotPlan] = []  # fixed when the run starts
        self.pool = Pool([], store.url)
        self.study: optuna.Study | None = None
        self.study_id = -1
        self.trials: Trials | None = None  # once the study is open
        self.prune_copy: PruneCopy | None = None  # decisions without a store read (median, percentile)
        self.state = RunState.RUNNING
        self.stopped_by_user = False
        self.pending_signal: int | None = None  # stop now: set by a signal handler
        self.first_signal: int | None = None  # decides the exit code, graceful or not
        self.control_seen = 0  # highest tt_control id this coordinator has looked at
        self.control_backlog: list[dict] = []  # requests sent while no coordinator ran, still fresh
        self.failure: str | None = None  # why the run failed as a whole (exit 1), for the caller to print
        self.stopped_early: str | None = None  # why the run stopped before its target (the terminator's estimate)
        self.improvement: ImprovementCheck | None = None  # the opt-in stop when little improvement is left

    def run(self) -> int:
        """Run the study to its budget (or until stopped). Returns the process exit code."""
        self.lease.acquire()
        try:
            return self._run()
        finally:
            self.lease.release()

    def _run(self) -> int:
        # a bad device fails here, before the store is touched
        self.plan = plan(self.spec, self.options.device, self.options.workers, self.options.threads, self.log)
        self.pool = Pool(self.plan, self.store.url)
        self._open_study()
        trials = self.trials
        crashed_before = ledger.crashed_before(self.store.heartbeats(self.study_id), self.host)
        trials.recover_orphans()
        done = ledger.counted(self.study.get_trials(deepcopy=False), self.host)
        key = target_key(self.host)
        target, new = ledger.target(done, self.study.user_attrs.get(key), crashed_before, self.options.n_trials,
                                    self.spec.budget.n_trials)  # fmt: skip
        if new:
            self.study.set_user_attr(key, target)
        if self.study.user_attrs.get(stopped_key(self.host)):  # a new run: the last one's early stop is history
            self.study.set_user_attr(stopped_key(self.host), None)
        budget = self.spec.budget
        if budget.stop_when_improvement_below is not None:
            self.improvement = ImprovementCheck(budget.stop_when_improvement_below, budget.stop_min_trials,
                                                self.host, self.log)  # fmt: skip
        trials.progress.target, trials.progress.done = target, done
        trials.refresh_best()
        self._control_start()
        deadline = time.time() + self.options.timeout_s if self.options.timeout_s else None
        self._install_signal_handlers()
        self._beat()
        resumed = " (resuming a crashed run)" if crashed_before and self.options.n_trials is None else ""
        self.log(f"study {self.spec.study.name} on {self.host}: {done}/{target} trials counted{resumed}, "
                 f"{len(self.plan)} worker(s) on {device_summary(self.plan)}")  # fmt: skip
        final, exit_code = "crashed", 1
        try:
            self.pool.start()
            exit_code = self._loop(target, deadline)
            if self.first_signal is not None:
                final = "interrupted"
            else:
                final = "stopped" if self.stopped_by_user or self.stopped_early else "finished"
            if self.first_signal is None and exit_code == 0:
                self.failure = trials.outcomes.verdict(self.spec.study.name)
                if self.failure:
                    self.log(self.failure)
                    exit_code = 1
        except StoreLost:
            final = None  # the store is gone: its path must not be written (it would create a new file)
            raise
        except BaseException as err:
            trials.abandon_running(f"the coordinator failed: {type(err).__name__}: {err}")
            raise
        finally:
            if self.improvement is not None:
                self.improvement.close()
            self.pool.shutdown()
            try:
                if final is not None:
                    self._beat(state=final)
            except StoreError as err:
                self.log(f"could not write the final heartbeat: {err}")
        return exit_code

    def _open_study(self) -> None:
        o = self.options
        self.study = open_study(self.spec, self.store, self.host, o.spec_path, o.spec_text)
        self.study_id = self.study._study_id
        if supports(self.study.pruner) and len(self.study.directions) == 1:
            self.prune_copy = PruneCopy(self.study.pruner, self.study.direction)
            self.prune_copy.refresh(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        self.trials = Trials(self.spec, self.store, self.study, self.study_id, self.pool, self.host, self.prune_copy,
                             spec_path=o.spec_path, spec_commit=spec_commit(o.spec_path),
                             worker_max_trials=o.worker_max_trials, interrupted=lambda: self.pending_signal is not None,
                             log=self.log, on_progress=self.on_progress)  # fmt: skip

    def _loop(self, target: int, deadline: float | None) -> int:
        trials, progress = self.trials, self.trials.progress
        last_beat = last_control = last_sweep = time.time()
        while True:
            now = time.time()
            if self.pending_signal is not None:
                return self._handle_signal()
            if now - last_control >= CONTROL_EVERY_S:
                self._poll_control()
                last_control = now
            if now - last_beat >= HEARTBEAT_EVERY_S:
                self._check_store_file()
                self._beat()
                last_beat = now
            if now - last_sweep >= ORPHAN_SWEEP_S:
                trials.recover_orphans()
                last_sweep = now
            if deadline and now > deadline and not self.state.stopping:
                self.log("time budget reached: finishing running trials")
                self.state = RunState.STOPPING
            if self.state is RunState.STOPPING_NOW:
                trials.abort_running(KILLED)
            if trials.outcomes.repeating and not self.state.stopping:
                self.log(f"{trials.outcomes.streak_length} trials in a row failed the same way: no new trials")
                self.state = RunState.STOPPING
            busy, idle = len(self.pool.busy()), self.pool.idle()
            grid_left = None
            if target - progress.done - busy > 0 and (idle or not busy):
                grid_left = ledger.grid_points_left(grid_size(self.spec), self.study.get_trials(deepcopy=False))
            if self.state is RunState.RUNNING:
                # trials resumed from a checkpoint ran toward an earlier budget: they always run on
                starts = max(ledger.to_start(target, progress.done, busy, grid_left), len(trials.resumable))
                for slot in idle[:starts]:
                    if self.pending_signal is not None:
                        break
                    trials.dispatch(slot)
            if not self.pool.busy() and not (trials.resumable and self.state is RunState.RUNNING):
                if self.state.stopping or progress.done >= target:
                    return EXIT_BY_SIGNAL.get(self.first_signal, 0) if self.first_signal else 0
                if grid_left == 0:
                    self.log("grid search exhausted: every point has run")
                    return 0
            for slot, message in self.pool.receive(timeout=0.2):
                trials.handle(slot, message)
            trials.check_workers()
            if self.improvement is not None and not self.state.stopping:
                self._stop_early(self.improvement.turn(self.study, progress.done))

    def _stop_early(self, why: str | None) -> None:
        """The terminator's estimate says little improvement is left: no new trials; recorded for `show`."""
        if why is None:
            return
        self.log(f"stopping: {why}")
        self.state, self.stopped_early = RunState.STOPPING, why
        self.study.set_user_attr(stopped_key(self.host), why)

    # ------------------------------------------------------------------ control, signals, heartbeat
    def _control_start(self) -> None:
        """Skip requests answered before this run; take unanswered ones that are still fresh."""
        rows = self.store.control_rows(self.study_id)
        now = time.time()
        for row in rows:
            if row["done"] is None and now - (row["created"] or 0) < CONTROL_FRESH_S:
                self.control_backlog.append(row)
            elif row["done"] is None:
                self.store.answer_request(row["id"], self.host, "expired: no coordinator was running to answer it")
        self.control_seen = max((r["id"] for r in rows), default=0)

    def _poll_control(self) -> None:
        """Apply control rows. `stop`, `pause`, ... go to every host's coordinator of the study; `kill`
        is answered by the host running the trial."""
        rows = self.store.control_rows(self.study_id, after_id=self.control_seen)
        rows, self.control_backlog = self.control_backlog + rows, []
        for row in rows:
            self.control_seen = max(self.control_seen, row["id"])
            if row["action"] == "kill":
                if row["done"] is not None:
                    continue  # the host that ran the trial has answered
                result = self._kill_trial(row.get("arg"))
                if result is None:
                    continue  # another host's trial: that host answers
            else:
                self.state, result = self.state.apply(row["action"])
                self.stopped_by_user |= row["action"] in ("stop", "stop_now")
            self.store.answer_request(row["id"], self.host, result)
            self.log(f"control: {row['action']} {row.get('arg') or ''}-> {result}")

    def _kill_trial(self, arg: str | None) -> str | None:
        """The answer to `kill N`; None when another live host runs trial N (that host answers)."""
        try:
            number = int(arg or "")
        except ValueError:
            return f"error: not a trial number: {arg!r}"
        if self.trials.kill(number):
            return f"killing trial {number}"
        found = [t for t in self.study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            return f"error: study {self.spec.study.name} has no trial {number}"
        host = found[0].user_attrs.get("host")
        live = ledger.live_hosts(self.store.heartbeats(self.study_id), time.time())
        if found[0].state == TrialState.RUNNING and host != self.host and host in live:
            return None
        return f"error: trial {number} is not running (it is {found[0].state.name})"

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            # no logging here: a print interrupted by a print raises "reentrant call"
            if self.first_signal is None:
                self.first_signal = signum
                if self.options.graceful:
                    self.state = self.state.stop()  # running trials finish; a second signal stops them
                    return
            self.pending_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, handler)

    def _handle_signal(self) -> int:
        signum = self.first_signal or self.pending_signal
        self.log(f"signal {signal.Signals(signum).name}: failing running trials (interrupted) and exiting")
        self.trials.abort_running("interrupted")
        return EXIT_BY_SIGNAL.get(signum, 1)

    def _check_store_file(self) -> None:
        """A SQLite store deleted or replaced under a run: stop at once, write nothing more (every write would
        go to the lost file or into the new one), end the workers, and say what was lost."""
        lost = self.store.file_lost()
        if lost is None:
            return
        raise StoreLost(
            f"the store file {self.store.file} was {lost} during the run: the results it held are lost, "
            f"{self.trials.progress.done} finished trial(s) of this host among them; {len(self.pool.busy())} "
            f"running trial(s) were stopped. Run again to start over{' in the new file' if lost == 'replaced' else ''}."
        )

    def _beat(self, state: str | None = None) -> None:
        if self.study_id < 0:
            return
        if self.prune_copy is not None:  # other hosts' complete trials, for the next prune decisions
            self.prune_copy.refresh(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        self.lease.beat(self.study_id, state or self.state.heartbeat, len(self.pool.slots) or len(self.plan),
                        device_summary(self.plan))  # fmt: skip
