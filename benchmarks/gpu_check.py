"""The GPU check's steps after the tests and bench_train (benchmarks/gpu_check.sh runs them all).

Each step prints one Markdown section. On a machine without CUDA, `--dry` runs small versions of the
same steps on the CPU, so CI keeps the script working; the GPU-only figures then say "n/a (no CUDA)".

    .venv/bin/python benchmarks/gpu_check.py [--dry] [--steps resnet,oom,syncs,slots]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.config import TrainConfig  # noqa: E402
from engine.gpus import read_gpus  # noqa: E402
from engine.isolation import python_path  # noqa: E402
from engine.trainer.tasks import TaskData  # noqa: E402
from engine.trainer.train import train  # noqa: E402

SYNTHETIC = Path(__file__).resolve().parent / "synthetic_cifar.py"


def cifar_like(n: int, device: torch.device) -> TaskData:
    sys.path.insert(0, str(SYNTHETIC.parent))
    from synthetic_cifar import build

    return build({"samples": n}, device)


# ---------------------------------------------------------------- ResNet: images/s, epoch time, bf16 vs fp32
def step_resnet(device: torch.device, dry: bool) -> str:
    n, epochs, layers, width = (160, 2, 1, 8) if dry else (25_000, 3, 3, 64)
    data = cifar_like(n, device)
    lines = ["## ResNet, CIFAR-10-shaped synthetic data", "",
             f"{len(data.y_train)} training images 3x32x32, ResNet layers={layers} width={width}, batch 256, "
             f"{epochs} epochs (first dropped), SGD.", "",
             "| precision | epoch s | images/s | peak MB |", "| --- | ---: | ---: | ---: |"]  # fmt: skip
    results = {}
    for amp in ("off", "bf16") if device.type == "cuda" else ("off",):
        config = TrainConfig(model="resnet", layers=layers, width=width, batch_size=256, epochs=epochs,
                             optimizer="sgd", lr=0.05, momentum=0.9, amp=amp, telemetry=True)  # fmt: skip
        reports: list[dict] = []

        def on_epoch(report, reports=reports) -> bool:
            reports.append(report.metrics)
            return False

        train(config, data, device, on_epoch)
        kept = reports[1:] or reports
        epoch_s = statistics.median(m["epoch_time_s"] for m in kept)
        rate = statistics.median(m["samples_per_s"] for m in kept)
        results[amp] = epoch_s
        lines.append(f"| {'fp32' if amp == 'off' else amp} | {epoch_s:.3f} | {rate:,.0f} | "
                     f"{max(m['mem_peak_mb'] for m in kept):,.0f} |")  # fmt: skip
    if "bf16" in results:
        lines += ["", f"bf16 vs fp32: **{results['off'] / results['bf16']:.2f}x** faster per epoch (goal >= 1.5x)"]
    else:
        lines += ["", "bf16 vs fp32: n/a (no CUDA)"]
    return "\n".join(lines)


# ---------------------------------------------------------------- a forced OOM, then a normal trial
class _Pipe:
    """The worker's pipe, as run_trial uses it: what it sends is kept; nothing arrives."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, message: dict) -> None:
        self.sent.append(message)

    def poll(self) -> bool:
        return False


def step_oom(device: torch.device, dry: bool) -> str:
    """The worker's own run_trial: an out-of-memory trial (a 2% memory cap on CUDA; injected on CPU),
    then a normal trial in the same process, with the memory it holds before, between and after."""
    from engine.run.protocol import RunTrial, TrialDone
    from engine.trainer.train import FAIL_ALLOC_ENV
    from engine.trainer.worker_main import run_trial

    # the synthetic task as a user task, loaded by the worker's own load_task
    task = {"name": "synthetic_cifar:build", "params": {"samples": 64 if dry else 5120}}
    params = {"samples": task["params"]["samples"], "__spec_dir__": str(SYNTHETIC.parent)}
    small = TrainConfig(model="resnet", layers=1 if dry else 2, width=4 if dry else 16, batch_size=16,
                        epochs=1, amp="off").model_dump()  # fmt: skip
    big = {**small, "width": 128, "layers": 3, "batch_size": 4096}
    name = str(device)
    allocated = (lambda: torch.cuda.memory_allocated(device) / 2**20) if device.type == "cuda" else (lambda: 0.0)

    def trial(number: int, config: dict, **extra: Any) -> TrialDone:
        return run_trial(_Pipe(), RunTrial(number, config, task, params, **extra), name)

    trial(0, small)  # loads the task: its tensors are what the process holds between trials
    before = allocated()
    if device.type == "cuda":
        oom = trial(1, big, memory_fraction=0.02)
        torch.cuda.set_per_process_memory_fraction(1.0, torch.cuda.current_device())
    else:
        os.environ[FAIL_ALLOC_ENV] = "2"
        try:
            oom = trial(1, small)
        finally:
            os.environ.pop(FAIL_ALLOC_ENV)
    between = allocated()
    normal = trial(2, small)
    after = allocated()
    how = "a 2% memory cap (memory_fraction 0.02), width 128, batch 4096" if device.type == "cuda" else (
        f"no CUDA: the OOM is injected ({FAIL_ALLOC_ENV}=2)")  # fmt: skip
    oom_state, normal_state = ("fail" if done.failed else "complete" for done in (oom, normal))
    ok = oom_state == "fail" and oom.reason == "oom" and normal_state == "complete"
    if not ok:
        raise RuntimeError(f"expected FAIL oom, then COMPLETE; got {oom} and {normal}")
    return "\n".join([
        "## A forced out-of-memory trial, then a normal one (the worker's run_trial)", "",
        f"OOM by {how}.", "",
        "| | state | reason | allocated MB after |", "| --- | --- | --- | ---: |",
        f"| OOM trial | {oom_state} | {oom.reason} | {between:.1f} |",
        f"| next trial | {normal_state} | {normal.reason or '-'} | {after:.1f} |", "",
        f"held before: {before:.1f} MB (the task's tensors). Result: **pass** "
        "(the OOM trial fails `oom`, its memory is freed, the next trial completes)",
    ])  # fmt: skip


# ---------------------------------------------------------------- host syncs per epoch
def step_syncs(device: torch.device, dry: bool) -> str:
    if device.type != "cuda":
        return "## Host syncs per epoch\n\nn/a (no CUDA: `torch.cuda.set_sync_debug_mode` needs a GPU)"
    from engine.spec import TaskSpec
    from engine.trainer.tasks import load_task

    rows = []
    for title, data, config in (
        ("digits MLP, telemetry on", load_task(TaskSpec(name="digits"), {}, device),
         TrainConfig(epochs=3, batch_size=64, clip_norm=5.0)),
        ("ResNet CIFAR-shaped, bf16", cifar_like(4096, device),
         TrainConfig(model="resnet", layers=2, width=32, batch_size=256, epochs=3, amp="bf16")),
    ):  # fmt: skip
        per_epoch: list[int] = []
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")

                def on_epoch(report, record=record, per_epoch=per_epoch) -> bool:
                    syncs = sum("synchroniz" in str(w.message) for w in record)
                    per_epoch.append(syncs - sum(per_epoch))
                    return False

                train(config, data, device, on_epoch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        rows.append(f"| {title} | {', '.join(map(str, per_epoch))} |")
    return "\n".join(["## Host syncs per epoch (`torch.cuda.set_sync_debug_mode`)", "",
                      "Synchronizing CUDA calls counted in each epoch (train + validation + the one copy).", "",
                      "| case | syncs per epoch |", "| --- | --- |", *rows])  # fmt: skip


# ---------------------------------------------------------------- two trials per GPU vs one; GPU busy share
def step_slots(device: torch.device, dry: bool) -> str:
    """Real `tunetui run` studies of a synthetic CIFAR-shaped ResNet task: 1 trial per GPU vs 2 (on CPU:
    1 worker vs 2), while a TUI-style reader polls the store and NVML is sampled (the GPU's busy share)."""
    trials, epochs, samples, layers, width = (2, 1, 32, 1, 4) if dry else (6, 3, 20_000, 3, 64)
    rows, busy_line = [], "GPU busy share: n/a (no NVML / no GPU)"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(SYNTHETIC, folder / "synthetic_cifar.py")
        for per_gpu in (1, 2):
            name = f"slots{per_gpu}"
            devices = (f'device = "cuda"\ntrials_per_gpu = {per_gpu}' if device.type == "cuda"
                       else f'device = "cpu"\nworkers = {per_gpu}')  # fmt: skip
            spec = folder / f"{name}.toml"
            spec.write_text(f"""[study]\nname = "{name}"\n[budget]\nn_trials = {trials}\n
[sampler]\nkind = "random"\n[pruner]\nkind = "none"\n[task]\nname = "synthetic_cifar:build"
[task.params]\nsamples = {samples}\n[train]\nmodel = "resnet"\nlayers = {layers}\nwidth = {width}
batch_size = 256\nepochs = {epochs}\noptimizer = "sgd"\nmomentum = 0.9\n[space.lr]\ntype = "float"
low = 0.01\nhigh = 0.1\nlog = true\n[devices]\n{devices}\n""")  # fmt: skip
            url = f"sqlite:///{folder}/store.db"
            env = {**os.environ, "PYTHONPATH": python_path()}
            env.pop("TUNETUI_STORAGE", None)
            sampler = _Sampler(url, name) if per_gpu == 1 else None
            started = time.perf_counter()
            if sampler:
                sampler.start()
            done = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(spec), "--storage", url, "--quiet"],
                                  cwd=folder, env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
            wall = time.perf_counter() - started
            if sampler:
                sampler.stop()
                busy_line = sampler.summary()
            if done.returncode != 0:
                raise RuntimeError(f"`tunetui run` failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
            rows.append((per_gpu, wall, trials / wall * 60))
    one, two = rows[0][2], rows[1][2]
    what = "trials per GPU" if device.type == "cuda" else "CPU workers"
    return "\n".join([
        f"## {what}: 2 vs 1 (`tunetui run`, {trials} ResNet trials of {epochs} epochs, {samples} images)", "",
        f"| {what} | wall s | trials/min |", "| ---: | ---: | ---: |",
        *[f"| {k} | {w:.1f} | {r:.2f} |" for k, w, r in rows], "",
        f"2 vs 1: **{two / one:.2f}x** the throughput.", "", busy_line,
    ])  # fmt: skip


class _Sampler:
    """While a study runs: poll it the way the TUI does (every 0.33 s) and sample NVML every 0.2 s."""

    def __init__(self, url: str, study: str) -> None:
        self.url, self.study = url, study
        self.utils: list[int] = []
        self.polls = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._nvml, daemon=True),
                         threading.Thread(target=self._tui, daemon=True)]  # fmt: skip

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _nvml(self) -> None:
        while not self._stop.wait(0.2):
            gpus = read_gpus()
            if gpus:
                self.utils.append(gpus[0].util_pct)

    def _tui(self) -> None:
        from tui.data import StudyWatcher, Want

        watcher = None
        while not self._stop.wait(0.33):
            try:
                watcher = watcher or StudyWatcher(self.url, self.study)
                watcher.poll(Want())
                self.polls += 1
            except Exception:  # the store may not exist for the first moments
                watcher = None

    def summary(self) -> str:
        if not self.utils:
            return f"GPU busy share: n/a (no NVML / no GPU); the TUI reader polled {self.polls} times meanwhile"
        share = statistics.fmean(self.utils)
        return (f"GPU busy share over the 1-per-GPU run (NVML utilization, {len(self.utils)} samples, the "
                f"TUI reader polling {self.polls} times meanwhile): **{share:.0f}%** (goal >= 90%; includes "
                "start-up and shut-down)")  # fmt: skip


STEPS = {"resnet": step_resnet, "oom": step_oom, "syncs": step_syncs, "slots": step_slots}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="small CPU versions of the steps")
    parser.add_argument("--steps", default=",".join(STEPS))
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry else "cpu")
    failed = 0
    for name in args.steps.split(","):
        started = time.perf_counter()
        try:
            print(STEPS[name](device, args.dry), flush=True)
        except Exception:  # one broken step must not hide the others' figures
            failed += 1
            print(f"## {name}: **FAILED**\n\n```\n{traceback.format_exc()[-3000:]}```", flush=True)
        print(f"\n_{name}: {time.perf_counter() - started:.1f} s_\n", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
