"""Parallel trials: speed-up of 2 workers over 1, and the per-trial fixed cost of reused workers vs a
fresh process per trial. Both pairs run side by side in one invocation; results in ratios.

    .venv/bin/python benchmarks/bench_parallel.py [--trials 24] [--epochs 4] [--rows 16384] [--repeat 2]

1. Speed-up: CPU-bound trials (an MLP on 8192 random training rows, user task helpers_tasks:busy), one torch
   thread per worker in both runs, so a second worker can only help by using the second core.
   Goal: >= 1.7x on 2 cores. Reported end to end (worker start-up included) and in steady state
   (first trial start to last trial end), next to the same trials trained by 1 and by 2 plain processes
   (no coordinator, no store): what the machine itself allows at that moment.
2. Fixed cost: a trivially small trial (32 rows, 1 epoch: ~3 ms of training) run by one long-lived
   worker, vs the same trial in a fresh worker process each time (RunOptions.worker_max_trials = 1:
   spawn, import torch, load the task). Time per trial is almost all fixed cost. Goal: >= 10x lower.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.run.coordinator import Coordinator, RunOptions  # noqa: E402
from engine.spec import load_spec  # noqa: E402
from engine.store import Store  # noqa: E402

SPEC = """
[study]
name = "{name}"

[sampler]
kind = "random"

[pruner]
kind = "none"

[task]
name = "helpers_tasks:{task}"
params = {{ rows = {rows} }}

[train]
epochs = {epochs}
batch_size = {batch_size}
width = {width}
layers = 2

[space.lr]
type = "float"
low = 1e-3
high = 1e-2
log = true
"""


def run_study(folder: Path, name: str, task: str, trials: int, workers: int, epochs: int, batch_size: int,
              width: int, worker_max_trials: int | None = None, rows: int = 2048) -> dict:  # fmt: skip
    """One in-process coordinator run; returns wall time, steady-state span and summed training time."""
    spec_path = folder / f"{name}.toml"
    text = SPEC.format(name=name, task=task, epochs=epochs, batch_size=batch_size, width=width, rows=rows)
    spec_path.write_text(text)
    url = f"sqlite:///{folder}/{name}.db"
    options = RunOptions(n_trials=trials, workers=workers, threads=1, device="cpu",
                         worker_max_trials=worker_max_trials, spec_path=str(spec_path))  # fmt: skip
    coordinator = Coordinator(load_spec(spec_path), Store(url), options, log=lambda line: None)
    began = time.perf_counter()
    code = coordinator.run()
    wall = time.perf_counter() - began
    assert code == 0, f"{name}: the run exited {code}"
    store = Store(url, read_only=True)
    sid = store.study_id(name)
    finished = store.trials(sid)
    assert len(finished) == trials and all(r.state == "COMPLETE" for r in finished), [
        r.state for r in finished
    ]
    train = sum(store.trial_attrs(sid, r.number).get("train_time_s") or 0.0 for r in finished)
    span = max(r.finished for r in finished) - min(r.started for r in finished)
    store.close()
    return {"wall": wall, "span": span, "train": train, "trials": trials}


BARE = """
import sys, time
sys.path[:0] = [{root!r}, {folder!r}]
import torch
torch.set_num_threads(1)
from engine.config import TrainConfig
from engine.trainer.train import train
from helpers_tasks import busy
data = busy({{"rows": {rows}}}, torch.device("cpu"))
config = TrainConfig(epochs={epochs}, batch_size=64, width=256, layers=2, lr=3e-3)
train(config, data, torch.device("cpu"), lambda report: False)  # warm up
print("ready", flush=True)
sys.stdin.readline()  # all processes start together
began = time.perf_counter()
for _ in range({trials}):
    train(config, data, torch.device("cpu"), lambda report: False)
print(time.perf_counter() - began, flush=True)
"""


def bare_training(folder: Path, processes: int, trials: int, epochs: int, rows: int) -> float:
    """The same trials trained by `processes` plain Python processes, no coordinator, no store: the
    machine's own ceiling (on a shared or overcommitted VM two vCPUs are not two free cores)."""
    code = BARE.format(
        root=str(ROOT), folder=str(folder), rows=rows, epochs=epochs, trials=trials // processes
    )
    argv = [sys.executable, "-c", code]
    pool = [subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(processes)]  # fmt: skip
    for process in pool:
        assert process.stdout.readline().strip() == "ready"
    for process in pool:
        process.stdin.write("\n")
        process.stdin.flush()
    return max(float(process.communicate()[0]) for process in pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="CPU-bound trials per speed-up run")
    parser.add_argument("--epochs", type=int, default=4, help="epochs of each CPU-bound trial")
    parser.add_argument("--rows", type=int, default=16384, help="training rows of the CPU-bound task")
    parser.add_argument("--fixed-trials", type=int, default=40, help="tiny trials with a reused worker")
    parser.add_argument("--fresh-trials", type=int, default=8, help="tiny trials with a fresh process each")
    parser.add_argument("--repeat", type=int, default=2, help="speed-up runs per worker count (best is kept)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, python {platform.python_version()}, "
          f"{datetime.now():%Y-%m-%d %H:%M}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tunetui-bench-") as tmp:
        folder = Path(tmp)
        shutil.copy(ROOT / "tests" / "helpers_tasks.py", folder / "helpers_tasks.py")
        busy = {"task": "busy", "trials": args.trials, "epochs": args.epochs, "batch_size": 64, "width": 256,
                "rows": args.rows}  # fmt: skip
        runs: dict[int, list[dict]] = {1: [], 2: []}
        bare: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(args.repeat):  # interleaved, so a burst of load elsewhere hits all
            for k in (1, 2):
                bare[k].append(bare_training(folder, k, args.trials, args.epochs, args.rows))
                runs[k].append(run_study(folder, f"workers_{k}_{repeat}", workers=k, **busy))
        one, two = (min(runs[k], key=lambda r: r["wall"]) for k in (1, 2))
        tiny = {"task": "tiny", "workers": 1, "epochs": 1, "batch_size": 16, "width": 16}
        reused = run_study(folder, "reused", trials=args.fixed_trials, **tiny)
        fresh = run_study(folder, "fresh", trials=args.fresh_trials, worker_max_trials=1, **tiny)

    print("\n## 1. Parallel speed-up (CPU-bound trials, 1 torch thread per worker)\n")
    print(f"{args.trials} trials x {args.epochs} epochs, MLP 2x256 on {args.rows // 2}x64 rows, batch 64\n")
    print("| workers | wall (s) | steady state (s) | training per trial (s) | bare training (s) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for k, r in ((1, one), (2, two)):
        print(
            f"| {k} | {r['wall']:.2f} | {r['span']:.2f} | {r['train'] / r['trials']:.3f} | {min(bare[k]):.2f} |"
        )
    steady, ceiling = one["span"] / two["span"], min(bare[1]) / min(bare[2])
    print(f"\nspeed-up 2 vs 1 workers: end to end {one['wall'] / two['wall']:.2f}x, steady state {steady:.2f}x "
          f"(goal >= 1.7x); bare training in 1 vs 2 plain processes meanwhile: {ceiling:.2f}x, so tunetui "
          f"gets {steady / ceiling:.0%} of what this machine gives a second process")  # fmt: skip
    for k in (1, 2):
        print(f"  every run, {k} worker(s): tunetui wall " + ", ".join(f"{r['wall']:.2f}" for r in runs[k])
              + " s; bare " + ", ".join(f"{b:.2f}" for b in bare[k]) + " s")  # fmt: skip
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (other processes on this machine)")
    print("\n## 2. Per-trial fixed cost: reused worker vs a fresh process per trial\n")
    print("| mode | trials | steady state (s) | per trial (ms) | training per trial (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    per = {}
    for mode, r in (("reused worker", reused), ("fresh process per trial", fresh)):
        per[mode] = r["span"] / r["trials"]
        print(f"| {mode} | {r['trials']} | {r['span']:.2f} | {per[mode] * 1000:.0f} | "
              f"{r['train'] / r['trials'] * 1000:.1f} |")  # fmt: skip
    ratio = per["fresh process per trial"] / per["reused worker"]
    print(f"\nfixed cost per trial: {ratio:.1f}x lower with a reused worker (goal >= 10x)")


if __name__ == "__main__":
    main()
