"""A study's identity: what makes its trial values comparable. A rerun that changes it must not mix in.

The identity is recorded in the study (user attr `tt_identity`) when the coordinator creates it; a run
whose spec gives another identity is refused before anything starts. Add a field here and it is recorded,
compared and named in the refusal everywhere."""

from __future__ import annotations

import json
from typing import Any

ATTR = "tt_identity"
# the spec's [study] value as recorded; "best_epoch" is what studies recorded before the rule was a choice
VALUE_RULES = {"best": "best_epoch", "last": "last_epoch", "mean_last_3": "mean_last_3"}

MAX_SPEC_CHARS = 1 << 20  # a recorded spec longer than a spec file may be is not read

LABELS = {  # how each field is named in a refusal
    "directions": "direction",
    "metrics": "metric",
    "value_rule": "value rule",
    "space": "search space",
}


def study_identity(spec) -> dict[str, Any]:
    """The identity of the study this spec runs: directions and metrics (one per objective, in order), value
    rule, canonical search space."""
    space = {name: dim.model_dump(mode="json") for name, dim in spec.space.items()}
    return {
        "directions": spec.study.directions,
        "metrics": spec.study.metrics,
        "value_rule": VALUE_RULES[spec.study.value],
        "space": json.dumps(space, sort_keys=True, separators=(",", ":")),
    }


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each field both identities have and that differs, as "metric val_acc; this spec says val_loss".
    A field the old identity lacks (a study recorded before it existed, or by Optuna alone) is not compared."""
    out = []
    for key, label in LABELS.items():
        if key in old and key in new and old[key] != new[key]:
            if key == "space":
                out.append(f"{label} {_space_change(old[key], new[key])}")
            else:
                several = any(isinstance(v, list) and len(v) > 1 for v in (old[key], new[key]))
                out.append(f"{label}{'s' if several else ''} {_text(old[key])}; this spec says {_text(new[key])}")
    return out


def _space_change(old: str, new: str) -> str:
    """The dimensions that differ, each with both definitions."""
    try:
        before, after = json.loads(old), json.loads(new)
    except (TypeError, ValueError):
        return f"{old}; this spec says {new}"
    parts = []
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            was = json.dumps(before[name], sort_keys=True) if name in before else "absent"
            now = json.dumps(after[name], sort_keys=True) if name in after else "absent"
            parts.append(f"{name} = {was}; this spec says {now}")
    return ", ".join(parts)


def known_identity(recorded: Any, directions: list[str], attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What can be compared of a stored study: its recorded identity; for a study an earlier tunetui ran
    (it recorded `metric` and `spec_toml`, not an identity) its metric, the best-epoch value rule it could
    only have used, and the space of its recorded spec; always Optuna's own directions."""
    identity = dict(recorded) if isinstance(recorded, dict) else {}
    attrs = attrs or {}
    if not identity and isinstance(attrs.get("metric"), str):
        identity = {"metrics": [attrs["metric"]], "value_rule": VALUE_RULES["best"]}
        space = _recorded_space(attrs.get("spec_toml"))
        if space is not None:
            identity["space"] = space
    if directions:
        identity["directions"] = [d.lower() for d in directions]
    return identity


def _recorded_space(spec_toml: Any) -> str | None:
    """The canonical space of a spec text read from the store (parsed as data, never run), if it parses."""
    from engine.spec import parse_spec

    if not isinstance(spec_toml, str) or len(spec_toml) > MAX_SPEC_CHARS:
        return None
    try:
        return study_identity(parse_spec(spec_toml, "the study's recorded spec"))["space"]
    except Exception:  # noqa: BLE001 - an older or foreign spec text: its space is simply not compared
        return None


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)
