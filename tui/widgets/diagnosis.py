"""Trial detail: params, the last epoch's own metrics, user attrs, failure reason, and diagnosis findings with
their remedies."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from engine.report import extra_metrics
from engine.store import TrialRow
from engine.text import safe, safe_lines
from tui.formatting import format_duration, format_value, state_text

SEVERITY_STYLE = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}
SHOWN_ABOVE = ("fail_reason", "fail_hint", "note", "origin", "overrides")
ATTR_ORDER = ("seed", "device", "amp", "clip_norm", "clip", "torch", "python", "optuna", "versions")


def _kv_table(title: str, items: dict[str, Any]) -> Table:
    # a title is cut to its table's width: a table narrower than it ("x  1") broke "params" into "para"/"ms"
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False, expand=False,
                  min_width=len(title))  # fmt: skip
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in items.items():
        text = json.dumps(value, default=str) if isinstance(value, dict | list) else format_value(value)
        table.add_row(Text(safe(key)), Text(safe(text)))  # Text: store values are never markup
    return table


def trial_detail(row: TrialRow | None, attrs: dict[str, Any], findings: list[dict],
                 duration_s: float | None = None, epochs: list[dict] | None = None,
                 study_note: Any = None) -> RenderableType:  # fmt: skip
    """`epochs`: the trial's epoch rows where the screen has them; the last one's metrics beyond the
    engine's columns (val_rmse, r2, an own loop's names) are listed. Notes, the origin of an enqueued
    trial and its overrides (engine/enqueue.py) come first: they say how to read the rest."""
    notes = [Text.assemble(("study note: ", "bold"), safe_lines(study_note))] if study_note else []
    if row is None:
        return Group(*notes, Text("no trial selected"))
    # Optuna alone: no epochs are recorded, only the steps trial.report wrote
    progress = f"epochs {row.epochs}" if row.reported is None else f"reported steps {row.reported}"
    head = Text.assemble(
        (f"trial #{row.number}  ", "bold"),
        (state_text(row.state, row.reason), "bold"),
        f"  value {format_value(row.value) or '-'}  {progress}  time {format_duration(duration_s) or '-'}",
    )
    parts: list[RenderableType] = [*notes, head]
    if attrs.get("note"):
        parts.append(Text.assemble(("note: ", "bold"), safe_lines(attrs["note"])))
    if attrs.get("origin"):
        parts.append(Text.assemble(("enqueued: ", "bold"), safe(attrs["origin"])))
    if isinstance(attrs.get("overrides"), dict) and attrs["overrides"]:
        values = ", ".join(f"{safe(k)}={format_value(v)}" for k, v in attrs["overrides"].items())
        parts.append(Text.assemble(("overrides (trained with, not sampled): ", "bold yellow"), values))
    if row.state == "FAIL" or attrs.get("fail_reason"):
        reason = attrs.get("fail_reason") or row.reason or "unknown"
        hint = attrs.get("fail_hint") or ""
        parts.append(Text.assemble(("failed: ", "bold red"), safe(reason), ("  " + safe(hint)) if hint else ""))
    parts.append(_kv_table("params", dict(sorted(row.params.items()))))
    if epochs:
        last = epochs[-1]
        extra = {name: last[name] for name in extra_metrics([last])}
        if extra:
            parts.append(_kv_table(f"metrics (epoch {last.get('epoch', '?')})", extra))
    shown = {k: attrs[k] for k in ATTR_ORDER if k in attrs}
    shown.update(
        {k: v for k, v in sorted(attrs.items()) if k not in shown and k not in SHOWN_ABOVE}
    )
    if shown:
        parts.append(_kv_table("attributes", shown))
    if findings:
        parts.append(Text("diagnosis", style="bold"))
        for f in findings:
            severity = f.get("severity", "warning")
            evidence = ", ".join(f"{safe(k)}={format_value(v)}" for k, v in (f.get("evidence") or {}).items())
            parts.append(
                Text.assemble(
                    (f"  [{safe(severity)}] ", SEVERITY_STYLE.get(severity, "bold")),
                    (safe(f.get("kind", "?")), "bold"),
                    f"  {evidence}" if evidence else "",
                )
            )
            if f.get("remedy"):
                parts.append(Text.assemble("    remedy: ", (safe(f["remedy"]), "italic")))
    else:
        parts.append(Text("diagnosis: no findings", style="dim"))
    return Group(*parts)
