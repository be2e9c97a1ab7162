"""The GPUs' use and free memory, read through NVML (nvidia-ml-py), never by parsing `nvidia-smi` text.

NVML is imported lazily and read without touching CUDA, so the coordinator, `tunetui ls` and the TUI
(which never import torch) can call it. No NVML (no package, no driver, a failing call) means "no
information": `read_gpus` returns None and callers carry on without it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

BUSY_UTIL_PCT = 20  # device = "auto" skips a GPU whose kernels ran more than this share of the last sample
MIN_FREE_MB = 2048  # ... or with less free memory than this (or than memory_fraction of it, when set)


@dataclass(frozen=True)
class GpuState:
    index: int  # NVML's index (physical, PCI bus order)
    uuid: str
    name: str
    util_pct: int  # share of the last sample period a kernel was running
    mem_used_mb: float
    mem_total_mb: float

    @property
    def mem_free_mb(self) -> float:
        return max(0.0, self.mem_total_mb - self.mem_used_mb)

    def short_of_memory(self, memory_fraction: float | None = None) -> bool:
        need = MIN_FREE_MB if memory_fraction is None else memory_fraction * self.mem_total_mb
        return self.mem_free_mb < need

    def busy(self) -> bool:
        return self.util_pct > BUSY_UTIL_PCT

    def line(self) -> str:
        """`gpu0 37% 1.2/80.0 GiB`: its use and memory, for a status line."""
        return (
            f"gpu{self.index} {self.util_pct}% {self.mem_used_mb / 1024:.1f}/{self.mem_total_mb / 1024:.1f} GiB"
        )


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_gpus(nvml: Any = None) -> list[GpuState] | None:
    """Every GPU NVML sees, or None when NVML is absent or fails. `nvml`: the module (tests pass a stand-in)."""
    try:
        nvml = nvml or importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, NVMLError (no driver, no library): no information
        return None
    try:
        states = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            states.append(
                GpuState(
                    index=index,
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                    name=_text(nvml.nvmlDeviceGetName(handle)),
                    util_pct=int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
                    mem_used_mb=memory.used / 2**20,
                    mem_total_mb=memory.total / 2**20,
                )
            )
        return states
    except Exception:
        return None
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def visible(states: list[GpuState], cuda_visible_devices: str | None) -> list[GpuState]:
    """The GPUs this process may use, in CUDA's order: CUDA_VISIBLE_DEVICES entries (indices or UUIDs)
    matched to NVML's, or every GPU when the variable is unset."""
    if cuda_visible_devices is None:
        return list(states)
    chosen = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if not entry:
            continue
        if entry.isdigit():
            match = [s for s in states if s.index == int(entry)]
        else:
            match = [s for s in states if s.uuid == entry or s.uuid.startswith(entry)]
        if not match:
            break  # CUDA stops at the first entry it cannot use
        chosen.append(match[0])
    return chosen
