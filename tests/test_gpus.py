"""GPU use and memory through NVML, and `device = "auto"` choosing GPUs by them.

NVML is replaced by a stand-in module object (what `import pynvml` returns), so these run on CPU; the
engine's own code paths run unchanged."""

from __future__ import annotations

import sys
import types

import pytest

from engine.gpus import read_gpus
from engine.run.errors import CoordinatorError
from engine.run.pool import plan as slots_plan
from engine.spec import parse_spec
from engine.store import Store

GIB = 2**30


class NVMLError(Exception):
    pass


def fake_nvml(gpus: list[dict], fail_init: bool = False) -> types.ModuleType:
    """A stand-in for the pynvml module: each gpu is {util, used_gib, total_gib}."""
    gpus = [dict(gpu) for gpu in gpus]  # one handle per GPU, even where two are alike
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = NVMLError
    nvml.calls = []

    def init():
        nvml.calls.append("init")
        if fail_init:
            raise NVMLError("Driver Not Loaded")

    nvml.nvmlInit = init
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetCount = lambda: len(gpus)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA Fake 80GB"
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{next(i for i, g in enumerate(gpus) if g is h):04d}-fake"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h["util"], memory=0)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=h["total_gib"] * GIB, used=h["used_gib"] * GIB, free=(h["total_gib"] - h["used_gib"]) * GIB
    )
    return nvml


FREE = {"util": 0, "used_gib": 1, "total_gib": 80}
BUSY = {"util": 95, "used_gib": 1, "total_gib": 80}
FULL = {"util": 0, "used_gib": 79, "total_gib": 80}  # idle, but 1 GiB free
HALF = {"util": 0, "used_gib": 60, "total_gib": 80}  # idle, 20 GiB free


@pytest.fixture
def nvml(monkeypatch):
    def install(gpus: list[dict], **kwargs) -> types.ModuleType:
        module = fake_nvml(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return install


def plan(tmp_path, devices: str) -> list[tuple[str, str, int]]:
    spec = parse_spec(f'[study]\nname = "p"\n[devices]\n{devices}\n')
    return slots_plan(spec, log=lambda line: None)


def test_read_gpus_reports_use_and_memory(nvml):
    module = nvml([FREE, BUSY])
    states = read_gpus()
    assert [(s.index, s.util_pct, s.mem_free_mb) for s in states] == [(0, 0, 79 * 1024), (1, 95, 79 * 1024)]
    assert states[0].name == "NVIDIA Fake 80GB" and states[1].uuid == "GPU-0001-fake"
    assert states[1].line() == "gpu1 95% 1.0/80.0 GiB"
    assert module.calls == ["init", "shutdown"]


def test_no_nvml_means_no_information(nvml, monkeypatch):
    nvml([FREE], fail_init=True)
    assert read_gpus() is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package is not installed: import fails
    assert read_gpus() is None


def test_auto_skips_busy_gpus_and_gpus_short_of_memory(tmp_path, nvml):
    nvml([BUSY, FREE, FULL, FREE])
    assert [visible for _, visible, _ in plan(tmp_path, 'device = "auto"')] == ["1", "3"]
    # "cuda" takes them all, busy or not
    assert [visible for _, visible, _ in plan(tmp_path, 'device = "cuda"')] == ["0", "1", "2", "3"]


def test_auto_needs_the_memory_fraction_free(tmp_path, nvml):
    nvml([HALF, FREE])
    assert [v for _, v, _ in plan(tmp_path, 'device = "auto"')] == ["0", "1"]  # 20 GiB free is plenty
    assert [v for _, v, _ in plan(tmp_path, 'device = "auto"\nmemory_fraction = 0.5')] == ["1"]  # needs 40


def test_auto_respects_cuda_visible_devices(tmp_path, nvml, monkeypatch):
    nvml([FREE, FREE, BUSY, FREE])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [v for _, v, _ in plan(tmp_path, 'device = "auto"')] == ["3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-0001-fake")
    assert [v for _, v, _ in plan(tmp_path, 'device = "auto"')] == ["GPU-0001-fake"]


def test_auto_refuses_when_every_gpu_is_busy(tmp_path, nvml):
    nvml([BUSY, FULL])
    with pytest.raises(CoordinatorError, match=r"every GPU is busy.*gpu0 95%.*cuda:N"):
        plan(tmp_path, 'device = "auto"')


def test_auto_without_nvml_runs_on_cpu_and_never_parses_nvidia_smi(tmp_path, nvml, monkeypatch):
    nvml([], fail_init=True)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\ntouch {tmp_path}/smi-called\necho "GPU 0: NVIDIA Fake (UUID: GPU-x)"\n')
    smi.chmod(0o700)
    monkeypatch.setenv("PATH", f"{fake_bin}:{__import__('os').environ['PATH']}")
    assert [device for device, _, _ in plan(tmp_path, 'device = "auto"')] == ["cpu"]
    assert not (tmp_path / "smi-called").exists()
    with pytest.raises(CoordinatorError, match="no CUDA GPU is visible"):
        plan(tmp_path, 'device = "cuda"')


def test_memory_fraction_is_a_share(tmp_path):
    from engine.spec import SpecError

    assert parse_spec('[study]\nname = "p"\n[devices]\nmemory_fraction = 0.5\n').devices.memory_fraction == 0.5
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(SpecError, match="memory_fraction"):
            parse_spec(f'[study]\nname = "p"\n[devices]\nmemory_fraction = {bad}\n')


def test_ls_shows_each_gpus_use_and_memory(nvml, store_url, capsys):
    from engine.cli import main

    Store(store_url)  # an empty store
    nvml([BUSY, FULL])
    assert main(["ls", "--storage", store_url]) == 0
    assert "GPUs here: gpu0 95% 1.0/80.0 GiB, gpu1 0% 79.0/80.0 GiB" in capsys.readouterr().out
    nvml([], fail_init=True)  # no GPUs, no driver: no GPU line
    assert main(["ls", "--storage", store_url]) == 0
    assert "GPU" not in capsys.readouterr().out
