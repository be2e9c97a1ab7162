"""TUI benchmarks: first paint with 10,000 trials (ours vs a plain DataTable), refresh cost per poll tick
while a study streams, and the TUI process's CPU share while watching a running study in a real terminal.

    .venv/bin/python benchmarks/bench_tui.py [--trials 10000] [--watch-s 30] [--out results.md]

Stores are built in a temporary folder with Optuna's API (see tests/tui/builders.py); the streaming study is
fed by a writer process that uses the same Store calls as the coordinator (epochs with steps and layer
histograms, trials told as they end), at a brisker pace than a real digits study.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.tui.builders import build_big_study, write_telemetry  # noqa: E402


# ---------------------------------------------------------------- first paint
def _trial_rows(url: str, name: str):
    from tui.data import StudyWatcher, Want

    watcher = StudyWatcher(url, name)
    delta = watcher.poll(Want())
    while delta.partial:  # a big study comes in two reads: rows, then params
        delta = watcher.poll(Want())
    watcher.close()
    return delta.trials


class PaintClock:
    """When a table class first paints a line while holding `count` rows (its line API is the hook)."""

    def __init__(self, table_class, rows_of, count: int):
        self.table_class, self.rows_of, self.count = table_class, rows_of, count
        self.painted_at: float | None = None
        self.original = table_class.render_line

    def __enter__(self):
        clock = self

        def render_line(table, y):
            if clock.painted_at is None and y > 0 and clock.rows_of(table) == clock.count:
                clock.painted_at = time.perf_counter()
            return clock.original(table, y)

        self.table_class.render_line = render_line
        return self

    def __exit__(self, *exc):
        self.table_class.render_line = self.original


async def _paint(
    app_factory, clock: PaintClock, start_app: bool = True, size=(160, 48)
) -> tuple[float, float]:
    """(first paint with every row, screen idle after it): seconds from the app start or the screen push."""
    app = app_factory()
    start = time.perf_counter()
    async with app.run_test(size=size) as pilot:
        if not start_app:  # measure from Enter on the Studies screen, not from the process start
            from tui.screens.study import StudyScreen

            await pilot.pause(0.5)
            start = time.perf_counter()
            app.push_screen(StudyScreen("big"))
        while clock.painted_at is None:
            await pilot.pause(0.005)
        first = clock.painted_at - start
        while hasattr(app.screen, "model") and not all(r.params for r in app.screen.model.rows.values()):
            await pilot.pause(0.005)  # the second read (params) of the Study screen
        await pilot.pause()
        return first, time.perf_counter() - start


def bench_first_paint(url: str, repeats: int) -> dict:
    from textual.app import App
    from textual.widgets import DataTable

    from tui.app import TunetuiApp
    from tui.formatting import format_duration, format_value
    from tui.widgets.trial_table import TrialTable

    rows = _trial_rows(url, "big")
    params = sorted({p for r in rows for p in r.params})

    class PlainTable(App):
        def compose(self):
            yield DataTable()

        def on_mount(self):
            table = self.query_one(DataTable)
            table.add_columns("#", "state", "value", "ep", "time", "!", *params)
            table.add_rows(
                (
                    r.number,
                    r.state.lower(),
                    format_value(r.value),
                    r.epochs,
                    format_duration(r.duration_s),
                    r.flags or "",
                    *(format_value(r.params.get(p)) for p in params),
                )  # fmt: skip
                for r in rows
            )

    class OurTable(App):
        def compose(self):
            yield TrialTable()

        def on_mount(self):
            self.query_one(TrialTable).update_rows(rows)

    def median(factory, table_class, rows_of, start_app=True) -> tuple[float, float]:
        runs = []
        for _ in range(repeats):
            with PaintClock(table_class, rows_of, len(rows)) as clock:
                runs.append(asyncio.run(_paint(factory, clock, start_app)))
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    plain, _ = median(PlainTable, DataTable, lambda t: t.row_count)
    ours, _ = median(OurTable, TrialTable, lambda t: len(t.order))
    study, study_full = median(lambda: TunetuiApp(url), TrialTable, lambda t: len(t.order), start_app=False)
    cold, _ = median(lambda: TunetuiApp(url, open_study="big"), TrialTable, lambda t: len(t.order))
    return {"trials": len(rows), "plain": plain, "ours": ours, "study": study, "study_full": study_full,
            "cold": cold}  # fmt: skip


# ---------------------------------------------------------------- a streaming study
def stream_writer(
    url: str, name: str, seconds: float, slots: int = 2, epochs: int = 20, every_s: float = 0.25
):
    """Like a coordinator with `slots` workers: one epoch per slot every `every_s`, then tell and ask again."""
    import optuna

    from engine.store import Store
    from tests.tui.builders import DISTRIBUTIONS

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = Store(url)
    study = optuna.load_study(study_name=name, storage=store.optuna_storage())
    sid = store.study_id(name)
    rng = random.Random(7)
    store.beat(
        sid, "bench", pid=os.getpid(), started=time.time(), state="running", workers=slots, device="cpu"
    )
    running: dict[int, tuple] = {}
    end = time.time() + seconds
    last_beat = 0.0
    while time.time() < end:
        while len(running) < slots:
            trial = study.ask(DISTRIBUTIONS)
            running[trial.number] = (trial, 0, rng.uniform(0.6, 0.99))
        for number, (trial, epoch, value) in list(running.items()):
            epoch += 1
            write_telemetry_epoch(store, sid, number, epoch, epochs, value, rng, trial.params)
            if epoch >= epochs:
                study.tell(trial, value)
                del running[number]
            else:
                running[number] = (trial, epoch, value)
        if time.time() - last_beat > 2:
            store.beat(sid, "bench", state="running")
            last_beat = time.time()
        time.sleep(every_s)
    for trial, _, _ in running.values():
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    store.beat(sid, "bench", state="finished")
    store.close()


def write_telemetry_epoch(store, sid, number, epoch, epochs, value, rng, params):
    """One epoch of telemetry (10 sampled steps, 3 layer histograms), as a worker message would bring."""
    frac = epoch / epochs
    metrics = {
        "train_loss": 2.3 * math.exp(-2.5 * frac), "val_loss": 2.3 * math.exp(-2.2 * frac) + 0.08,
        "train_acc": value * (0.6 + 0.4 * frac), "val_acc": value * (0.55 + 0.45 * frac),
        "lr": params["lr"] * 0.5 * (1 + math.cos(math.pi * frac)), "grad_norm": 3 * math.exp(-frac) + rng.random(),
    }  # fmt: skip
    steps = [{"step": (epoch - 1) * 10 + s, "epoch": epoch, "loss": metrics["train_loss"], "lr": metrics["lr"],
              "grad_norm": metrics["grad_norm"] * (0.8 + 0.4 * rng.random())} for s in range(10)]  # fmt: skip
    layers = [{"layer": f"fc{k}", "grad_norm": metrics["grad_norm"] / (k + 1), "weight_norm": 4.0,
               "hist_json": '{"edges": [-1, -0.5, 0, 0.5, 1], "counts": [1, 5, 5, 1]}'} for k in range(3)]  # fmt: skip
    store.write_epoch(sid, number, epoch, metrics, steps, layers)


def make_stream_store(folder: Path, trials: int) -> str:
    url = f"sqlite:///{folder}/stream.db"
    build_big_study(url, name="stream", n_trials=trials, seed_trials=min(500, trials))
    from engine.store import Store

    store = Store(url)
    sid = store.study_id("stream")
    rng = random.Random(3)
    for number in range(max(0, trials - 50), trials):  # recent trials have curves, like a real study
        write_telemetry(store, sid, number, 20, 0.9, rng, {"lr": 0.01})
    store.close()
    return url


def bench_refresh(url: str, seconds: float) -> dict:
    """Run the Study screen headless against the stream; per tick: store query time and UI apply time."""
    from tui.app import TunetuiApp

    writer = mp.get_context("spawn").Process(target=stream_writer, args=(url, "stream", seconds + 5))
    writer.start()
    polls: list[float] = []
    applies: list[float] = []

    async def watch():
        app = TunetuiApp(url, open_study="stream")
        async with app.run_test(size=(160, 48)) as pilot:
            while not hasattr(app.screen, "ticks") or app.screen.ticks < 2:
                await pilot.pause(0.05)
            screen = app.screen
            await pilot.press("f")  # follow the newest trial: curves of a running trial redraw every tick
            screen.tick_costs.clear()
            await asyncio.sleep(seconds)
            polls.extend(q for q, _ in screen.tick_costs)
            applies.extend(a for _, a in screen.tick_costs)

    try:
        asyncio.run(watch())
    finally:
        writer.join(timeout=30)
        if writer.is_alive():
            writer.terminate()
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")  # noqa: E731
    return {"ticks": len(polls), "poll_p50": q(polls, 0.5), "poll_p95": q(polls, 0.95),
            "apply_p50": q(applies, 0.5), "apply_p95": q(applies, 0.95)}  # fmt: skip


# ---------------------------------------------------------------- CPU share in a real terminal (tmux)
def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_cpu(url: str, seconds: float, folder: Path) -> dict:
    if shutil.which("tmux") is None:
        return {"skipped": "tmux is not installed"}
    session = f"bench-tui-{os.getpid()}"
    writer = mp.get_context("spawn").Process(target=stream_writer, args=(url, "stream", seconds + 20))
    writer.start()
    command = (f"cd {folder} && exec env TUNETUI_STORAGE={url} PYTHONPATH={ROOT} {sys.executable} -m tui "
               f"tui --studies-dir {ROOT / 'studies'}")  # fmt: skip
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", command], check=True)
    try:
        pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                                 text=True, check=True).stdout)  # fmt: skip
        time.sleep(4)
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)  # open the study
        time.sleep(2)
        subprocess.run(["tmux", "send-keys", "-t", session, "f"], check=True)  # follow the newest trial
        time.sleep(3)
        c0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu_seconds(pid), time.monotonic()
        capture = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout
        (folder / "study-screen.txt").write_text(capture)
        return {"cpu_share": (c1 - c0) / (t1 - t0), "seconds": t1 - t0, "capture": capture}
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        writer.join(timeout=40)
        if writer.is_alive():
            writer.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--stream-trials", type=int, default=2_000, help="trials already in the streaming study"
    )
    parser.add_argument("--watch-s", type=float, default=30.0)
    parser.add_argument("--out", help="also write the results (markdown) here")
    parser.add_argument("--capture", help="write the tmux capture of the Study screen here")
    parser.add_argument("--only-paint", action="store_true", help="measure first paint only")
    parser.add_argument("--epochs", type=int, default=0,
                        help="epoch rows of metrics per trial of the big study (the table's metric columns)")  # fmt: skip
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-tui-") as tmp:
        folder = Path(tmp)
        big = f"sqlite:///{folder}/big.db"
        build_big_study(big, name="big", n_trials=args.trials, epochs=args.epochs)
        paint = bench_first_paint(big, args.repeats)
        if args.only_paint:
            print(paint)
            return
        stream = make_stream_store(folder, args.stream_trials)
        refresh = bench_refresh(stream, args.watch_s / 2)
        cpu = bench_cpu(stream, args.watch_s, folder)
    lines = [
        "| measure | result | goal |",
        "| --- | --- | --- |",
        f"| first paint, {paint['trials']:,} trials: plain `DataTable` (rows in memory) | {paint['plain']:.2f} s | |",
        f"| first paint, {paint['trials']:,} trials: `TrialTable` (rows in memory) | {paint['ours']:.2f} s "
        f"({paint['plain'] / paint['ours']:.1f}x faster) | <= 0.5 s |",
        f"| Study screen: Enter to all {paint['trials']:,} trials painted (read from the store + paint) "
        f"| {paint['study']:.2f} s | <= 0.5 s |",
        f"| Study screen: Enter to the param columns filled in too (second read) | {paint['study_full']:.2f} s | |",
        f"| the same from a cold start (`tunetui` process start included) | {paint['cold']:.2f} s | |",
        f"| poll tick while streaming ({args.stream_trials:,}+ trials, 2 slots): store query p50 / p95 "
        f"| {refresh['poll_p50']:.1f} / {refresh['poll_p95']:.1f} ms | |",
        f"| poll tick: applying the delta on the UI thread p50 / p95 | {refresh['apply_p50']:.1f} / "
        f"{refresh['apply_p95']:.1f} ms ({refresh['ticks']} ticks) | |",
    ]
    if "cpu_share" in cpu:
        lines.append(f"| TUI process CPU while watching the streaming study in tmux ({cpu['seconds']:.0f} s) "
                     f"| {cpu['cpu_share'] * 100:.1f}% of one core | <= 10% |")  # fmt: skip
    else:
        lines.append(f"| TUI CPU share | skipped: {cpu['skipped']} | <= 10% |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.capture and "capture" in cpu:
        Path(args.capture).write_text(cpu["capture"])


if __name__ == "__main__":
    main()
