"""First paint of a 10,000-trial study in an Optuna journal file beside the same trials in SQLite.

    nice -n 10 .venv/bin/python benchmarks/bench_journal.py [--trials 10000] [--repeats 3]

The SQLite study is bench_tui.py's (tests/tui/builders.py `build_big_study`). The journal holds the same
trials, written as Optuna's JournalStorage writes a study it runs: per trial one create, one line per
param, one per reported value (12 epochs), one for the end. Lines go through JournalStorage's own methods
onto a file backend that skips the fsync per line (the lines are the same; only building is faster).
Measured as bench_tui.py measures the Study screen: from Enter (the screen pushed) to every trial painted,
which for the journal includes reading the whole file, then to every param shown (a big study's params come
on the poll after its rows, from SQLite and from a journal alike), and the same from a cold start of the
app, with its CPU seconds (less distorted than wall time by other jobs on the machine). The journal is read
by tunetui's reader (engine/store/journal_log.py) and, in the same run, by Optuna's own JournalStorage (the
store's fallback, forced: how tunetui read journals before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_tui import PaintClock, _paint  # noqa: E402
from tests.tui.builders import build_big_study  # noqa: E402

EPOCHS = 12


def build_journal_copy(sqlite_url: str, path: Path, name: str = "big") -> int:
    """The SQLite study's trials replayed into a journal file through JournalStorage's methods."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    class UnsyncedFileBackend(JournalFileBackend):
        def append_logs(self, logs):  # JournalFileBackend's format, without its lock and fsync per call
            with open(path, "ab") as f:
                f.write(("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode())

    from engine.store import Store

    source = Store(sqlite_url, read_only=True).optuna_study(name)
    trials = source.get_trials(deepcopy=False)
    storage = optuna.storages.JournalStorage(UnsyncedFileBackend(str(path)))
    sid = storage.create_new_study(source.directions, name)
    for t in trials:
        tid = storage.create_new_trial(sid)
        for key, value in t.params.items():
            dist = t.distributions[key]
            storage.set_trial_param(tid, key, dist.to_internal_repr(value), dist)
        if t.value is not None:
            for epoch in range(EPOCHS):
                storage.set_trial_intermediate_value(tid, epoch, t.value * (epoch + 1) / EPOCHS)
        storage.set_trial_state_values(tid, t.state, [t.value] if t.value is not None else None)
    return len(trials)


def first_paint(url: str, trials: int, repeats: int) -> dict[str, float]:
    """Medians of: Enter to every row painted, to every param shown, and the process's CPU seconds to the
    latter; the same from a cold start of the app."""
    from tui import data
    from tui.app import TunetuiApp
    from tui.widgets.trial_table import TrialTable

    def median(factory, start_app: bool) -> tuple[float, float, float]:
        runs = []
        for _ in range(repeats):
            data._journals.clear()  # each run reads the file afresh, as a new `tunetui` process does
            with PaintClock(TrialTable, lambda t: len(t.order), trials) as clock:
                cpu = time.process_time()
                rows, params = asyncio.run(_paint(factory, clock, start_app))
                runs.append((rows, params, time.process_time() - cpu))
        return tuple(statistics.median(run[i] for run in runs) for i in range(3))

    enter = median(lambda: TunetuiApp(url), start_app=False)
    cold = median(lambda: TunetuiApp(url, open_study="big"), start_app=True)
    return {"enter": enter[0], "enter_params": enter[1], "cold": cold[0], "cold_params": cold[1],
            "cold_cpu": cold[2]}  # fmt: skip


@contextmanager
def optunas_reader():
    """The journal read by Optuna's own JournalStorage, as tunetui read it before its lean reader (the
    store's fallback, forced)."""
    from engine.store import journal

    class GivesUp(journal.JournalLog):
        def read(self):
            raise journal.NotLean("measuring Optuna's reader")

    lean, journal.JournalLog = journal.JournalLog, GivesUp
    try:
        yield
    finally:
        journal.JournalLog = lean


def read_rows(path: Path) -> tuple[float, int]:
    from engine.store import Store

    start = time.perf_counter()
    store = Store(str(path), read_only=True)
    rows = store.trials(store.study_id("big"))
    return time.perf_counter() - start, len(rows)


def reader_cpu(path: Path) -> dict[str, float]:
    """CPU seconds of each step of tunetui's reader on the whole file, and of Optuna's replay of it."""
    from engine.store import Store
    from engine.store.journal import OptunaJournalReader

    cpu = time.process_time()
    store = Store(str(path), read_only=True)
    sid = store.study_id("big")
    with store.reading() as reading:
        rows = store.changed_trials(reading, sid, 0, (), params_limit=0)
        out = {"rows": time.process_time() - cpu}
        assert not rows[0].params  # step 1 only
        cpu = time.process_time()
        store.changed_trials(reading, sid, 0, ())
        out["params"] = time.process_time() - cpu
        cpu = time.process_time()
        store.intermediate_values(reading, sid, [0])
        out["values"] = time.process_time() - cpu
    cpu = time.process_time()
    OptunaJournalReader(path).study_trials(sid)
    out["optuna"] = time.process_time() - cpu
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optuna-repeats", type=int, default=1, help="repeats of Optuna's reader (slow)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        sqlite_url = f"sqlite:///{tmp}/big.db"
        build_big_study(sqlite_url, name="big", n_trials=args.trials)
        journal = Path(tmp) / "big.log"
        start = time.perf_counter()
        n = build_journal_copy(sqlite_url, journal)
        built = time.perf_counter() - start
        lines = sum(1 for _ in journal.open("rb"))
        print(f"journal: {n:,} trials, {lines:,} lines, {journal.stat().st_size / 1e6:.1f} MB (built in {built:.0f} s)")
        print(f"load average at the start: {os.getloadavg()[0]:.1f}")
        read, count = read_rows(journal)
        steps = reader_cpu(journal)
        sqlite = first_paint(sqlite_url, n, args.repeats)
        lean = first_paint(str(journal), n, args.repeats)
        with optunas_reader():
            optuna_read, _ = read_rows(journal)
            optuna = first_paint(str(journal), n, args.optuna_repeats)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| measure | SQLite | journal | journal, Optuna's JournalStorage |")
    print("| --- | --- | --- | --- |")
    print(f"| open and read the study into {count:,} trial rows with params (`Store(path).trials`) | | {read:.2f} s "
          f"| {optuna_read:.2f} s |")  # fmt: skip
    for key, what in (("enter", f"Study screen: Enter to all {n:,} trials painted (open and read included)"),
                      ("enter_params", "... to every param shown"),
                      ("cold", "the same from a cold start of the app: all trials painted"),
                      ("cold_params", "... to every param shown"),
                      ("cold_cpu", "CPU seconds of that cold start (to every param shown)")):  # fmt: skip
        print(f"| {what} | {sqlite[key]:.2f} s | {lean[key]:.2f} s | {optuna[key]:.2f} s |")
    print()
    print("| reading the journal, CPU seconds | tunetui's reader | Optuna's JournalStorage |")
    print("| --- | --- | --- |")
    print(f"| open, every trial's row without params (step 1) | {steps['rows']:.2f} s | |")
    # step 3 comes with step 2: each row counts the steps its trial reported (Optuna alone has no epochs)
    print(f"| the params and the intermediate values (steps 2 and 3) | {steps['params']:.2f} s | |")
    print(f"| what a curve still reads after them | {steps['values']:.2f} s | |")
    print(f"| the whole file | {sum(steps[k] for k in ('rows', 'params', 'values')):.2f} s | {steps['optuna']:.2f} s |")


if __name__ == "__main__":
    main()
