"""What this machine can run: the GPUs a run names exist, and its workers fit the cores, GPUs and memory."""

from __future__ import annotations

import os

# A worker's private memory before any data: RssAnon of a process that imported torch and the training
# stack, measured 293 MB (torch 2.x, CPU, Linux); its ~240 MB of shared libraries are counted once per
# machine, not per worker.
WORKER_FOOTPRINT_MB = 300


class ResourceError(ValueError):
    """The run asks for more than this machine has: bad input (exit 2), nothing started."""


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def available_memory_mb() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cuda_device_count() -> int:
    """The GPUs this process may use, through NVML (engine/gpus.py; CUDA is not initialised here).

    Without NVML, the GPUs CUDA_VISIBLE_DEVICES names are taken on trust, as the coordinator does."""
    from engine.gpus import read_gpus, visible

    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None and env.strip() in ("", "-1"):
        return 0
    states = read_gpus()
    if states is None:
        return len([entry for entry in (env or "").split(",") if entry.strip()])
    return len(visible(states, env))


def check_run(device: str, workers: int | None, trials_per_gpu: int, *, device_label: str = "--device",
              workers_label: str = "--workers") -> int:  # fmt: skip
    """Refuse a device that is not here and more workers than cores, GPU slots or memory hold.

    Returns the number of workers the run will start. The labels name where the values came from."""
    device = device.strip().lower()
    gpus = cuda_device_count() if device != "cpu" else 0
    if device.startswith("cuda:"):
        wanted = sorted({int(part.strip().split(":")[1]) for part in device.split(",")})
        missing = [f"cuda:{i}" for i in wanted if i >= gpus]
        if missing:
            raise ResourceError(
                f"{device_label} {device}: {', '.join(missing)} is not here; this process sees {gpus} GPU(s)"
                + (f" (cuda:0..cuda:{gpus - 1})" if gpus else "; use cpu")
            )
        gpus = len(wanted)
    elif device == "cuda" and gpus == 0:
        raise ResourceError(f"{device_label} cuda: no CUDA GPU is visible to this process; use cpu or auto")
    on_gpu = device != "cpu" and gpus > 0
    if workers is not None and workers < 1:
        raise ResourceError(f"{workers_label} must be at least 1 (got {workers})")
    count = workers or (gpus * trials_per_gpu if on_gpu else 1)
    if on_gpu and count > gpus * trials_per_gpu:
        raise ResourceError(
            f"{workers_label} {count}: more workers than GPU slots ({gpus} GPU(s) x trials_per_gpu "
            f"{trials_per_gpu} = {gpus * trials_per_gpu}); raise [devices] trials_per_gpu or use fewer workers"
        )
    cores = usable_cores()
    if not on_gpu and count > cores:
        raise ResourceError(
            f"{workers_label} {count}: more CPU workers than the {cores} core(s) this process may use; "
            f"use at most {cores}"
        )
    memory = available_memory_mb()
    if memory is not None and count * WORKER_FOOTPRINT_MB > memory:
        raise ResourceError(
            f"{workers_label} {count}: {count} workers need about {count * WORKER_FOOTPRINT_MB} MB "
            f"({WORKER_FOOTPRINT_MB} MB each before data), but only {memory} MB is available; "
            f"use at most {max(1, memory // WORKER_FOOTPRINT_MB)}"
        )
    return count
