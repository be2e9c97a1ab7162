"""benchmarks/bench_scale.py in CI: its smallest point against the test PostgreSQL server; and the durable
server the benchmark itself starts (.ci/postgres.sh start --durable)."""

from __future__ import annotations

import json
import subprocess
import sys

import sqlalchemy as sa

from engine.store import with_driver
from tests.conftest import ROOT

POINT_FIELDS = {
    "point", "sampler", "telemetry", "hosts", "workers_per_host", "window_s", "server", "offered_epochs_per_s", "trials_per_s",
    "pruned_share", "counts", "epoch_rows_per_s", "step_rows_per_s", "layer_rows_per_s", "write_ms", "latency_ms",
    "store_time_share", "coordinator_busy_share", "epoch_lag_ms", "backlog_at_end", "connections", "cpu_share",
    "load_avg_1m_before", "cpus",
}  # fmt: skip
KINDS = {"ask", "attrs", "report", "write_epoch", "log", "tell", "beat", "control"}


def test_smallest_point_reports_every_figure(postgres_server, tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_scale.py", "--url", postgres_server, "--points", "1x1",
         "--seconds", "4", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (point,) = json.loads(out.read_text())["points"]
    assert POINT_FIELDS <= set(point), POINT_FIELDS - set(point)
    assert (point["point"], point["sampler"], point["telemetry"]) == ("1x1", "tpe", "on")
    assert point["server"] == {"fsync": "off", "synchronous_commit": "off"}  # the test server, said as it is
    assert set(point["latency_ms"]) == KINDS
    # the simulated trials really went through the store: ask, report, write_epoch, tell, a heartbeat
    for kind in ("ask", "report", "write_epoch", "log", "tell", "beat", "control"):
        assert point["latency_ms"][kind]["n"] > 0, kind
        assert point["latency_ms"][kind]["p50"] <= point["latency_ms"][kind]["p99"]
    assert point["trials_per_s"] > 0 and point["epoch_rows_per_s"] > 0
    counts = point["counts"]  # 3 step samples and 3 layer rows per epoch by default
    assert counts["steps"] == counts["layers"] == 3 * counts["epochs"] > 0
    assert point["connections"]["max"] >= 1  # the coordinator's own, seen in pg_stat_activity
    for who in ("simulator", "server", "machine"):
        assert 0 <= point["cpu_share"][who] <= 1, point["cpu_share"]
    assert point["cpu_share"]["server"] > 0  # the postmaster's backends were found and counted
    assert "| 1x1 |" in done.stdout  # the Markdown table


def test_durable_server_keeps_commits_on_disk():
    done = subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "start", "--durable"], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    url, folder = done.stdout.split()[:2]
    try:
        engine = sa.create_engine(with_driver(url), poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            settings = [conn.execute(sa.text(f"SHOW {k}")).scalar() for k in ("fsync", "synchronous_commit")]
        assert settings == ["on", "on"]
    finally:
        subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "stop", folder], capture_output=True, check=False)
