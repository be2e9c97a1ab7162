"""Study overhead: wall time of a whole `tunetui run` vs the sum of its trials' training time.

The difference is what the engine costs around training: worker start-up (torch import), Optuna
ask/tell and per-epoch report on SQLite, telemetry writes, pipe traffic. Goal: ratio <= 1.10.

    .venv/bin/python benchmarks/bench_study.py [--trials 30] [--spec studies/digits_mlp.toml]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.isolation import python_path  # noqa: E402
from engine.store import Store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default=str(ROOT / "studies" / "digits_mlp.toml"))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], help="spec override, as for tunetui run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        argv = [sys.executable, "-m", "engine.cli", "run", args.spec, "--storage", url, "--quiet",
                "--trials", str(args.trials), "--workers", str(args.workers)]  # fmt: skip
        for item in args.set:
            argv += ["--set", item]
        started = time.perf_counter()
        subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": python_path()},
                       stdout=subprocess.DEVNULL)  # fmt: skip
        wall = time.perf_counter() - started
        store = Store(url, read_only=True)
        study = store.studies()[0]
        sid = study["study_id"]
        trials = store.trials(sid)
        train_times = [store.trial_attrs(sid, t.number).get("train_time_s") or 0.0 for t in trials]
        # the trial phase: first trial handed out -> last trial told (no process or worker start-up)
        span = max(t.finished for t in trials) - min(t.started for t in trials)
        best = study["best"]
    training = sum(train_times) / max(1, args.workers)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"study: {Path(args.spec).name}, {args.trials} trials, {args.workers} worker(s), best {best:.4f}")
    print(f"wall time of the run:           {wall:8.2f} s")
    print(f"sum of trial training time:     {sum(train_times):8.2f} s  (per worker {training:.2f} s)")
    print(f"ratio wall / training:          {wall / training:8.3f}   (goal <= 1.10)")
    print(f"start-up + shut-down (wall - trial phase): {wall - span:6.2f} s  (interpreter, worker's torch import)")
    print(f"trial phase / training:         {span / training:8.3f}   (engine cost between and around trials)")
    overhead_ms = (span - training) / max(1, len(trials)) * 1000 * args.workers
    print(f"engine overhead per trial:      {overhead_ms:8.1f} ms (ask, tell, report, prune, store writes)")


if __name__ == "__main__":
    main()
