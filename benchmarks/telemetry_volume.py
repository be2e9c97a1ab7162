"""Telemetry volume per trial: rows and bytes per table, measured on a PostgreSQL store, and estimated for
every shipped study from its epochs, steps and layers.

    .venv/bin/python benchmarks/telemetry_volume.py --storage postgresql://USER@HOST/DB --study digits_mlp

Measured: for the study's trials, the rows per trial of each tunetui and Optuna table and their bytes
(`pg_column_size` of the rows: the data, without indexes or page overhead). Estimated, for each
studies/*.toml, with the measured bytes per row of tt_epoch, tt_step and tt_layer:

    rows per trial = E x (1 + ceil(S / k) + L)
    E: epochs, S: optimizer steps per epoch = ceil(training rows / batch size), k: step_every (a step
    sample every k-th step), L: the model's layers with a 2+-dimensional weight (engine/trainer/models.py)

with the smallest and largest batch size and layer count the spec's search space allows.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TELEMETRY = ("tt_epoch", "tt_step", "tt_layer", "tt_diagnosis", "tt_log")
OPTUNA = ("trials", "trial_params", "trial_values", "trial_intermediate_values", "trial_user_attributes",
          "trial_system_attributes")  # fmt: skip
# training rows before the validation split, and the input shape, of the built-in tasks
TASKS = {"digits": (1797, (64,), 10), "mnist": (60000, (1, 28, 28), 10),
         "fashion_mnist": (60000, (1, 28, 28), 10), "cifar10": (50000, (3, 32, 32), 10)}  # fmt: skip


def measured(url: str, study: str) -> dict:
    """Rows and bytes per trial of each table, for the study's trials."""
    import sqlalchemy as sa

    from engine.store import with_driver

    engine = sa.create_engine(with_driver(url))
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        sid = conn.execute(sa.text("SELECT study_id FROM studies WHERE study_name = :n"), {"n": study}).scalar()
        if sid is None:
            sys.exit(f"no study {study!r} in that store")
        trials = conn.execute(sa.text("SELECT count(*) FROM trials WHERE study_id = :s"), {"s": sid}).scalar()
        for table in TELEMETRY:
            rows, size = conn.execute(
                sa.text(f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
                        "WHERE study_id = :s"), {"s": sid}).one()  # fmt: skip
            out[table] = {"rows": rows, "bytes": int(size)}
        for table in OPTUNA:
            where = "t.study_id = :s" if table == "trials" else \
                "t.trial_id IN (SELECT trial_id FROM trials WHERE study_id = :s)"  # fmt: skip
            rows, size = conn.execute(
                sa.text(f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t WHERE {where}"),
                {"s": sid}).one()  # fmt: skip
            out[table] = {"rows": rows, "bytes": int(size)}
    engine.dispose()
    return {"trials": trials, "tables": out}


def estimate(spec_path: Path, bytes_per_row: dict[str, float]) -> dict:
    """The (smallest, largest) rows and bytes per trial of one shipped study, by the formula above."""
    from engine.config import TrainConfig
    from engine.spec import load_spec
    from engine.trainer.models import build_model, layer_names

    spec = load_spec(spec_path)
    fixed = spec.fixed_train()
    rows_all, shape, classes = TASKS[spec.task.name]
    n_train = rows_all - round(rows_all * spec.task.val_fraction)

    def options(name: str) -> list:
        dim = spec.space.get(name)
        if dim is None:
            return [fixed.get(name, TrainConfig.model_fields[name].default)]
        if dim.type == "categorical":
            return [min(dim.choices), max(dim.choices)]
        return [dim.low, dim.high]

    config = TrainConfig(**fixed)
    results = []
    for batch, layers in itertools.product(options("batch_size"), options("layers")):
        cfg = config.model_copy(update={"batch_size": batch, "layers": layers})
        n_layers = len(layer_names(build_model(cfg, shape, classes)))
        steps = math.ceil(n_train / batch)
        samples = math.ceil(steps / cfg.step_every)
        rows = {"tt_epoch": cfg.epochs, "tt_step": cfg.epochs * samples, "tt_layer": cfg.epochs * n_layers}
        size = sum(rows[t] * bytes_per_row[t] for t in rows)
        results.append({"batch": batch, "layers": n_layers, "rows": sum(rows.values()), "bytes": size, **rows})
    low = min(results, key=lambda r: r["bytes"])
    high = max(results, key=lambda r: r["bytes"])
    return {"study": spec.study.name, "epochs": config.epochs, "low": low, "high": high}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="a PostgreSQL store holding a real run of --study")
    parser.add_argument("--study", default="digits_mlp")
    args = parser.parse_args(argv)
    data = measured(args.storage, args.study)
    n = max(data["trials"], 1)
    print(f"measured: study {args.study}, {data['trials']} trials\n")
    print("| table | rows per trial | bytes per trial | bytes per row |\n| --- | ---: | ---: | ---: |")
    for table, t in data["tables"].items():
        per_row = t["bytes"] / t["rows"] if t["rows"] else 0
        print(f"| {table} | {t['rows'] / n:.1f} | {t['bytes'] / n:,.0f} | {per_row:.0f} |")
    tele = sum(data["tables"][t]["bytes"] for t in TELEMETRY)
    total = sum(t["bytes"] for t in data["tables"].values())
    print(f"\ntelemetry tables: {tele / n:,.0f} bytes per trial, {tele / max(total, 1):.0%} of the study's bytes")

    bytes_per_row = {
        t: data["tables"][t]["bytes"] / max(data["tables"][t]["rows"], 1) for t in ("tt_epoch", "tt_step", "tt_layer")
    }
    print("\nestimated per trial (smallest .. largest the spec's space allows):\n")
    print("| study | epochs | step rows | layer rows | rows | bytes |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for spec in sorted((ROOT / "studies").glob("*.toml")):
        e = estimate(spec, bytes_per_row)
        lo, hi = e["low"], e["high"]
        print(f"| {e['study']} | {e['epochs']} | {lo['tt_step']}..{hi['tt_step']} | {lo['tt_layer']}..{hi['tt_layer']} "
              f"| {lo['rows']}..{hi['rows']} | {lo['bytes'] / 1024:,.0f}..{hi['bytes'] / 1024:,.0f} KiB |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
