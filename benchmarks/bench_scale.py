"""Many hosts on one PostgreSQL store: H coordinators x W workers writing short trials' telemetry.

Each coordinator is a process that does what tunetui's coordinator does for its workers, in one thread
and through tunetui's own code: Optuna ask (the default study's TPE sampler and search space, the
suggests of engine/space.py) and the trial's attrs; per epoch `trial.report` with the median pruner's
in-memory copy (engine/pruning.py), `Store.write_epoch` with step samples and layer rows, and
`Store.write_log` with the worker's line; `study.tell`; a heartbeat (`Store.beat`, the prune copy's
refresh) every 2 s and a control poll (`Store.control_rows`) every 0.5 s. Its W workers are threads that
send an epoch every --epoch-s seconds, shaped like a real digits trial's (measured: 20 epochs, ~3 step
samples and 2-4 layer rows with a 32-bin histogram per epoch, a log line), and do not wait for the
coordinator, as real workers do not.

    .venv/bin/python benchmarks/bench_scale.py                      # starts a durable server itself
    .venv/bin/python benchmarks/bench_scale.py --points 1x1,2x2 --seconds 20 --url postgresql://...

Per point: write latency p50/p99 per kind, trials/s, epoch rows/s, the age of an epoch message when its
telemetry committed (the coordinator's backlog), connections (pg_stat_activity), and the CPU share of
the simulator's processes and of the server's (postmaster and backends, from /proc) over the window.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing as mp
import os
import queue
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SPEC = ROOT / "studies" / "digits_mlp.toml"
HEARTBEAT_EVERY_S = 2.0  # engine/run/coordinator.py's intervals
CONTROL_EVERY_S = 0.5
STUDY = "scale"


# ---------------------------------------------------------------------------- the simulated workers
def telemetry_rows(number: int, epoch: int, steps: int, layers: int, rng: random.Random) -> tuple[list, list]:
    """Step samples and layer rows of one epoch, shaped like the digits trial's (engine/trainer/train.py)."""
    step_rows = [
        {"step": (epoch - 1) * steps * 10 + 10 * i + 1, "epoch": epoch, "loss": rng.random() * 3,
         "lr": 0.003, "grad_norm": rng.random() * 5, "clipped": 0.0, "amp_scale": None, "skipped": 0.0}
        for i in range(steps)
    ]  # fmt: skip
    edges = [round(-0.16 + 0.01 * i, 7) for i in range(33)]
    counts = [rng.randrange(600) for _ in range(32)]
    hist = json.dumps({"edges": edges, "counts": counts}, separators=(",", ":"))
    layer_rows = [
        {"layer": f"fc{i + 1}", "grad_norm": rng.random(), "weight_norm": 10 * rng.random(), "hist_json": hist}
        for i in range(layers)
    ]
    return step_rows, layer_rows


class Worker(threading.Thread):
    """One worker's message stream: an epoch every `epoch_s` seconds, then `done`; never waits for answers."""

    def __init__(self, index: int, outbox: queue.Queue, args: argparse.Namespace, stop: threading.Event):
        super().__init__(daemon=True)
        self.index, self.outbox, self.args, self.stop = index, outbox, args, stop
        self.assignments: queue.Queue = queue.Queue()
        self.pruned: set[int] = set()
        self.rng = random.Random(index)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                number = self.assignments.get(timeout=0.1)
            except queue.Empty:
                continue
            quality = 0.8 + 0.19 * self.rng.random()
            for epoch in range(1, self.args.epochs + 1):
                time.sleep(self.args.epoch_s)
                if self.stop.is_set():
                    return
                steps, layers = telemetry_rows(number, epoch, self.args.steps, self.args.layers, self.rng)
                acc = quality * (1 - math.exp(-epoch / 4)) + 0.01 * self.rng.random()
                metrics = {"val_acc": acc, "val_loss": 1 - acc, "train_loss": 1 - acc, "train_acc": acc,
                           "lr": 0.003, "grad_norm": 1.0, "epoch_time_s": self.args.epoch_s}  # fmt: skip
                self.outbox.put(("epoch", self.index, number, epoch, metrics, steps, layers, time.time()))
                line = f"epoch {epoch}: train_loss={1 - acc:.4f} val_loss={1 - acc:.4f} val_acc={acc:.4f}"
                self.outbox.put(("log", self.index, number, epoch, line, None, None, time.time()))  # as worker_main.py
                if number in self.pruned:  # the coordinator's stop decision, read after the epoch
                    break
            self.outbox.put(("done", self.index, number, None, None, None, None, time.time()))


# ---------------------------------------------------------------------------- one coordinator (a process)
def coordinator(host: int, n_workers: int, url: str, args: argparse.Namespace, ready, start, results) -> None:
    """One host's coordinator: ready -> wait for `start` -> run --seconds -> put its figures on `results`."""
    import optuna

    from engine.pruning import PruneCopy
    from engine.space import build_pruner, build_sampler, suggest
    from engine.spec import load_spec
    from engine.store import Store
    from engine.store.optuna_tables import set_trial_user_attrs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(SPEC)
    spec = spec.model_copy(update={"study": spec.study.model_copy(update={"seed": host})})
    store = Store(url)
    storage = store.optuna_storage()
    # tpe: the default study's sampler (its ask reads every trial: CPU on the coordinator's host);
    # random: no such CPU, what is left is the store's own cost of ask (the trial and its suggest writes)
    sampler = build_sampler(spec) if args.sampler == "tpe" else optuna.samplers.RandomSampler(seed=host)
    study = optuna.load_study(study_name=STUDY, storage=storage, sampler=sampler, pruner=build_pruner(spec))
    study_id = store.study_id(STUDY)
    prune_copy = PruneCopy(study.pruner, study.direction)
    set_attrs = functools.partial(set_trial_user_attrs, study)  # the coordinator's own
    name = f"sim-host-{host}"
    inbox: queue.Queue = queue.Queue()
    stop = threading.Event()
    workers = [Worker(host * 1000 + i, inbox, args, stop) for i in range(n_workers)]
    by_index = {w.index: w for w in workers}
    running: dict[int, dict] = {}  # worker index -> {"trial": Trial, "reported": {epoch: value}}
    lat: dict[str, list[float]] = {k: [] for k in ("ask", "attrs", "report", "write_epoch", "log", "tell",
                                                   "beat", "control")}  # fmt: skip
    lag: list[float] = []
    counts = {"trials": 0, "pruned": 0, "epochs": 0, "steps": 0, "layers": 0}

    def timed(kind: str, fn, *a, **kw):
        t0 = time.perf_counter()
        out = fn(*a, **kw)
        lat[kind].append(time.perf_counter() - t0)
        return out

    def beat() -> None:
        prune_copy.refresh(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        store.beat(study_id, name, pid=os.getpid(), state="running", workers=n_workers, device="cpu",
                   started=t_start)  # fmt: skip

    def dispatch(worker: Worker) -> None:
        t0 = time.perf_counter()
        trial = study.ask()
        suggest(trial, spec)  # the search space's suggest calls, each a store write
        lat["ask"].append(time.perf_counter() - t0)
        timed("attrs", set_attrs, trial, {"host": name, "coordinator_pid": os.getpid(),
              "device": "cpu", "optuna_version": optuna.__version__, "seed": trial.number})  # fmt: skip
        running[worker.index] = {"trial": trial, "reported": {}}
        worker.assignments.put(trial.number)

    t_start = time.time()
    beat()
    ready.put(host)
    start.wait()
    for w in workers:
        w.start()
    cpu0, t0 = time.process_time(), time.time()
    deadline = t0 + args.seconds
    last_beat = last_control = t0
    control_seen = 0
    while time.time() < deadline:
        now = time.time()
        if now - last_control >= CONTROL_EVERY_S:
            rows = timed("control", store.control_rows, study_id, after_id=control_seen)
            control_seen = max([control_seen, *(r["id"] for r in rows)])
            last_control = now
        if now - last_beat >= HEARTBEAT_EVERY_S:
            timed("beat", beat)
            last_beat = now
        for w in workers:
            if w.index not in running:
                dispatch(w)
        try:
            kind, index, number, epoch, metrics, steps, layers, sent = inbox.get(timeout=0.05)
        except queue.Empty:
            continue
        slot = running.get(index)
        if slot is None or slot["trial"].number != number:
            continue
        trial = slot["trial"]
        if kind == "log":  # the worker's line per epoch, its own transaction as in the coordinator
            timed("log", store.write_log, study_id, number, [metrics])
        elif kind == "epoch":
            value = metrics["val_acc"]
            timed("report", trial.report, value, epoch)
            slot["reported"][epoch] = value
            if prune_copy.should_prune(number, slot["reported"]):
                by_index[index].pruned.add(number)
                slot["pruned"] = True
            timed("write_epoch", store.write_epoch, study_id, number, epoch, metrics, steps, layers)
            lag.append(time.time() - sent)
            counts["epochs"] += 1
            counts["steps"] += len(steps)
            counts["layers"] += len(layers)
        else:
            del running[index]
            values = list(slot["reported"].values())
            if slot.get("pruned"):
                timed("tell", study.tell, trial, state=optuna.trial.TrialState.PRUNED)
                counts["pruned"] += 1
            else:
                value = sum(values[-3:]) / len(values[-3:])  # the default value rule, mean of the last 3
                timed("tell", study.tell, trial, value)
                prune_copy.add(number, value, slot["reported"])
            counts["trials"] += 1
    window = time.time() - t0
    cpu = time.process_time() - cpu0
    stop.set()
    results.put({"host": host, "window_s": window, "cpu_s": cpu, "lat": lat, "lag": lag, "counts": counts,
                 "backlog": inbox.qsize()})  # fmt: skip
    store.close()


# ---------------------------------------------------------------------------- the server's side
def proc_cpu_s(pid: int, children_reaped: bool = False) -> float:
    """utime+stime of a process (+ its reaped children's) in seconds, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    if children_reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: backends that ended
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cpu_s(postmaster: int) -> float:
    """The server's CPU so far: the postmaster with its reaped children, plus its live children."""
    total = proc_cpu_s(postmaster, children_reaped=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue  # a backend that ended meanwhile: its time is in the postmaster's cutime now
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run_point(server_url: str, hosts: int, workers: int, args: argparse.Namespace) -> dict:
    """One H x W point on a fresh database of the server at `server_url`; its figures."""
    import optuna
    import sqlalchemy as sa

    from engine.store import Store, with_driver

    db = f"scale_{hosts}x{workers}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(with_driver(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {db}"))
    url = server_url.rsplit("/", 1)[0] + f"/{db}"
    store = Store(url)  # tables, then Optuna's study, before any coordinator starts
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = store.optuna_storage()
    optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    storage.engine.dispose()  # the connections counted are the coordinators' alone
    store.close()

    ctx = mp.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=coordinator, args=(h, workers, url, args, ready, start, results)) for h in range(hosts)]
    for p in procs:
        p.start()
    started = 0
    while started < hosts:  # a coordinator that dies while starting ends the point, not a long wait
        try:
            ready.get(timeout=1)
            started += 1
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a coordinator of point {hosts}x{workers} failed while starting") from None

    watch = sa.create_engine(with_driver(server_url), poolclass=sa.pool.NullPool)
    with watch.connect() as conn:
        settings = {k: conn.execute(sa.text(f"SHOW {k}")).scalar() for k in ("fsync", "synchronous_commit")}
        backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
        conns: list[int] = []
        load0 = os.getloadavg()[0]
        busy0, total0 = machine_busy()
        server0 = server_cpu_s(postmaster)
        t0 = time.time()
        start.set()
        while any(p.is_alive() for p in procs) and results.qsize() < hosts:
            conns.append(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                                      {"d": db}).scalar())  # fmt: skip
            conn.commit()
            time.sleep(0.5)
            if time.time() - t0 > args.seconds + 5:
                break
        server1 = server_cpu_s(postmaster)
        busy1, total1 = machine_busy()
        wall = time.time() - t0
    per_host = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    watch.dispose()

    window = max(r["window_s"] for r in per_host)
    cpus = os.cpu_count() or 1
    lat = {k: sum((r["lat"][k] for r in per_host), []) for k in per_host[0]["lat"]}
    total = {k: sum(r["counts"][k] for r in per_host) for k in per_host[0]["counts"]}
    lag = sum((r["lag"] for r in per_host), [])
    writes = [v for k in ("attrs", "report", "write_epoch", "log", "tell", "beat") for v in lat[k]]
    busy_s = {k: sum(v) for k, v in lat.items()}  # the coordinators' thread time per kind of store call
    ms = lambda v: None if v is None else round(1000 * v, 2)  # noqa: E731
    return {
        "point": f"{hosts}x{workers}",
        "sampler": args.sampler,
        "telemetry": "on" if args.steps or args.layers else "off",
        "hosts": hosts,
        "workers_per_host": workers,
        "window_s": round(window, 2),
        "server": settings,
        "offered_epochs_per_s": round(hosts * workers / args.epoch_s, 1),
        "trials_per_s": round(total["trials"] / window, 2),
        "pruned_share": round(total["pruned"] / total["trials"], 2) if total["trials"] else None,
        "counts": total,  # trials told, of them pruned; epoch, step and layer rows written
        "epoch_rows_per_s": round(total["epochs"] / window, 1),
        "step_rows_per_s": round(total["steps"] / window, 1),
        "layer_rows_per_s": round(total["layers"] / window, 1),
        "write_ms": {"p50": ms(percentile(writes, 50)), "p99": ms(percentile(writes, 99))},
        "latency_ms": {
            k: {"n": len(v), "p50": ms(percentile(v, 50)), "p99": ms(percentile(v, 99))} for k, v in lat.items()
        },
        "store_time_share": {k: round(v / max(sum(busy_s.values()), 1e-9), 3) for k, v in busy_s.items()},
        "coordinator_busy_share": round(sum(busy_s.values()) / (window * hosts), 3),
        "epoch_lag_ms": {"p50": ms(percentile(lag, 50)), "p99": ms(percentile(lag, 99))},
        "backlog_at_end": sum(r["backlog"] for r in per_host),
        "connections": {"max": max(conns, default=0), "mean": round(sum(conns) / len(conns), 1) if conns else 0},
        "cpu_share": {  # of all the machine's cores over the window
            "simulator": round(sum(r["cpu_s"] for r in per_host) / (window * cpus), 3),
            "server": round((server1 - server0) / (wall * cpus), 3),
            "machine": round((busy1 - busy0) / max(total1 - total0, 1), 3),  # everyone's, other work too
        },
        "load_avg_1m_before": round(load0, 2),
        "cpus": cpus,
    }


def start_durable_server() -> tuple[str, str]:
    done = subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "start", "--durable"], capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"could not start a PostgreSQL server ({done.returncode}): {done.stderr[-1000:]}")
    url, folder = done.stdout.split()[:2]
    return url, folder


def markdown(points: list[dict]) -> str:
    head = ("| H x W | telemetry | offered epochs/s | trials/s | epoch rows/s | write p50 / p99 ms | write_epoch p99 ms "
            "| epoch lag p50 / p99 ms | coordinator busy | conns | CPU sim / server / machine |")  # fmt: skip
    lines = [head, "|" + " --- |" * 11]
    for p in points:
        c = p["cpu_share"]
        lines.append(
            f"| {p['point']} | {p['telemetry']} | {p['offered_epochs_per_s']} | {p['trials_per_s']} | {p['epoch_rows_per_s']} "
            f"| {p['write_ms']['p50']} / {p['write_ms']['p99']} | {p['latency_ms']['write_epoch']['p99']} "
            f"| {p['epoch_lag_ms']['p50']} / {p['epoch_lag_ms']['p99']} | {p['coordinator_busy_share']:.0%} "
            f"| {p['connections']['max']} | {c['simulator']:.0%} / {c['server']:.0%} / {c['machine']:.0%} |"
        )
    return "\n".join(lines)


def parse_points(text: str) -> list[tuple[int, int]]:
    points = []
    for part in text.split(","):
        h, _, w = part.strip().lower().partition("x")
        if not (h.isdigit() and w.isdigit() and int(h) > 0 and int(w) > 0):
            raise argparse.ArgumentTypeError(f"a point is HOSTSxWORKERS, e.g. 2x4, not {part!r}")
        points.append((int(h), int(w)))
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL server's URL (a database per point is created on it); "
                                      "default: start a durable one with .ci/postgres.sh start --durable")  # fmt: skip
    parser.add_argument("--points", type=parse_points, default=parse_points("1x1,2x2,4x2,8x2,8x4"))
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window per point")
    parser.add_argument("--epoch-s", type=float, default=0.05, help="seconds per simulated epoch")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (the digits study's)")
    parser.add_argument("--steps", type=int, default=3, help="step samples per epoch (digits: 1-5)")
    parser.add_argument("--layers", type=int, default=3, help="layer rows per epoch (digits: 2-4)")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                        help="tpe: the digits study's sampler; random: the store's cost of ask without TPE's CPU")
    parser.add_argument("--telemetry", choices=("on", "off", "both"), default="on",
                        help="off: no step or layer rows (an epoch row per epoch only); both: each point twice")
    parser.add_argument("--json", type=Path, help="write the points here as JSON (after every point)")
    args = parser.parse_args(argv)

    quiet = argparse.Namespace(**{**vars(args), "steps": 0, "layers": 0})  # an epoch row per epoch only
    folder = None
    url = args.url
    if url is None:
        url, folder = start_durable_server()
    points: list[dict] = []
    try:
        variants = {"on": [args], "off": [quiet], "both": [args, quiet]}[args.telemetry]
        for hosts, workers in args.points:
            for variant in variants:  # with and without step and layer rows, side by side
                point = run_point(url, hosts, workers, variant)
                points.append(point)
                print(json.dumps(point), flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "json"
                                                              and k != "points"}, "points": points}, indent=1,
                                                    default=str))  # fmt: skip
    finally:
        if folder:
            subprocess.run([str(ROOT / ".ci" / "postgres.sh"), "stop", folder], capture_output=True, check=False)
    print(f"\nmachine: {os.cpu_count()} CPUs; {args.sampler} sampler; epoch every {args.epoch_s}s per worker, "
          f"{args.epochs} epochs, {args.steps} step samples and {args.layers} layer rows per epoch\n")  # fmt: skip
    print(markdown(points))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
