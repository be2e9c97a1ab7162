"""benchmarks/gpu_check.sh keeps working where there is no GPU: its CPU dry path runs every step."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tests.helpers_run import ROOT


@pytest.mark.slow
@pytest.mark.usefixtures("no_stray_processes")
def test_gpu_check_dry_path_writes_its_report(tmp_path):
    report = tmp_path / "gpu.md"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    env.pop("TUNETUI_STORAGE", None)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(report)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    text = report.read_text()
    assert done.returncode == 0, text[-4000:] + done.stderr[-2000:]
    assert "FAILED" not in text
    assert "no CUDA here: the CPU dry path" in text
    assert "skipped" in text  # the CUDA tests ran, and skipped themselves
    assert "faster than DataLoader" in text and "telemetry on/off" in text
    assert "| fp32 |" in text and "bf16 vs fp32: n/a (no CUDA)" in text
    assert "| OOM trial | fail | oom |" in text and "| next trial | complete |" in text
    assert "Host syncs per epoch" in text
    assert "2 vs 1:" in text and "trials/min" in text
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
