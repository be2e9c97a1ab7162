"""The bounds `run` and the TUI's launch put on workers: GPU slots and memory (cores: tests/test_cli.py)."""

from __future__ import annotations

import pytest

from engine import resources
from engine.resources import WORKER_FOOTPRINT_MB, ResourceError, check_run


def test_memory_bounds_the_workers(monkeypatch):
    """This machine has more memory than 2 workers need, so MemAvailable is set to what one worker needs."""
    monkeypatch.setattr(resources, "available_memory_mb", lambda: WORKER_FOOTPRINT_MB + 10)
    monkeypatch.setattr(resources, "usable_cores", lambda: 64)
    assert check_run("cpu", 1, 1) == 1
    with pytest.raises(ResourceError, match=rf"2 workers need about {2 * WORKER_FOOTPRINT_MB} MB .* only "
                                            rf"{WORKER_FOOTPRINT_MB + 10} MB is available; use at most 1"):  # fmt: skip
        check_run("cpu", 2, 1)


def test_gpu_workers_are_bounded_by_gpus_times_trials_per_gpu(monkeypatch):
    monkeypatch.setattr(resources, "cuda_device_count", lambda: 2)
    assert check_run("auto", None, 2) == 4
    assert check_run("cuda:1", None, 3) == 3
    with pytest.raises(ResourceError, match=r"--workers 5: more workers than GPU slots \(2 GPU\(s\) x "
                                            r"trials_per_gpu 2 = 4\)"):  # fmt: skip
        check_run("cuda", 5, 2)
    with pytest.raises(ResourceError, match=r"cuda:2 is not here; this process sees 2 GPU\(s\) \(cuda:0..cuda:1\)"):
        check_run("cuda:0,cuda:2", None, 1)


def test_the_real_machine_reports_its_memory_and_cores():
    assert resources.available_memory_mb() > 0 and resources.usable_cores() >= 1
