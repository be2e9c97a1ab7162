"""The coordinator: owns one study on this host (Optuna ask/tell), feeds workers, writes the store."""

from __future__ import annotations

import fcntl
import math
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.space import build_pruner, build_sampler, suggest
from engine.spec import StudySpec
from engine.store import Store, state_dir

optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_EVERY_S = 2.0
CONTROL_EVERY_S = 0.5
WORKER_START_LIMIT_S = 180.0
# Failure reasons that mean "this trial did not get its chance": they do not count toward the budget.
NOT_COUNTED = frozenset({"orphaned", "interrupted"})
EXIT_BY_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


class CoordinatorError(Exception):
    """The coordinator cannot start (lock held, bad device, store problem)."""


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
    epochs_reported: int = 0
    best: float | None = None
    best_epoch: int | None = None
    stop_reason: str | None = None  # "pruned" | "user" once we told the worker to stop
    worker_pid: int | None = None


@dataclass
class RunOptions:
    n_trials: int | None = None  # trials this run adds (None: spec budget)
    timeout_s: float | None = None
    workers: int | None = None
    device: str | None = None
    graceful: bool = False
    spec_path: str | None = None
    spec_text: str | None = None


@dataclass
class Progress:
    """What the coordinator tells its caller after each finished trial."""

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
        self.host = socket.gethostname()
        self.metric = spec.study.metric
        self.maximize = spec.study.direction == "maximize"
        self.slots: list[Slot] = []
        self.state = "running"  # running | paused | stopping | stopping_now
        self.pending_signal: int | None = None
        self.progress = Progress()
        self.lock_file = None
        self.study: optuna.Study | None = None
        self.study_id = -1
        self.spec_commit = _git_commit(options.spec_path)
        self.trial_timeout = spec.budget.trial_timeout_s
        self.started = time.time()

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Run the study to its budget (or until stopped). Returns the process exit code."""
        self._lock()
        self.study = optuna.create_study(
            study_name=self.spec.study.name,
            storage=self.store.optuna_storage(),
            sampler=build_sampler(self.spec),
            pruner=build_pruner(self.spec),
            direction=self.spec.study.direction,
            load_if_exists=True,
        )
        self.study_id = self.study._study_id
        if self.options.spec_text is not None:
            self.study.set_user_attr("spec_toml", self.options.spec_text)
        if self.options.spec_path:
            self.study.set_user_attr("spec_path", str(Path(self.options.spec_path).resolve()))
        self.study.set_user_attr("metric", self.metric)
        crashed_before = self._previous_run_crashed()
        self._recover_orphans()
        target = self._target(crashed_before)
        self.progress.target = target
        self.progress.done = self._counted_done()
        self._refresh_best()
        deadline = time.time() + self.options.timeout_s if self.options.timeout_s else None
        self._install_signal_handlers()
        self._beat(force=True)
        self.log(
            f"study {self.spec.study.name}: {self.progress.done}/{target} trials counted, "
            f"{len(self.slots_plan())} worker(s) on {self.device_summary()}"
        )
        exit_code = 0
        try:
            self._start_workers()
            exit_code = self._loop(target, deadline)
        finally:
            self._shutdown_workers()
            final = {0: "finished", 130: "interrupted", 143: "interrupted", 129: "interrupted"}.get(
                exit_code, "crashed"
            )
            if self.state.startswith("stopping") and exit_code == 0:
                final = "stopped"
            self._beat(force=True, state=final)
            self._unlock()
        return exit_code

    def _loop(self, target: int, deadline: float | None) -> int:
        last_beat = last_control = 0.0
        while True:
            now = time.time()
            if self.pending_signal is not None:
                return self._handle_signal()
            if now - last_control >= CONTROL_EVERY_S:
                self._poll_control()
                last_control = now
            if now - last_beat >= HEARTBEAT_EVERY_S:
                self._beat()
                last_beat = now
            if deadline and now > deadline and self.state == "running":
                self.log("time budget reached: finishing running trials")
                self.state = "stopping"
            if self.state == "stopping_now":
                self._abort_running("user")
            busy = [s for s in self.slots if s.trial is not None]
            remaining = target - self.progress.done - len(busy)
            if self.state == "running" and remaining > 0:
                for slot in self.slots:
                    if remaining <= 0:
                        break
                    if slot.ready and slot.trial is None:
                        self._dispatch(slot)
                        remaining -= 1
            busy = [s for s in self.slots if s.trial is not None]
            if not busy and (self.state.startswith("stopping") or self.progress.done >= target):
                return 0
            if not busy and self._grid_exhausted():
                self.log("grid search exhausted")
                return 0
            self._pump(timeout=0.2)
            self._check_workers()

    # ------------------------------------------------------------------ study bookkeeping
    def _counted_done(self) -> int:
        n = 0
        for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        ):
            if t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") in NOT_COUNTED:
                continue
            n += 1
        return n

    def _target(self, resume: bool) -> int:
        """Total counted trials this run aims at. A run after a crash resumes the crashed run's target."""
        attrs = self.study.user_attrs
        if resume and "run_target" in attrs and self.options.n_trials is None:
            return int(attrs["run_target"])
        adds = self.options.n_trials or self.spec.budget.n_trials or 1
        target = self._counted_done() + adds
        self.study.set_user_attr("run_target", target)
        return target

    def _previous_run_crashed(self) -> bool:
        beats = self.store.heartbeats(self.study_id)
        mine = [b for b in beats if b["host"] == self.host]
        return any(b["state"] in ("running", "paused", "stopping", "crashed") for b in mine)

    def _recover_orphans(self) -> None:
        """Fail every RUNNING trial whose coordinator is gone; re-enqueue it when the spec asks."""
        beats = {b["host"]: b for b in self.store.heartbeats(self.study_id)}
        storage = self.study._storage
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            host = t.user_attrs.get("host")
            owner = beats.get(host)
            # we hold this host's lock, so a RUNNING trial of this host is ours and its coordinator is dead
            dead = host == self.host or host is None or owner is None or not owner["alive"]
            if not dead:
                continue
            storage.set_trial_user_attr(t._trial_id, "fail_reason", "orphaned")
            storage.set_trial_user_attr(t._trial_id, "fail_hint", "its coordinator died while it ran")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            self.log(f"trial {t.number}: marked FAIL (orphaned)")
            if self.spec.study.retry_failed:
                self.study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
                self.log(f"trial {t.number}: re-enqueued with the same params")

    def _refresh_best(self) -> None:
        try:
            best = self.study.best_trial
        except ValueError:
            return
        self.progress.best, self.progress.best_number = best.value, best.number

    def _grid_exhausted(self) -> bool:
        sampler = self.study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler):
            return sampler.is_exhausted(self.study)
        return False

    # ------------------------------------------------------------------ workers
    def slots_plan(self) -> list[tuple[str, str, int]]:
        """(device inside the worker, CUDA_VISIBLE_DEVICES, torch threads) per worker."""
        device = (self.options.device or self.spec.devices.device).lower()
        gpus = _visible_gpus(device)
        workers = self.options.workers or self.spec.devices.workers
        if gpus:
            per_gpu = self.spec.devices.trials_per_gpu
            slots = [(g, per) for g in gpus for per in range(per_gpu)]
            count = workers or len(slots)
            cores = os.cpu_count() or 1
            return [("cuda:0", str(slots[i % len(slots)][0]), max(1, cores // count)) for i in range(count)]
        count = workers or 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return [("cpu", "", max(1, cores // count)) for _ in range(count)]

    def device_summary(self) -> str:
        plan = self.slots_plan()
        if plan and plan[0][0].startswith("cuda"):
            return ",".join(f"cuda:{v}" for _, v, _ in plan)
        return "cpu"

    def _start_workers(self) -> None:
        for i, (device, visible, threads) in enumerate(self.slots_plan()):
            slot = Slot(index=i, device=device, visible=visible, threads=threads)
            self.slots.append(slot)
            self._spawn(slot)

    def _spawn(self, slot: Slot) -> None:
        from engine.worker import worker_main

        ctx = mp.get_context("spawn")  # fork after threads/CUDA is unsafe
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        os.environ["CUDA_VISIBLE_DEVICES"] = slot.visible
        try:
            process = ctx.Process(
                target=worker_main,
                args=(child_conn, slot.index, slot.device, slot.threads, os.getpid()),
                name=f"tunetui-worker-{slot.index}",
                daemon=True,
            )
            process.start()
        finally:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved
        child_conn.close()  # so the worker sees EOF if we die
        slot.process, slot.conn, slot.ready, slot.started = process, parent_conn, False, time.time()
        slot.worker_pid = process.pid

    def _kill_worker(self, slot: Slot) -> None:
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        if slot.conn is not None:
            slot.conn.close()
        slot.process, slot.conn, slot.ready = None, None, False

    def _shutdown_workers(self) -> None:
        for slot in self.slots:
            if slot.conn is not None:
                try:
                    slot.conn.send({"type": "exit"})
                except (OSError, ValueError):
                    pass
        deadline = time.time() + 5
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.1, deadline - time.time()))
            self._kill_worker(slot)

    def _check_workers(self) -> None:
        now = time.time()
        for slot in self.slots:
            if slot.process is None:
                continue
            if not slot.process.is_alive():
                code = slot.process.exitcode
                self._kill_worker(slot)
                if slot.trial is not None:
                    hint = f"the worker process exited with code {code}"
                    if code == -signal.SIGKILL:
                        hint += " (SIGKILL: by a user, or the kernel's out-of-memory killer)"
                    self._finish_fail(slot, "worker_died", hint)
                self.log(f"worker {slot.index} exited (code {code}); starting a new one")
                self._spawn(slot)
            elif (
                slot.trial is not None
                and self.trial_timeout
                and now - slot.trial_started > self.trial_timeout
            ):
                self.log(
                    f"trial {slot.trial.number}: past its {self.trial_timeout:g}s limit; killing its worker"
                )
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
        params = suggest(trial, self.spec)
        seed = self.spec.study.seed + trial.number
        config = self.spec.train_config(params, seed=seed)
        attrs = {
            "host": self.host,
            "seed": seed,
            "optuna_version": optuna.__version__,
            "device": slot.device if not slot.visible else f"cuda:{slot.visible}",
            "amp": config.amp,
            "clip_norm": config.clip_norm,
            "spec_commit": self.spec_commit,
            "coordinator_pid": os.getpid(),
        }
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        slot.trial, slot.trial_started = trial, time.time()
        slot.epochs_reported, slot.best, slot.best_epoch, slot.stop_reason = 0, None, None, None
        task_params = self.spec.task_params(params)
        if self.options.spec_path:  # user tasks import their module from the spec's folder
            task_params["__spec_dir__"] = str(Path(self.options.spec_path).resolve().parent)
        message = {
            "type": "trial",
            "number": trial.number,
            "config": config.model_dump(),
            "task": self.spec.task.model_dump(),
            "task_params": task_params,
        }
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

    def _handle(self, slot: Slot, message: dict) -> None:
        kind = message.get("type")
        if kind == "ready":
            slot.ready = True
            slot.worker_pid = message.get("pid")
        elif kind == "log":
            self.store.write_log(self.study_id, message.get("number"), [str(message.get("line", ""))])
        elif kind == "epoch":
            self._on_epoch(slot, message)
        elif kind == "done":
            self._on_done(slot, message)

    def _on_epoch(self, slot: Slot, message: dict) -> None:
        trial = slot.trial
        if trial is None or message.get("number") != trial.number:
            return
        epoch = int(message["epoch"])
        metrics = message.get("metrics", {})
        self.store.write_epoch(self.study_id, trial.number, epoch, metrics, message.get("steps", []),
                               message.get("layers", []))  # fmt: skip
        value = metrics.get(self.metric)
        stop = slot.stop_reason is not None
        if value is not None and math.isfinite(value):
            slot.epochs_reported += 1
            if slot.best is None or (value > slot.best if self.maximize else value < slot.best):
                slot.best, slot.best_epoch = value, epoch
            trial.report(value, epoch)  # once per epoch, never per step (~2 ms on SQLite)
            if not stop and trial.should_prune():
                slot.stop_reason = "pruned"
                stop = True
        try:
            slot.conn.send({"type": "decision", "stop": stop})
        except (OSError, ValueError):
            pass

    def _on_done(self, slot: Slot, message: dict) -> None:
        trial = slot.trial
        if trial is None or message.get("number") != trial.number:
            return
        for key, value in (message.get("attrs") or {}).items():
            trial.set_user_attr(key, value)
        findings = message.get("findings") or []
        if findings:
            self.store.write_findings(self.study_id, trial.number, findings)
        state = message.get("state")
        if state == "fail":
            self._finish_fail(slot, message.get("reason") or "error", message.get("hint") or "")
            return
        if slot.stop_reason == "user":
            self._finish_user_kill(slot)
            return
        if slot.stop_reason == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
            self._finished(slot, "PRUNED", None)
            return
        value = slot.best
        if value is None:
            final = (message.get("metrics") or {}).get(self.metric)
            value = final if final is not None and math.isfinite(final) else None
        if value is None:
            self._finish_fail(slot, "no_metric", f"the trial reported no finite {self.metric}")
            return
        trial.set_user_attr("value_epoch", slot.best_epoch)
        self.study.tell(trial, value)
        self._finished(slot, "COMPLETE", value)

    def _finish_fail(self, slot: Slot, reason: str, hint: str) -> None:
        trial = slot.trial
        if trial is None:
            return
        trial.set_user_attr("fail_reason", reason)
        if hint:
            trial.set_user_attr("fail_hint", hint[:500])
        self.study.tell(trial, state=TrialState.FAIL)
        self.store.write_log(self.study_id, trial.number, [f"FAIL {reason}: {hint}"])
        self._finished(slot, "FAIL", None, counted=reason not in NOT_COUNTED, reason=reason)

    def _finish_user_kill(self, slot: Slot) -> None:
        """A killed trial is PRUNED (reason user) when it reported at least once, else FAIL."""
        trial = slot.trial
        trial.set_user_attr("fail_reason", "user")
        if slot.epochs_reported:
            self.study.tell(trial, state=TrialState.PRUNED)
            self._finished(slot, "PRUNED", None, reason="user")
        else:
            self.study.tell(trial, state=TrialState.FAIL)
            self._finished(slot, "FAIL", None, reason="user")

    def _finished(self, slot: Slot, state: str, value: float | None, counted: bool = True,
                  reason: str | None = None) -> None:  # fmt: skip
        number = slot.trial.number
        slot.trial = None
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
                slot.stop_reason = "user"
                self._finish_user_kill(slot)
            else:
                self._finish_fail(slot, reason, "the coordinator was stopped while the trial ran")
            if self.pending_signal is None and self.state != "stopping_now":
                self._spawn(slot)

    # ------------------------------------------------------------------ control and signals
    def _poll_control(self) -> None:
        for request in self.store.pending_requests(self.study_id):
            result = self._apply(request["action"], request.get("arg"))
            self.store.finish_request(request["id"], result)
            self.log(f"control: {request['action']} {request.get('arg') or ''}-> {result}")

    def _apply(self, action: str, arg: str | None) -> str:
        if action == "stop":
            self.state = "stopping"
            return "stopping: running trials finish, no new ones start"
        if action == "stop_now":
            self.state = "stopping_now"
            return "stopping now: running trials are killed"
        if action == "pause":
            if self.state == "running":
                self.state = "paused"
            return "paused: running trials finish, no new ones start until resume"
        if action == "resume":
            if self.state == "paused":
                self.state = "running"
            return "resumed"
        if action == "kill":
            try:
                number = int(arg or "")
            except ValueError:
                return f"error: not a trial number: {arg!r}"
            for slot in self.slots:
                if slot.trial is not None and slot.trial.number == number:
                    slot.stop_reason = "user"
                    self._kill_worker(slot)  # a hung trial must die too: do not wait for its next epoch
                    self._finish_user_kill(slot)
                    self._spawn(slot)
                    return f"killed trial {number}"
            return f"error: trial {number} is not running on this coordinator"
        return f"error: unknown action {action!r}"

    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            if self.pending_signal is not None or not self.options.graceful:
                self.pending_signal = signum
            else:
                self.log(f"signal {signum}: finishing running trials (send again to stop now)")
                self.state = "stopping"
                self.options.graceful = False  # a second signal stops at once

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, handler)

    def _handle_signal(self) -> int:
        signum = self.pending_signal
        self.log(f"signal {signal.Signals(signum).name}: failing running trials (interrupted) and exiting")
        self._abort_running("interrupted")
        return EXIT_BY_SIGNAL.get(signum, 1)

    def _beat(self, force: bool = False, state: str | None = None) -> None:
        if self.study_id < 0:
            return
        shown = state or ("paused" if self.state == "paused" else "running")
        self.store.beat(
            self.study_id,
            self.host,
            pid=os.getpid(),
            state=shown,
            workers=len(self.slots),
            device=self.device_summary(),
            started=self.started,
            log_path=os.environ.get("TUNETUI_LOG_PATH"),
        )

    # ------------------------------------------------------------------ one coordinator per study per host
    def _lock(self) -> None:
        locks = state_dir(self.store.url) / "locks"
        locks.mkdir(exist_ok=True, mode=0o700)
        path = locks / f"{self.spec.study.name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CoordinatorError(
                f"study {self.spec.study.name} already has a running coordinator on this host (pid {holder}); "
                "use `tunetui stop` or wait for it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.lock_file = fd

    def _unlock(self) -> None:
        if self.lock_file is not None:
            fcntl.flock(self.lock_file, fcntl.LOCK_UN)
            os.close(self.lock_file)
            self.lock_file = None


def _visible_gpus(device: str) -> list[int]:
    """GPU indices the spec asks for; [] means CPU."""
    if device == "cpu":
        return []
    if device.startswith("cuda:"):
        return [int(part.strip().split(":")[1]) for part in device.split(",")]
    count = _cuda_device_count()
    if device == "cuda" and count == 0:
        raise CoordinatorError("device = cuda, but no CUDA GPU is visible to this process")
    return list(range(count))


def _cuda_device_count() -> int:
    """Count GPUs without initialising CUDA in the coordinator (workers do that)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    if visible:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


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
