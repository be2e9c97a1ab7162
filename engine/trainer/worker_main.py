"""A long-lived worker process: imports torch once, then trains the trials its coordinator sends."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from engine.run.protocol import Epoch, Exit, Log, Ready, RunTrial, StopTrial, TrialDone

PARENT_CHECK_S = 1.0
LOGGED = ("train_loss", "val_loss", "val_acc", "val_rmse", "val_r2")  # the engine's loop, per epoch in the log


def _die_with_parent(parent_pid: int) -> None:
    """Exit when the coordinator dies, so no orphan keeps holding a GPU.

    PR_SET_PDEATHSIG covers Linux at once; the watchdog thread covers the rest (and the case where the
    parent died before prctl ran)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(3)
            time.sleep(PARENT_CHECK_S)

    if os.getppid() != parent_pid:
        os._exit(3)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _guard_group() -> None:
    """Fork a guard that SIGKILLs this worker's process group as soon as the worker is gone, however it
    ends (the coordinator's kill, its own exit, the OOM killer, PDEATHSIG after a `kill -9` of the
    coordinator): processes a task started, forked or not, do not outlive their worker.

    Forked before torch or any thread exists; it waits in sigwait for its PR_SET_PDEATHSIG signal, so
    nothing the worker does (holding the GIL, hanging in C) can keep it from acting."""
    worker = os.getpid()
    if os.fork():
        return
    try:
        os.closerange(3, 1 << 16)  # hold none of the worker's pipes open
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGUSR1)  # PR_SET_PDEATHSIG
        while os.getppid() == worker:  # checked after prctl: the worker may have died before it
            signal.sigwait({signal.SIGUSR1})
        os.killpg(worker, signal.SIGKILL)  # kills this guard too
    finally:
        os._exit(0)


def worker_main(conn: Connection, slot: int, device: str, threads: int, parent_pid: int) -> None:
    """Entry point of the worker process (spawned). Never touches the store."""
    # Ctrl-C, a closed terminal or `kill -TERM -PGID` reach the whole process group; only the coordinator
    # decides what stops (it fails the trial `interrupted`, or lets it finish with --graceful).
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    # a group of its own: ending a worker (engine/run/pool.py Pool.kill) kills the group, task's
    # processes included; the terminal's signals no longer reach it (they were ignored anyway)
    os.setpgrp()
    _guard_group()
    _die_with_parent(parent_pid)
    # a task of data sets decodes in DataLoader worker processes, which multiprocessing refuses to a
    # daemonic process; the coordinator still ends this one as its daemon (its flag is its own copy), and
    # the guard above kills them with this worker's group
    multiprocessing.current_process().daemon = False

    import torch

    torch.set_num_threads(max(1, threads))
    # import the training stack before saying ready: the first trial's time (and its time limit) is then
    # training, not imports
    import engine.trainer.context  # noqa: F401
    import engine.trainer.tasks  # noqa: F401
    import engine.trainer.train  # noqa: F401

    conn.send(Ready(pid=os.getpid(), slot=slot, device=device))
    try:
        while True:
            message = conn.recv()
            if isinstance(message, Exit):
                # nothing is left to save: skip the interpreter's (and torch's) slow teardown
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
            if isinstance(message, RunTrial):
                conn.send(run_trial(conn, message, device))
    except (EOFError, BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        return  # the coordinator is gone or wants us gone


def stop_requested(conn: Connection, number: int) -> bool:
    """Read the coordinator's answers so far without waiting for the one to this epoch.

    Waiting would idle the device while Optuna reports and asks the pruner (~7 ms an epoch on SQLite,
    13% of the default study); the price is that a prune or kill takes effect one epoch later."""
    stop = False
    while conn.poll():
        message = conn.recv()
        if isinstance(message, Exit):
            os._exit(0)
        if isinstance(message, StopTrial) and message.number == number:
            stop = True
    return stop


def run_trial(conn: Connection, message: RunTrial, device_name: str) -> TrialDone:
    """Train one trial, streaming an `Epoch` message per epoch; return its `TrialDone`."""
    import torch

    from engine.config import TrainConfig
    from engine.spec import TaskSpec
    from engine.trainer.tasks import load_task
    from engine.trainer.train import TrialFailed, train

    number = message.number
    started = time.time()
    # plain str: torch.__version__ is a TorchVersion, and unpickling it would import torch in the coordinator;
    # the coordinator records the device itself (it knows the physical GPU; we see only cuda:0)
    attrs = {"torch_version": str(torch.__version__), "worker_pid": os.getpid()}

    def log(line: str) -> None:
        conn.send(Log(number, line))

    def done(**fields: Any) -> TrialDone:
        attrs["train_time_s"] = round(time.time() - started, 3)
        return TrialDone(number, attrs, **fields)

    stopped = [False]  # pruned or killed: no weights to keep

    def check_stop() -> bool:
        stopped[0] = stopped[0] or stop_requested(conn, number)
        return stopped[0]

    def weights(model) -> str | None:
        if model is None or stopped[0] or config.save_weights == "none":
            return None
        from engine.trainer.checkpoint import weights_file

        return weights_file(model, number)

    try:
        config = TrainConfig(**message.config)
        task = TaskSpec(**message.task)
        device = torch.device(device_name)
        if device.type == "cuda":
            # the memory calls below neither start CUDA nor accept a bare "cuda": on a fresh process
            # reset_peak_memory_stats raised "Invalid device argument" (seen on an H200, torch 2.11)
            torch.cuda.init()
            device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
            if message.memory_fraction:  # a polite share of a GPU others use too
                torch.cuda.set_per_process_memory_fraction(message.memory_fraction, device)
            torch.cuda.reset_peak_memory_stats(device)
            attrs["device_name"] = torch.cuda.get_device_name(device)
        if task.loop is not None:  # the user's own loop is the trial's body (engine/trainer/context.py)
            from engine.trainer.context import run_loop

            def send(epoch: int, metrics: dict, steps: list, layers: list) -> None:
                conn.send(Epoch(number, epoch, metrics, steps, layers))
                shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                                 if v is not None and k not in ("epoch_time_s", "mem_peak_mb"))  # fmt: skip
                log(f"epoch {epoch}: {shown}")

            result = run_loop(task, config, message.task_params, device, send, check_stop)
            return done(metrics=result.metrics, findings=result.findings, weights_file=weights(result.model))
        data = load_task(task, message.task_params, device)

        def on_epoch(report) -> bool:
            conn.send(Epoch(number, report.epoch, report.metrics, report.steps, report.layers))
            shown = " ".join(f"{k}={report.metrics[k]:.4f}" for k in LOGGED if report.metrics.get(k) is not None)
            log(f"epoch {report.epoch}: {shown}")
            return check_stop()

        checkpoint = None
        if message.checkpoint_dir and config.checkpoint:
            from engine.trainer.checkpoint import Checkpoint

            checkpoint = Checkpoint(message.checkpoint_dir)
        result = train(config, data, device, on_epoch, checkpoint)
        attrs.update(getattr(result, "attrs", {}) or {})
        attrs.update({k: round(float(v), 6) for k, v in result.test.items()})
        return done(metrics=result.metrics, findings=result.findings, weights_file=weights(result.model))
    except TrialFailed as failure:
        log(f"trial failed: {failure.reason}: {failure.hint}")
        return done(reason=failure.reason, hint=failure.hint, findings=getattr(failure, "findings", []))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        raise
    except Exception as err:  # a bug in a user task must cost one trial, not the worker
        for line in traceback.format_exc().splitlines()[-30:]:
            log(line)
        return done(reason="error", hint=f"{type(err).__name__}: {err}"[:500])
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # what one trial cached must not crowd the next
