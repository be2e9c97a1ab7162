"""The coordinator: owns one study on this host (Optuna ask/tell), feeds workers, writes the store.

Fault model (docs/faults.md): a coordinator may die at any instruction (kill -9, OOM killer, power off);
the next one on the same host takes the study over through the per-(store, study, host) flock, fails the
trials the dead one left RUNNING (`orphaned`) and resumes the dead run's budget. Workers die with their
coordinator. Several hosts may run one study against one PostgreSQL store; each counts its own trials.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from engine.files import private_dir
from engine.gpus import GpuState, read_gpus
from engine.gpus import visible as visible_gpus
from engine.isolation import scrubbed, scrubbed_argv
from engine.pruning import PruneCopy, supports
from engine.report import KILLED
from engine.resources import usable_cores
from engine.run.protocol import Epoch, Exit, FromWorker, Log, Ready, RunTrial, StopTrial, TrialDone
from engine.space import build_pruner, build_sampler, grid_size, suggest
from engine.spec import StudySpec
from engine.store import LIVE_STATES, Store, StoreError, redact_spec, state_dir
from engine.store.connect import fast_sqlite_commits
from engine.store.optuna_tables import fail_trial, set_trial_user_attrs
from engine.value import trial_value

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_EVERY_S = 2.0
CONTROL_EVERY_S = 0.5
CONTROL_FRESH_S = 30.0  # a request still unanswered when a coordinator starts is applied if this young
ORPHAN_SWEEP_S = 20.0  # how often RUNNING trials of other hosts' dead coordinators are looked for
ORPHAN_STALE_S = 60.0  # another host's coordinator is dead when its heartbeat is this old
WORKER_START_LIMIT_S = 180.0
WORKER_START_FAILURES = 3  # a slot whose new workers die this many times in a row before ready: give up
KILL_GRACE_S = 3.0  # a killed trial may stop at its next epoch (its worker lives on); then it is killed
# Failure reasons that mean "this trial did not get its chance": they do not count toward the budget.
NOT_COUNTED = frozenset({"orphaned", "interrupted"})
SAME_FAILURE_LIMIT = 5  # this many trials in a row failing with the same reason and message stop the run
# failures that depend on the sampled values, the user or the coordinator, not on the task alone: they
# never make a streak (a region of bad learning rates is not a broken task)
VARYING_FAILURES = frozenset({"nan_loss", "oom", "bad_config", "timeout", KILLED, *NOT_COUNTED})
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
HOST_ENV = "TUNETUI_HOST"


class CoordinatorError(Exception):
    """The coordinator cannot start (lock held, bad device, store problem)."""


class StoreLost(CoordinatorError):
    """The SQLite file was deleted or replaced during the run: nothing more may be written to that path."""


def host_name() -> str:
    """This coordinator's host name in the store: $TUNETUI_HOST, else the machine's name.

    It must be unique per machine (containers often share or randomise names: set it explicitly)."""
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


@dataclass
class Slot:
    """A device slot and the worker process that serves it."""

    index: int
    device: str  # device name inside the worker ("cpu" or "cuda:0")
    visible: str  # CUDA_VISIBLE_DEVICES for the worker
    threads: int
    process: Any = None
    conn: Connection | None = None
    ready: bool = False
    started: float = 0.0
    trial: optuna.Trial | None = None
    trial_started: float = 0.0
    reported: dict[int, float] = field(default_factory=dict)  # the trial's metric per epoch, in order
    stop_reason: str | None = None  # "pruned" | "user" once we told the worker to stop
    kill_deadline: float | None = None  # a user kill waiting for the trial's next epoch
    worker_pid: int | None = None
    trials_run: int = 0  # by the current worker process
    failed_starts: int = 0  # workers of this slot that died before saying ready, in a row


@dataclass
class RunOutcomes:
    """How this run's trials ended: did any succeed, and how long is the streak of identical failures."""

    succeeded: int = 0
    failed: Counter = field(default_factory=Counter)  # reason -> trials
    streak: tuple[str, str] | None = None  # (reason, message) of the latest failures in a row
    streak_length: int = 0
    last_failed: int | None = None

    def ended(self, number: int, state: str, reason: str | None = None, hint: str = "") -> None:
        if reason == KILLED or reason in NOT_COUNTED:
            return  # killed, interrupted or orphaned: says nothing about the task
        if state != "FAIL":
            self.succeeded += 1
            self.streak, self.streak_length = None, 0
            return
        self.failed[reason or "error"] += 1
        self.last_failed = number
        key = (reason or "error", hint)
        if reason in VARYING_FAILURES:
            self.streak, self.streak_length = None, 0
        elif key == self.streak:
            self.streak_length += 1
        else:
            self.streak, self.streak_length = key, 1

    @property
    def repeating(self) -> bool:
        return self.streak_length >= SAME_FAILURE_LIMIT

    def verdict(self, study: str) -> str | None:
        """Why this run failed as a whole, with what to do; None when it did not."""
        look = f"`tunetui show {study} --trial {self.last_failed}` shows that trial's log"
        if self.repeating:
            reason, message = self.streak
            return (f"stopped after {self.streak_length} trials in a row failed the same way ({reason}: "
                    f"{message}); more trials would fail too: fix the task or spec and run again ({look})")  # fmt: skip
        if self.failed and not self.succeeded:
            counts = ", ".join(f"{reason} {n}" for reason, n in self.failed.most_common())
            return f"every trial of this run failed ({counts}); {look}"
        return None


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


@dataclass
class Progress:
    """What the coordinator tells its caller after each finished trial (this host's run)."""

    done: int = 0
    target: int = 0
    best: float | None = None
    best_number: int | None = None
    last: dict = field(default_factory=dict)


class Coordinator:
    def __init__(self, spec: StudySpec, store: Store, options: RunOptions,
                 on_progress: Callable[[Progress], None] | None = None,
                 log: Callable[[str], None] = print):  # fmt: skip
        self.spec = spec
        self.store = store
        self.options = options
        self.on_progress = on_progress or (lambda p: None)
        self.log = log
        self.host = host_name()
        self.metric = spec.study.metric
        self.maximize = spec.study.direction == "maximize"
        self.slots: list[Slot] = []
        self.plan: list[tuple[str, str, int]] = []  # slots_plan(), fixed when the run starts
        self.prunes = True
        self.prune_copy: PruneCopy | None = None  # decisions without a store read (median, percentile)
        self.state = "running"  # running | paused | stopping | stopping_now
        self.stopped_by_user = False
        self.pending_signal: int | None = None  # stop now: set by a signal handler
        self.first_signal: int | None = None  # decides the exit code, graceful or not
        self.progress = Progress()
        self.lock_file: int | None = None
        self.study: optuna.Study | None = None
        self.study_id = -1
        self.spec_commit = _git_commit(options.spec_path)
        self.trial_timeout = spec.budget.trial_timeout_s
        self.started = time.time()
        self.control_seen = 0  # highest tt_control id this coordinator has looked at
        self.control_backlog: list[dict] = []  # requests sent while no coordinator ran, still fresh
        self.outcomes = RunOutcomes()
        self.failure: str | None = None  # why the run failed as a whole (exit 1), for the caller to print

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run the study to its budget (or until stopped). Returns the process exit code."""
        self._lock()
        try:
            return self._run()
        finally:
            self._unlock()

    def _run(self) -> int:
        self.plan = self.slots_plan()  # a bad device fails here, before the store is touched
        self._open_study()
        crashed_before = self._previous_run_crashed()
        self._recover_orphans()
        target = self._target(crashed_before)
        self.progress.target = target
        self.progress.done = self._own_counted()
        self._refresh_best()
        self._control_start()
        deadline = time.time() + self.options.timeout_s if self.options.timeout_s else None
        self._install_signal_handlers()
        self._beat()
        resumed = " (resuming a crashed run)" if crashed_before and self.options.n_trials is None else ""
        self.log(
            f"study {self.spec.study.name} on {self.host}: {self.progress.done}/{target} trials counted{resumed}, "
            f"{len(self.plan)} worker(s) on {self.device_summary()}"
        )
        final, exit_code = "crashed", 1
        try:
            self._start_workers()
            exit_code = self._loop(target, deadline)
            if self.first_signal is not None:
                final = "interrupted"
            elif self.stopped_by_user:
                final = "stopped"
            else:
                final = "finished"
            if self.first_signal is None and exit_code == 0:
                self.failure = self.outcomes.verdict(self.spec.study.name)
                if self.failure:
                    self.log(self.failure)
                    exit_code = 1
        except StoreLost:
            final = None  # the store is gone: its path must not be written (it would create a new file)
            raise
        except BaseException as err:
            self._abandon_running(f"the coordinator failed: {type(err).__name__}: {err}")
            raise
        finally:
            self._shutdown_workers()
            try:
                if final is not None:
                    self._beat(state=final)
            except StoreError as err:
                self.log(f"could not write the final heartbeat: {err}")
        return exit_code

    def _open_study(self) -> None:
        """Create or load the study; retried, since hosts starting together race to create tables."""
        for attempt in range(5):
            try:
                storage = self.store.optuna_storage()
                fast_sqlite_commits(storage.engine)
                self.study = optuna.create_study(
                    study_name=self.spec.study.name,
                    storage=storage,
                    sampler=build_sampler(self.spec),
                    pruner=build_pruner(self.spec),
                    direction=self.spec.study.direction,
                    load_if_exists=True,
                )
                break
            except (StoreError, sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError):
                if attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
        fast_sqlite_commits(self.store.engine)
        self.study_id = self.study._study_id
        self.prunes = not isinstance(
            self.study.pruner, optuna.pruners.NopPruner
        )  # skip a storage read per epoch
        if self.prunes and supports(self.study.pruner) and len(self.study.directions) == 1:
            self.prune_copy = PruneCopy(self.study.pruner, self.study.direction)
            self.prune_copy.refresh(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        self._record_identity()  # before any write: a refused run leaves the study as it was
        self.study.sampler = build_sampler(self._sampler_spec())
        if self.options.spec_text is not None:
            self.study.set_user_attr("spec_toml", redact_spec(self.options.spec_text))  # shared: no password
        if self.options.spec_path:
            self.study.set_user_attr("spec_path", str(Path(self.options.spec_path).resolve()))
        self.study.set_user_attr("metric", self.metric)

    def _record_identity(self) -> None:
        """Write the study's identity when it has none (a new study, or one made before identities or by
        Optuna alone: adopted); refuse one that differs (a run that raced past the CLI's check)."""
        from engine.identity import ATTR, differences, known_identity, study_identity

        mine = study_identity(self.spec)
        recorded = self.study.user_attrs.get(ATTR)
        directions = [d.name for d in self.study.directions]
        changed = differences(known_identity(recorded, directions, self.study.user_attrs), mine)
        if changed:
            raise CoordinatorError(
                f"study {self.spec.study.name} was created with {'; and '.join(changed)}: "
                "use --study-name NEW for a new study"
            )
        if recorded is None:
            self.study.set_user_attr(ATTR, mine)

    def _sampler_spec(self) -> StudySpec:
        """The spec with the sampler's seed this run should use.

        A new study on its first host samples with the spec's seed, so it reproduces. A resumed study, or
        a second host, must not replay the same random sequence (a restart after a crash would try the
        same first points again; two hosts would propose identical trials): mix in host and trial count."""
        trials = len(self.study.get_trials(deepcopy=False))
        others = [b for b in self.store.heartbeats(self.study_id) if b["host"] != self.host]
        if trials == 0 and not others:
            return self.spec
        digest = hashlib.sha256(f"{self.spec.study.seed}:{self.host}:{trials}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big")
        return self.spec.model_copy(update={"study": self.spec.study.model_copy(update={"seed": seed})})

    def _loop(self, target: int, deadline: float | None) -> int:
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
                self._recover_orphans()
                last_sweep = now
            if deadline and now > deadline and self.state in ("running", "paused"):
                self.log("time budget reached: finishing running trials")
                self.state = "stopping"
            if self.state == "stopping_now":
                self._abort_running("user")
            if self.outcomes.repeating and self.state in ("running", "paused"):
                self.log(f"{self.outcomes.streak_length} trials in a row failed the same way: no new trials")
                self.state = "stopping"
            busy = [s for s in self.slots if s.trial is not None]
            remaining = target - self.progress.done - len(busy)
            idle = any(slot.ready and slot.trial is None for slot in self.slots)
            grid_left = self._grid_points_left() if remaining > 0 and (idle or not busy) else None
            if grid_left is not None:
                remaining = min(remaining, grid_left)
            if self.state == "running" and remaining > 0:
                for slot in self.slots:
                    if remaining <= 0 or self.pending_signal is not None:
                        break
                    if slot.ready and slot.trial is None:
                        self._dispatch(slot)
                        remaining -= 1
            busy = [s for s in self.slots if s.trial is not None]
            if not busy and (self.state.startswith("stopping") or self.progress.done >= target):
                return EXIT_BY_SIGNAL.get(self.first_signal, 0) if self.first_signal else 0
            if not busy and grid_left == 0:
                self.log("grid search exhausted: every point has run")
                return 0
            self._pump(timeout=0.2)
            self._check_workers()

    # ------------------------------------------------------------------ study bookkeeping
    def _own_counted(self) -> int:
        """Finished trials of this host that count toward its budget."""
        n = 0
        for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        ):
            if t.user_attrs.get("host") != self.host:
                continue
            if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") in NOT_COUNTED:
                continue
            n += 1
        return n

    def _target(self, resume: bool) -> int:
        """How many counted trials of this host this run aims at.

        Each host keeps its own target in the study attr `run_target:<host>`, so hosts sharing a study
        add up their budgets. A run after a crash (no --trials given) resumes the crashed run's target."""
        key = f"run_target:{self.host}"
        stored = self.study.user_attrs.get(key)
        if resume and stored is not None and self.options.n_trials is None:
            return int(stored)
        adds = self.options.n_trials or self.spec.budget.n_trials or 1
        target = self._own_counted() + adds
        self.study.set_user_attr(key, target)
        return target

    def _previous_run_crashed(self) -> bool:
        """Did the last coordinator of this study on this host end without saying so?"""
        for beat in self.store.heartbeats(self.study_id):
            if beat["host"] == self.host and beat["state"] in (*LIVE_STATES, "crashed"):
                return True
        return False

    def _live_hosts(self, stale_after: float) -> set[str]:
        now = time.time()
        return {
            b["host"]
            for b in self.store.heartbeats(self.study_id)
            if b["state"] in LIVE_STATES and now - (b["last_seen"] or 0) < stale_after
        }

    def _recover_orphans(self) -> None:
        """Fail every RUNNING trial whose coordinator is gone; re-enqueue it when the spec asks.

        We hold this host's lock, so a RUNNING trial of this host that no slot of ours runs belongs to a
        dead coordinator. Trials of other hosts are orphans once their host's heartbeat is ORPHAN_STALE_S
        old: generous, since a live coordinator whose trial we failed must drop it (`_trial_taken`)."""
        live = self._live_hosts(ORPHAN_STALE_S)
        mine = {s.trial.number for s in self.slots if s.trial is not None}
        now = datetime.now()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host = t.user_attrs.get("host")
            if host == self.host:
                dead = t.number not in mine
            elif host is None:
                # asked but not yet labelled: its coordinator died at once, or is labelling it right now
                age = (now - t.datetime_start).total_seconds() if t.datetime_start else 0.0
                dead = t.number not in mine and (age > ORPHAN_STALE_S or not (live - {self.host}))
            else:
                dead = host not in live
            if not dead:
                continue
            owner = host or "an unknown host"
            self._fail_trial(t, "orphaned", f"its coordinator on {owner} died while it ran")
            self.log(f"trial {t.number}: marked FAIL (orphaned, coordinator on {owner} gone)")
            self._maybe_retry(t.number, t.params, "orphaned")

    def _maybe_retry(self, number: int, params: dict, reason: str) -> None:
        if self.spec.study.retry_failed and reason in NOT_COUNTED and params:
            self.study.enqueue_trial(params, user_attrs={"retry_of": number}, skip_if_exists=False)
            self.log(f"trial {number}: re-enqueued with the same params")

    def _refresh_best(self) -> None:
        try:
            best = self.study.best_trial
        except ValueError:
            return
        self.progress.best, self.progress.best_number = best.value, best.number

    def _grid_points_left(self) -> int | None:
        """Grid points no trial has started yet (None: not a grid search).

        Optuna's GridSampler hands out an already started point again once every point has started,
        so the coordinator must not ask beyond this."""
        size = grid_size(self.spec)
        if size is None:
            return None
        started = {
            t.system_attrs["grid_id"]
            for t in self.study.get_trials(deepcopy=False)
            if "grid_id" in t.system_attrs and (t.state.is_finished() or t.state == TrialState.RUNNING)
        }
        return max(0, size - len(started))

    def _set_attrs(self, trial: optuna.Trial | FrozenTrial, attrs: dict[str, Any]) -> None:
        """Set several user attrs in one transaction (one fsync instead of one per key)."""
        set_trial_user_attrs(self.study, trial, attrs)

    def _tell(self, trial: optuna.Trial, value: float | None = None, state: TrialState | None = None) -> None:
        try:
            self.study.tell(trial, value, state=state)
        except ValueError as err:
            if "Cannot tell a" in str(err):  # finished by someone else: see _trial_taken
                raise optuna.exceptions.UpdateFinishedTrialError(str(err)) from None
            raise

    def _trial_taken(self, slot: Slot) -> None:
        """Another coordinator finished our trial (it took our heartbeat for dead): drop it, uncounted."""
        number = slot.trial.number if slot.trial is not None else "?"
        self.log(f"trial {number}: finished by another coordinator meanwhile; dropping it")
        slot.trial, slot.stop_reason, slot.kill_deadline = None, None, None
        self._kill_worker(slot)
        self._spawn(slot)

    def _fail_trial(self, trial: optuna.Trial | FrozenTrial, reason: str, hint: str) -> None:
        """FAIL a trial without telling it (an orphan, or one this coordinator abandons)."""
        self._set_attrs(trial, {"fail_reason": reason, "fail_hint": hint[:500]})
        fail_trial(self.study, trial)
        self.store.write_log(self.study_id, trial.number, [f"FAIL {reason}: {hint}"])

    # ------------------------------------------------------------------ workers
    def slots_plan(self) -> list[tuple[str, str, int]]:
        """(device inside the worker, CUDA_VISIBLE_DEVICES, torch threads) per worker."""
        device = (self.options.device or self.spec.devices.device).lower()
        gpus = _visible_gpus(device, self.spec.devices.memory_fraction, self.log)
        workers = self.options.workers or self.spec.devices.workers
        cores = usable_cores()
        if gpus:
            # "cuda:1" means the coordinator's second visible GPU; a worker sees only its own, as cuda:0
            inherited = [
                v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()
            ]
            physical = [inherited[g] if g < len(inherited) else str(g) for g in gpus]
            slots = [g for g in physical for _ in range(self.spec.devices.trials_per_gpu)]
            count = workers or len(slots)
            threads = self.options.threads or max(1, cores // count)
            return [("cuda:0", slots[i % len(slots)], threads) for i in range(count)]
        count = workers or 1
        threads = self.options.threads or max(1, cores // count)
        return [("cpu", "", threads) for _ in range(count)]

    def device_summary(self) -> str:
        if self.plan and self.plan[0][0].startswith("cuda"):
            return ",".join(f"cuda:{v}" for _, v, _ in self.plan)
        return "cpu"

    def _start_workers(self) -> None:
        for i, (device, visible, threads) in enumerate(self.plan):
            slot = Slot(index=i, device=device, visible=visible, threads=threads)
            self.slots.append(slot)
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        from engine.trainer.worker_main import worker_main

        ctx = mp.get_context("spawn")  # fork after threads/CUDA is unsafe
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        # the child inherits os.environ at start: its GPU, and thread pools sized to its share of cores
        env = {"CUDA_VISIBLE_DEVICES": slot.visible, "OMP_NUM_THREADS": str(slot.threads),
               "MKL_NUM_THREADS": str(slot.threads)}  # fmt: skip
        # and nothing that leads to the store: no URL, password or SQLite path in its environment or its argv
        # (spawn copies sys.argv into the child); engine/isolation.py
        saved_env, saved_argv = dict(os.environ), sys.argv
        worker_env = {**scrubbed(saved_env, self.store.url), **env}
        try:
            for key in set(saved_env) - set(worker_env):
                del os.environ[key]
            os.environ.update(worker_env)
            sys.argv = scrubbed_argv(saved_argv, self.store.url)
            process = ctx.Process(
                target=worker_main,
                args=(child_conn, slot.index, slot.device, slot.threads, os.getpid()),
                name=f"tunetui-worker-{slot.index}",
                daemon=True,
            )
            process.start()
        finally:
            sys.argv = saved_argv
            for key in set(os.environ) - set(saved_env):
                del os.environ[key]
            os.environ.update(saved_env)
        child_conn.close()  # so the worker sees EOF if we die
        slot.process, slot.conn, slot.ready, slot.started = process, parent_conn, False, time.time()
        slot.worker_pid, slot.trials_run = process.pid, 0

    def _kill_worker(self, slot: Slot) -> None:
        """Kill the worker and its process group: what its task started dies with it. (A worker that is
        already gone had its group killed by its guard, engine/trainer/worker_main.py.)"""
        if slot.process is not None and slot.process.is_alive():  # alive, so not reaped: its pid is its own
            try:
                os.killpg(slot.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass  # not yet its own group leader
            slot.process.kill()
            slot.process.join(timeout=5)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False

    def _shutdown_workers(self) -> None:
        for slot in self.slots:
            if slot.conn is not None:
                try:
                    slot.conn.send(Exit())
                except (OSError, ValueError):
                    pass
        deadline = time.time() + 5
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.1, deadline - time.time()))
            self._kill_worker(slot)

    def _check_workers(self) -> None:
        if self.pending_signal is not None:
            return  # a terminal's signal may have reached the workers too: the trials are `interrupted`
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                self._check_worker(slot, time.time())
            except optuna.exceptions.UpdateFinishedTrialError:
                self._trial_taken(slot)

    def _check_worker(self, slot: Slot, now: float) -> None:
        """Replace a dead worker; kill a trial past its time limit or its kill grace."""
        if not slot.process.is_alive():
            code = slot.process.exitcode
            was_ready = slot.ready
            self._kill_worker(slot)
            if not was_ready:
                slot.failed_starts += 1
                if slot.failed_starts >= WORKER_START_FAILURES:
                    raise CoordinatorError(
                        f"worker {slot.index} died {slot.failed_starts} times while starting (exit code {code}); "
                        "run `python -c 'import torch'` with this environment to see why"
                    )
            if slot.trial is not None:
                hint = f"the worker process exited with code {code}"
                if code == -signal.SIGKILL:
                    hint += " (SIGKILL: by a user, or the kernel's out-of-memory killer)"
                self._finish_fail(slot, "worker_died", hint)
            self.log(f"worker {slot.index} exited (code {code}); starting a new one")
            self._spawn(slot)
        elif slot.trial is not None and slot.kill_deadline is not None and now > slot.kill_deadline:
            self.log(f"trial {slot.trial.number}: did not stop within {KILL_GRACE_S:g}s; killing its worker")
            self._kill_worker(slot)
            self._finish_user_kill(slot)
            self._spawn(slot)
        elif slot.trial is not None and self.trial_timeout and now - slot.trial_started > self.trial_timeout:
            self.log(f"trial {slot.trial.number}: past its {self.trial_timeout:g}s limit; killing its worker")
            self._kill_worker(slot)
            self._finish_fail(slot, "timeout", f"ran longer than trial_timeout_s={self.trial_timeout:g}")
            self._spawn(slot)
        elif not slot.ready and now - slot.started > WORKER_START_LIMIT_S:
            self.log(f"worker {slot.index} did not start within {WORKER_START_LIMIT_S:g}s; replacing it")
            self._kill_worker(slot)
            self._spawn(slot)

    # ------------------------------------------------------------------ trials
    def _dispatch(self, slot: Slot) -> None:
        trial = self.study.ask()
        attrs: dict[str, Any] = {
            "host": self.host,
            "coordinator_pid": os.getpid(),
            "device": slot.device if not slot.visible else f"cuda:{slot.visible}",
            "optuna_version": optuna.__version__,
            "spec_commit": self.spec_commit,
        }
        try:
            params = suggest(trial, self.spec)
            seed = self.spec.study.seed + trial.number
            config = self.spec.train_config(params, seed=seed)
        except ValueError as err:  # pydantic's ValidationError too: sampled values the config refuses
            self._set_attrs(trial, {**attrs, "fail_reason": "bad_config", "fail_hint": str(err)[:500]})
            self._tell(trial, state=TrialState.FAIL)
            self.progress.done += 1
            self.outcomes.ended(trial.number, "FAIL", "bad_config", str(err))
            self.log(f"trial {trial.number}: FAIL (bad_config: {str(err).splitlines()[0]})")
            self.on_progress(self.progress)
            return
        attrs.update(seed=seed, amp=config.amp, clip_norm=config.clip_norm)
        self._set_attrs(trial, attrs)
        slot.trial, slot.trial_started = trial, time.time()
        slot.reported = {}
        slot.stop_reason, slot.kill_deadline = None, None
        slot.trials_run += 1
        task_params = self.spec.task_params(params)
        if self.options.spec_path:  # user tasks import their module from the spec's folder
            task_params["__spec_dir__"] = str(Path(self.options.spec_path).resolve().parent)
        # the task as written (exclude_unset): the worker's TaskSpec then sees the same fields set, and a loop
        # is not refused for the default `name` a full dump would carry beside it
        message = RunTrial(trial.number, config.model_dump(), self.spec.task.model_dump(exclude_unset=True),
                           task_params, self.spec.devices.memory_fraction)  # fmt: skip
        try:
            slot.conn.send(message)
        except (OSError, ValueError):
            pass  # the worker died; _check_workers fails the trial and replaces it

    def _pump(self, timeout: float) -> None:
        conns = {s.conn: s for s in self.slots if s.conn is not None}
        if not conns:
            time.sleep(timeout)
            return
        for conn in wait(list(conns), timeout=timeout):
            slot = conns[conn]
            try:
                while slot.conn is not None and slot.conn.poll():
                    self._handle(slot, slot.conn.recv())
            except (EOFError, OSError):
                pass  # dead worker: _check_workers handles it

    def _handle(self, slot: Slot, message: FromWorker) -> None:
        try:
            self._handle_message(slot, message)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._trial_taken(slot)

    def _handle_message(self, slot: Slot, message: FromWorker) -> None:
        if isinstance(message, Ready):
            slot.ready, slot.failed_starts = True, 0
            slot.worker_pid = message.pid
        elif isinstance(message, Log):
            self.store.write_log(self.study_id, message.number, [message.line])
        elif isinstance(message, Epoch):
            self._on_epoch(slot, message)
        elif isinstance(message, TrialDone):
            self._on_done(slot, message)

    def _on_epoch(self, slot: Slot, message: Epoch) -> None:
        trial = slot.trial
        if trial is None or message.number != trial.number:
            return
        epoch, metrics = message.epoch, message.metrics
        value = metrics.get(self.metric)
        # once told to stop, the worker may still finish the epoch it was in: keep its telemetry, not its value
        if slot.stop_reason is None and value is not None and math.isfinite(value):
            trial.report(value, epoch)  # once per epoch, never per step (~2 ms on SQLite)
            slot.reported[epoch] = value
            if self.prunes and self._should_prune(slot):
                slot.stop_reason = "pruned"
                self._tell_worker_to_stop(slot)
        # Messages are handled in order, so this epoch is committed before the trial's `done` is told.
        self.store.write_epoch(self.study_id, trial.number, epoch, metrics, message.steps, message.layers)

    def _should_prune(self, slot: Slot) -> bool:
        if self.prune_copy is None:
            return slot.trial.should_prune()
        return self.prune_copy.should_prune(slot.trial.number, slot.reported)

    def _tell_worker_to_stop(self, slot: Slot) -> None:
        """The worker does not wait for answers; it reads this at the end of its current epoch."""
        try:
            slot.conn.send(StopTrial(slot.trial.number))
        except (OSError, ValueError, AttributeError):
            pass  # a dead worker: _check_workers handles it

    def _on_done(self, slot: Slot, message: TrialDone) -> None:
        trial = slot.trial
        if trial is None or message.number != trial.number:
            return
        attrs = dict(message.attrs)
        if message.findings:
            self.store.write_findings(self.study_id, trial.number, message.findings)
        if message.failed:
            self._finish_fail(slot, message.reason, message.hint, attrs)
        elif slot.stop_reason == "user":
            self._finish_user_kill(slot, attrs)
        elif slot.stop_reason == "pruned":
            self._set_attrs(trial, attrs)
            self._tell(trial, state=TrialState.PRUNED)
            self._finished(slot, "PRUNED", None)
        else:
            value, value_epoch = None, None
            if slot.reported:  # the spec's value rule: best epoch, last epoch, or the mean of the last three
                curve = list(slot.reported.values())
                value, value_epoch = trial_value(curve, self.spec.study.value, self.maximize)
            else:
                final = message.metrics.get(self.metric)
                value = final if final is not None and math.isfinite(final) else None
            if value is None:
                self._finish_fail(slot, "no_metric", f"the trial reported no finite {self.metric}", attrs)
            else:
                self._set_attrs(trial, {**attrs, "value_epoch": value_epoch})
                self._tell(trial, value)
                if self.prune_copy is not None:
                    self.prune_copy.add(trial.number, value, slot.reported)
                self._finished(slot, "COMPLETE", value)
        limit = self.options.worker_max_trials
        if limit and slot.trials_run >= limit and self.pending_signal is None:
            self._retire_worker(slot)

    def _retire_worker(self, slot: Slot) -> None:
        """Replace a worker that has run its share of trials (worker_max_trials)."""
        try:
            slot.conn.send(Exit())
        except (OSError, ValueError):
            pass
        slot.process.join(timeout=5)
        self._kill_worker(slot)
        self._spawn(slot)

    def _finish_fail(self, slot: Slot, reason: str, hint: str, attrs: dict | None = None) -> None:
        trial = slot.trial
        if trial is None:
            return
        self._set_attrs(trial, {**(attrs or {}), "fail_reason": reason, "fail_hint": hint[:500]})
        self._tell(trial, state=TrialState.FAIL)
        self.store.write_log(self.study_id, trial.number, [f"FAIL {reason}: {hint}"])
        self._finished(slot, "FAIL", None, counted=reason not in NOT_COUNTED, reason=reason, hint=hint)
        self._maybe_retry(trial.number, trial.params, reason)

    def _finish_user_kill(self, slot: Slot, attrs: dict | None = None) -> None:
        """A killed trial is `FAIL killed`, like `FAIL timeout`: never an ordinary PRUNED, which a pruner's
        decision also gives, so the table, `show` and the exports can say it was killed."""
        self._finish_fail(slot, KILLED, "killed by the user before it finished", attrs)

    def _finished(self, slot: Slot, state: str, value: float | None, counted: bool = True,
                  reason: str | None = None, hint: str = "") -> None:  # fmt: skip
        number = slot.trial.number
        self.outcomes.ended(number, state, reason, hint)
        slot.trial, slot.stop_reason, slot.kill_deadline = None, None, None
        if counted:
            self.progress.done += 1
        if state == "COMPLETE":
            self._refresh_best()
        self.progress.last = {"number": number, "state": state, "value": value, "reason": reason}
        self.log(f"trial {number}: {state}" + (f" value={value:.4f}" if value is not None else "")
                 + (f" ({reason})" if reason else ""))  # fmt: skip
        self.on_progress(self.progress)

    def _abort_running(self, reason: str) -> None:
        """Kill every running trial's worker now (stop --now, or a signal)."""
        for slot in self.slots:
            if slot.trial is None:
                continue
            self._kill_worker(slot)
            if reason == "user":
                self._finish_user_kill(slot)
            else:
                self._finish_fail(slot, reason, "the coordinator was stopped while the trial ran")
            if self.pending_signal is None and self.state != "stopping_now":
                self._spawn(slot)

    def _abandon_running(self, hint: str) -> None:
        """The coordinator itself failed: leave no RUNNING trial behind if the store still answers."""
        for slot in self.slots:
            if slot.trial is None:
                continue
            self._kill_worker(slot)
            try:
                self._fail_trial(slot.trial, "orphaned", hint)
            except Exception:  # noqa: BLE001 - the store may be what failed; the next coordinator recovers
                pass
            slot.trial = None

    # ------------------------------------------------------------------ control and signals
    def _control_start(self) -> None:
        """Skip requests answered before this run; take unanswered ones that are still fresh."""
        rows = self.store.control_rows(self.study_id)
        now = time.time()
        for row in rows:
            if row["done"] is None and now - (row["created"] or 0) < CONTROL_FRESH_S:
                self.control_backlog.append(row)
            elif row["done"] is None:
                self._answer(row["id"], "expired: no coordinator was running to answer it")
        self.control_seen = max((r["id"] for r in rows), default=0)

    def _poll_control(self) -> None:
        """Apply control rows. `stop`, `pause`, ... go to every host's coordinator of the study; `kill`
        is answered by the host running the trial."""
        rows = self.store.control_rows(self.study_id, after_id=self.control_seen)
        rows, self.control_backlog = self.control_backlog + rows, []
        for row in rows:
            self.control_seen = max(self.control_seen, row["id"])
            if row["action"] == "kill" and row["done"] is not None:
                continue  # the host that ran the trial has answered
            result = self._apply(row["action"], row.get("arg"))
            if result is None:
                continue  # another host's trial: that host answers
            self._answer(row["id"], result)
            self.log(f"control: {row['action']} {row.get('arg') or ''}-> {result}")

    def _answer(self, request_id: int, result: str) -> None:
        self.store.answer_request(request_id, self.host, result)

    def _apply(self, action: str, arg: str | None) -> str | None:
        if action == "stop":
            if self.state != "stopping_now":
                self.state = "stopping"
            self.stopped_by_user = True
            return "stopping: running trials finish, no new ones start"
        if action == "stop_now":
            self.state = "stopping_now"
            self.stopped_by_user = True
            return "stopping now: running trials are killed"
        if action == "pause":
            if self.state == "running":
                self.state = "paused"
            return "paused: running trials finish, no new ones start until resume"
        if action == "resume":
            if self.state == "paused":
                self.state = "running"
            return "resumed" if self.state == "running" else f"not resumed: the study is {self.state}"
        if action == "kill":
            return self._kill_trial(arg)
        return f"error: unknown action {action!r}"

    def _kill_trial(self, arg: str | None) -> str | None:
        try:
            number = int(arg or "")
        except ValueError:
            return f"error: not a trial number: {arg!r}"
        for slot in self.slots:
            if slot.trial is not None and slot.trial.number == number:
                slot.stop_reason = "user"
                # the worker stops the trial at the end of its epoch and lives on; a hung trial is killed
                slot.kill_deadline = time.time() + KILL_GRACE_S
                self._tell_worker_to_stop(slot)
                return f"killing trial {number}"
        trials = [t for t in self.study.get_trials(deepcopy=False) if t.number == number]
        if not trials:
            return f"error: study {self.spec.study.name} has no trial {number}"
        trial = trials[0]
        host = trial.user_attrs.get("host")
        if (
            trial.state == TrialState.RUNNING
            and host != self.host
            and host in self._live_hosts(ORPHAN_STALE_S)
        ):
            return None
        return f"error: trial {number} is not running (it is {trial.state.name})"

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            # no logging here: a print interrupted by a print raises "reentrant call"
            if self.first_signal is None:
                self.first_signal = signum
                if self.options.graceful:
                    self.state = "stopping"  # running trials finish; a second signal stops them
                    return
            self.pending_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, handler)

    def _handle_signal(self) -> int:
        signum = self.first_signal or self.pending_signal
        self.log(f"signal {signal.Signals(signum).name}: failing running trials (interrupted) and exiting")
        self._abort_running("interrupted")
        return EXIT_BY_SIGNAL.get(signum, 1)

    def _check_store_file(self) -> None:
        """A SQLite store deleted or replaced under a run: stop at once, write nothing more (every write would
        go to the lost file or into the new one), end the workers, and say what was lost."""
        lost = self.store.file_lost()
        if lost is None:
            return
        running = sum(1 for slot in self.slots if slot.trial is not None)
        raise StoreLost(
            f"the store file {self.store.file} was {lost} during the run: the results it held are lost, "
            f"{self.progress.done} finished trial(s) of this host among them; {running} running trial(s) were "
            f"stopped. Run again to start over{' in the new file' if lost == 'replaced' else ''}."
        )

    def _beat(self, state: str | None = None) -> None:
        if self.study_id < 0:
            return
        if self.prune_copy is not None:  # other hosts' complete trials, for the next prune decisions
            self.prune_copy.refresh(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        shown = state or {"paused": "paused", "running": "running"}.get(self.state, "stopping")
        self.store.beat(
            self.study_id,
            self.host,
            pid=os.getpid(),
            state=shown,
            workers=len(self.slots) or len(self.plan),
            device=self.device_summary(),
            started=self.started,
            log_path=os.environ.get("TUNETUI_LOG_PATH"),
        )

    # ------------------------------------------------------------------ one coordinator per study per host
    def _lock(self) -> None:
        """flock per (store, study, host): the store's state dir keys the store, the file name the rest.

        The kernel drops the lock when the process dies, however it dies: no stale lock files."""
        locks = state_dir(self.store.url) / "locks"
        private_dir(locks)
        host = re.sub(r"[^A-Za-z0-9_.\-]", "_", self.host)
        path = locks / f"{self.spec.study.name}@{host}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CoordinatorError(
                f"study {self.spec.study.name} already has a running coordinator on host {self.host} "
                f"(pid {holder}); stop it with `tunetui stop {self.spec.study.name}` or wait for it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.lock_file = fd

    def _unlock(self) -> None:
        if self.lock_file is not None:
            fcntl.flock(self.lock_file, fcntl.LOCK_UN)
            os.close(self.lock_file)
            self.lock_file = None


def _visible_gpus(device: str, memory_fraction: float | None = None,
                  log: Callable[[str], None] = print) -> list[int]:  # fmt: skip
    """Indices (among this process's visible GPUs) the spec asks for; [] means CPU.

    `auto` takes every visible GPU that is neither busy nor short of free memory, as NVML reports them;
    without NVML it sees no GPU and runs on CPU. `cuda` takes every visible GPU, busy or not."""
    if device == "cpu":
        return []
    if device.startswith("cuda:"):
        return [int(part.strip().split(":")[1]) for part in device.split(",")]
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip() in ("", "-1"):
        states: list[GpuState] | None = []
    else:
        states = read_gpus()
        states = None if states is None else visible_gpus(states, env)
    if device == "cuda":
        count = len(states) if states is not None else len([e for e in (env or "").split(",") if e.strip()])
        if count == 0:
            raise CoordinatorError(
                "device = cuda, but no CUDA GPU is visible to this process (NVML found none, or "
                "nvidia-ml-py cannot read the driver); name them, e.g. device = \"cuda:0\""
            )
        return list(range(count))
    if not states:
        return []
    usable = [i for i, s in enumerate(states) if not s.busy() and not s.short_of_memory(memory_fraction)]
    for i, s in enumerate(states):
        if i not in usable:
            log(f"device auto: skipping GPU {s.index} ({s.line()}, {s.mem_free_mb / 1024:.1f} GiB free): "
                f"{'busy' if s.busy() else 'short of free memory'}")  # fmt: skip
    if not usable:
        raise CoordinatorError(
            "device = auto: every GPU is busy or short of free memory ("
            + "; ".join(s.line() for s in states)
            + '); wait, or take one anyway with device = "cuda:N"'
        )
    return usable


def _git_commit(spec_path: str | None) -> str | None:
    if not spec_path:
        return None
    directory = Path(spec_path).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(directory), "status", "--porcelain", "--", str(Path(spec_path).resolve())],
        capture_output=True, text=True, timeout=5, check=False,
    ).stdout.strip()  # fmt: skip
    return commit + ("-dirty" if dirty else "")
