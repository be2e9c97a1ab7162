"""Profiling a spec's trial: a table of top ops and a Chrome trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.spec import load_spec
from engine.trainer.profile import profile_trial

ROOT = Path(__file__).resolve().parents[1]


def test_profile_digits_writes_a_table_and_a_chrome_trace(tmp_path):
    spec = load_spec(ROOT / "studies" / "digits_mlp.toml")
    trace = tmp_path / "out" / "trace.json"
    table = profile_trial(
        spec,
        {"lr": 0.01, "layers": 2, "width": 64, "batch_size": 32},
        steps=5,
        trace_path=trace,
        device="cpu",
    )
    assert "digits_mlp: 5 training step(s) of batch 32 on cpu" in table
    assert "Top ops by self CPU time" in table and "Self CPU" in table
    assert "aten::" in table
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("name", "").startswith("aten::addmm") for e in events)
    # exactly 5 optimizer steps were profiled (warm-up ran outside)
    assert sum(1 for e in events if e.get("name", "").startswith("Optimizer.step#")) == 5


def test_profile_needs_a_step(tmp_path):
    spec = load_spec(ROOT / "studies" / "digits_mlp.toml")
    with pytest.raises(ValueError, match="at least 1"):
        profile_trial(spec, {}, steps=0, trace_path=tmp_path / "t.json", device="cpu")
