"""The coordinator's own CPU time with the in-memory prune copy (engine/pruning.py) vs Optuna's
`should_prune`, side by side in one invocation: the default study's shape (digits MLP, TPE, median
pruner) on a SQLite store, run alternately with each, the same seeds.

    .venv/bin/python benchmarks/bench_prune.py [--trials 30] [--workers 2] [--repeat 2]

The coordinator runs in this process and its workers in their own, so this process's CPU time is the
coordinator's: ask/tell, telemetry writes, control polls and the prune decisions. Reported per epoch
the coordinator handled, and as wall time of the whole run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import engine.run.coordinator as coordinator_module  # noqa: E402
from engine.run.coordinator import Coordinator, RunOptions  # noqa: E402
from engine.spec import load_spec  # noqa: E402
from engine.store import Store  # noqa: E402

SUPPORTS = coordinator_module.supports


def run(folder: Path, name: str, copy: bool, trials: int, workers: int) -> dict:
    spec = load_spec(ROOT / "studies" / "digits_mlp.toml")
    spec = spec.model_copy(update={"study": spec.study.model_copy(update={"name": name})})
    # off: the coordinator takes Optuna's own should_prune, as for pruners the copy does not support
    coordinator_module.supports = SUPPORTS if copy else (lambda pruner: False)
    url = f"sqlite:///{folder}/{name}.db"
    options = RunOptions(n_trials=trials, workers=workers, threads=1, device="cpu")
    coordinator = Coordinator(spec, Store(url), options, log=lambda line: None)
    cpu, wall = time.process_time(), time.perf_counter()
    code = coordinator.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert code == 0, f"{name}: exit {code}"
    store = Store(url, read_only=True)
    sid = store.study_id(name)
    epochs = sum(t.epochs for t in store.trials(sid))
    states = [t.state for t in store.trials(sid)]
    return {"cpu": cpu, "wall": wall, "epochs": epochs, "pruned": states.count("PRUNED")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for copy in (True, False):
                results[copy].append(run(Path(tmp), f"p{i}_{int(copy)}", copy, args.trials, args.workers))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; {args.trials} trials, {args.workers} workers")
    print("| prune decisions | coordinator CPU ms per epoch | wall (s) | epochs | pruned |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for copy, label in ((True, "in-memory copy"), (False, "Optuna's should_prune")):
        for r in results[copy]:
            print(f"| {label} | {1000 * r['cpu'] / r['epochs']:.2f} | {r['wall']:.1f} | {r['epochs']} | {r['pruned']} |")


if __name__ == "__main__":
    main()
