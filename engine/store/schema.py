"""tunetui's own tables (tt_*) beside Optuna's: their columns, and ensure_schema, which only the coordinator calls."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

EPOCH_COLUMNS = (
    "train_loss", "train_acc", "val_loss", "val_acc", "lr", "grad_norm", "clip_frac",
    "epoch_time_s", "samples_per_s", "mem_peak_mb",
)  # fmt: skip
# the columns that hold metrics a trial reports (the others are telemetry of its run: lr, grad_norm, ...)
METRIC_COLUMNS = ("train_loss", "train_acc", "val_loss", "val_acc")
EPOCH_KEYS = ("study_id", "trial_number", "epoch", "extra_json")  # never a reported metric's name
MAX_EXTRA_METRICS = 64  # reported metrics kept per epoch beyond EPOCH_COLUMNS
MAX_METRIC_NAME = 100
STEP_COLUMNS = ("epoch", "loss", "lr", "grad_norm", "clipped", "amp_scale", "skipped")

tt_epoch = sa.Table(
    "tt_epoch", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    *(sa.Column(name, sa.Float) for name in EPOCH_COLUMNS),
    # every other metric the trial reported ({"val_rmse": 0.61, ...}): one read serves the TUI's poll
    sa.Column("extra_json", sa.Text),
)  # fmt: skip
tt_step = sa.Table(
    "tt_step", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer),
    *(sa.Column(name, sa.Float) for name in STEP_COLUMNS[1:]),
)  # fmt: skip
tt_layer = sa.Table(
    "tt_layer", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("layer", sa.String(200), primary_key=True),
    sa.Column("position", sa.Integer),  # the layer's place from input to output
    sa.Column("grad_norm", sa.Float),
    sa.Column("weight_norm", sa.Float),
    sa.Column("hist_json", sa.Text),
)  # fmt: skip
tt_diagnosis = sa.Table(
    "tt_diagnosis", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(64), primary_key=True),
    sa.Column("severity", sa.String(16)),
    sa.Column("evidence_json", sa.Text),
    sa.Column("remedy", sa.Text),
)  # fmt: skip
tt_control = sa.Table(
    "tt_control", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, index=True),
    sa.Column("action", sa.String(16)),
    sa.Column("arg", sa.String(200)),
    sa.Column("created", sa.Float),
    sa.Column("done", sa.Float),
    sa.Column("result", sa.Text),
)  # fmt: skip
tt_heartbeat = sa.Table(
    "tt_heartbeat", metadata,
    sa.Column("study_id", sa.Integer, primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("pid", sa.Integer),
    sa.Column("started", sa.Float),
    sa.Column("last_seen", sa.Float),
    sa.Column("state", sa.String(16)),
    sa.Column("workers", sa.Integer),
    sa.Column("device", sa.String(200)),
    sa.Column("log_path", sa.Text),
)  # fmt: skip
tt_log = sa.Table(
    "tt_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer),
    sa.Column("trial_number", sa.Integer),
    sa.Column("ts", sa.Float),
    sa.Column("line", sa.Text),
    sa.Index("ix_tt_log_trial", "study_id", "trial_number"),
)  # fmt: skip


def ensure_schema(engine: sa.Engine) -> None:
    """Create the tt_* tables that are missing and add columns newer than the store (the coordinator only:
    viewers and control never create a table)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # hosts starting together race to create tables
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7248517)"))
        metadata.create_all(conn)
        _add_missing_columns(conn)


def _add_missing_columns(conn: sa.Connection) -> None:
    """Stores made by an older tunetui lack newer columns; create_all adds tables, not columns."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
