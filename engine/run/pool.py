"""The coordinator's workers: one long-lived process per device slot, started, fed and ended here.

A worker is spawned (never forked: the coordinator has threads and may hold CUDA state) with an
environment and argv scrubbed of the storage URL (engine/isolation.py), in a process group of its own,
so killing it kills what its task started (engine/trainer/worker_main.py). Messages are engine/run/protocol.py's.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

import optuna

from engine.gpus import GpuState, read_gpus
from engine.gpus import visible as visible_gpus
from engine.isolation import scrubbed, scrubbed_argv
from engine.resources import usable_cores
from engine.run.errors import CoordinatorError
from engine.run.protocol import Exit, FromWorker, ToWorker
from engine.spec import StudySpec

WORKER_START_LIMIT_S = 180.0
WORKER_START_FAILURES = 3  # a slot whose new workers die this many times in a row before ready: give up


class SlotPlan(NamedTuple):
    device: str  # device name inside the worker ("cpu" or "cuda:0")
    visible: str  # CUDA_VISIBLE_DEVICES for the worker
    threads: int  # torch threads


@dataclass
class Slot:
    """A device slot, the worker process that serves it, and the trial it runs."""

    index: int
    device: str
    visible: str
    threads: int
    process: Any = None
    conn: Connection | None = None
    ready: bool = False
    started: float = 0.0
    trial: optuna.Trial | None = None
    trial_started: float = 0.0
    reported: dict[int, float] = field(default_factory=dict)  # what Optuna was told per epoch (one objective)
    curves: dict[str, dict[int, float]] = field(default_factory=dict)  # each objective's metric per epoch
    stop_reason: str | None = None  # "pruned" | "user" | "timeout" once we told the worker to stop
    kill_deadline: float | None = None  # a kill or time limit waiting for the trial's next epoch
    worker_pid: int | None = None
    trials_run: int = 0  # by the current worker process
    failed_starts: int = 0  # workers of this slot that died before saying ready, in a row

    def take(self, trial: optuna.Trial) -> None:
        self.trial, self.trial_started, self.reported, self.curves = trial, time.time(), {}, {}
        self.stop_reason, self.kill_deadline = None, None
        self.trials_run += 1

    def release(self) -> None:
        self.trial, self.stop_reason, self.kill_deadline = None, None, None


def plan(spec: StudySpec, device: str | None = None, workers: int | None = None, threads: int | None = None,
         log: Callable[[str], None] = print) -> list[SlotPlan]:  # fmt: skip
    """One SlotPlan per worker: the spec's [devices] with the run's --device, --workers and --threads."""
    name = (device or spec.devices.device).lower()
    gpus = _visible_gpus(name, spec.devices.memory_fraction, log)
    workers = workers or spec.devices.workers
    cores = usable_cores()
    if gpus:
        # "cuda:1" means the coordinator's second visible GPU; a worker sees only its own, as cuda:0
        inherited = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        physical = [inherited[g] if g < len(inherited) else str(g) for g in gpus]
        slots = [g for g in physical for _ in range(spec.devices.trials_per_gpu)]
        count = workers or len(slots)
        each = threads or max(1, cores // count)
        return [SlotPlan("cuda:0", slots[i % len(slots)], each) for i in range(count)]
    count = workers or 1
    each = threads or max(1, cores // count)
    return [SlotPlan("cpu", "", each) for _ in range(count)]


def device_summary(slots: list[SlotPlan]) -> str:
    if slots and slots[0].device.startswith("cuda"):
        return ",".join(f"cuda:{s.visible}" for s in slots)
    return "cpu"


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


class Pool:
    """The workers of one run. `store_url` is only what their environment must not contain."""

    def __init__(self, plans: list[SlotPlan], store_url: str):
        self.store_url = store_url
        self.slots = [Slot(i, p.device, p.visible, p.threads) for i, p in enumerate(plans)]

    def start(self) -> None:
        for slot in self.slots:
            self.spawn(slot)

    def busy(self) -> list[Slot]:
        return [s for s in self.slots if s.trial is not None]

    def idle(self) -> list[Slot]:
        return [s for s in self.slots if s.ready and s.trial is None]

    def spawn(self, slot: Slot) -> None:
        from engine.trainer.worker_main import worker_main

        ctx = mp.get_context("spawn")  # fork after threads/CUDA is unsafe
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        # the child inherits os.environ at start: its GPU, and thread pools sized to its share of cores
        env = {"CUDA_VISIBLE_DEVICES": slot.visible, "OMP_NUM_THREADS": str(slot.threads),
               "MKL_NUM_THREADS": str(slot.threads)}  # fmt: skip
        # and nothing that leads to the store: no URL, password or SQLite path in its environment or its argv
        # (spawn copies sys.argv into the child); engine/isolation.py
        saved_env, saved_argv = dict(os.environ), sys.argv
        worker_env = {**scrubbed(saved_env, self.store_url), **env}
        try:
            for key in set(saved_env) - set(worker_env):
                del os.environ[key]
            os.environ.update(worker_env)
            sys.argv = scrubbed_argv(saved_argv, self.store_url)
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

    def kill(self, slot: Slot) -> None:
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

    def replace(self, slot: Slot) -> None:
        self.kill(slot)
        self.spawn(slot)

    def retire(self, slot: Slot) -> None:
        """Replace a worker that has run its share of trials (worker_max_trials)."""
        self.send(slot, Exit())
        slot.process.join(timeout=5)
        self.replace(slot)

    def shutdown(self) -> None:
        for slot in self.slots:
            self.send(slot, Exit())
        deadline = time.time() + 5
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(timeout=max(0.1, deadline - time.time()))
            self.kill(slot)

    def send(self, slot: Slot, message: ToWorker) -> None:
        try:
            slot.conn.send(message)
        except (OSError, ValueError, AttributeError):
            pass  # a dead worker (or none): Coordinator._check_workers fails its trial and replaces it

    def receive(self, timeout: float) -> Iterator[tuple[Slot, FromWorker]]:
        """Every message waiting, or arriving within `timeout` seconds, with the slot it came from."""
        conns = {s.conn: s for s in self.slots if s.conn is not None}
        if not conns:
            time.sleep(timeout)
            return
        for conn in wait(list(conns), timeout=timeout):
            slot = conns[conn]
            try:
                while slot.conn is not None and slot.conn.poll():
                    yield slot, slot.conn.recv()
            except (EOFError, OSError):
                pass  # dead worker: Coordinator._check_workers handles it

    def reap(self, slot: Slot) -> int | None:
        """A dead worker's exit code, after cleaning up its slot; raises after WORKER_START_FAILURES
        workers in a row died before saying ready (a broken environment, not bad luck)."""
        code = slot.process.exitcode
        was_ready = slot.ready
        self.kill(slot)
        if not was_ready:
            slot.failed_starts += 1
            if slot.failed_starts >= WORKER_START_FAILURES:
                raise CoordinatorError(
                    f"worker {slot.index} died {slot.failed_starts} times while starting (exit code {code}); "
                    "run `python -c 'import torch'` with this environment to see why"
                )
        return code
