"""benchmarks/bench_search.py keeps working: its --quick mode (wine, one seed, 12 short trials)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers_run import ROOT, cli_env


def test_bench_search_quick_measures_the_default_against_random(tmp_path):
    out = tmp_path / "search.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), "--quick",
                           "--candidates", "default,best", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=cli_env())  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    random = payload["random"]["wine:0"]
    assert len(random) == 12 and all(t["state"] == "COMPLETE" and t["epochs"] == 4 for t in random)
    for row in payload["results"]:
        rule = {"default": "mean_last_3", "best": "best"}[row["candidate"]]  # the shipped rule; the old one
        assert row["rule"] == rule and row["random_epochs"] == 48
        values = [max(t["curve"]) if rule == "best" else sum(t["curve"][-3:]) / 3 for t in random]
        assert row["target"] == pytest.approx(max(values))  # random's best of N, by the candidate's own rule
        assert row["share"] is None or 0 < row["share"] <= 1 + 4 / 48  # at most one trial past the cap
    assert {(b["task"], b["rule"]) for b in payload["bias"]} == {
        ("wine", "best"), ("wine", "last"), ("wine", "mean_last_3"),
    }  # fmt: skip
    assert "| **default** | | all |" in done.stdout and "winner's bias" in done.stdout
    merged = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_search.py"), "--merge", str(out)],
                            capture_output=True, text=True, timeout=120, env=cli_env())  # fmt: skip
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert "| wine | 0 | default (mean_last_3) |" in merged.stdout and "| **default** | | all |" in merged.stdout
