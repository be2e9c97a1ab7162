"""Two search spaces side by side: the diff of the [space] tables of two specs (the fork screen's), or of two
studies (from the specs they recorded, else from the parameters their trials drew)."""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.store import TrialRow

MAX_SPEC_CHARS = 1 << 20  # a recorded spec longer than a spec file may be is not read


def spec_space_lines(spec_text: str) -> list[str]:
    """The [space] table of a spec text, normalised through TOML (key order and spacing do not matter)."""
    import tomli_w

    try:
        data = tomllib.loads(spec_text)
    except tomllib.TOMLDecodeError:
        return ["<not valid TOML>"]
    return tomli_w.dumps({"space": data.get("space", {})}).splitlines()


def space_diff(before: str, after: str, names: tuple[str, str] = ("original", "fork")) -> list[str]:
    """A unified diff of the [space] tables of two spec texts; empty when they are the same."""
    return unified(spec_space_lines(before), spec_space_lines(after), names)


def unified(before: Sequence[str], after: Sequence[str], names: tuple[str, str]) -> list[str]:
    return list(difflib.unified_diff(before, after, *names, lineterm="", n=1))


def trials_space_lines(rows: Iterable[TrialRow]) -> list[str]:
    """Each parameter the trials drew, one line: the range of a numeric one, the values of any other."""
    values: dict[str, list[Any]] = {}
    for r in rows:
        for name, value in r.params.items():
            values.setdefault(name, []).append(value)
    lines = []
    for name in sorted(values):
        seen = [v for v in values[name] if v is not None]
        numbers = [v for v in seen if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        if seen and len(numbers) == len(seen):
            lines.append(f"{name} = {min(numbers):g}..{max(numbers):g}")
        else:
            lines.append(f"{name} = one of {', '.join(sorted({str(v) for v in seen}))}")
    return lines


def recorded_spec(attrs: Mapping[str, Any]) -> str | None:
    spec = attrs.get("spec_toml")
    return spec if isinstance(spec, str) and len(spec) <= MAX_SPEC_CHARS else None


def study_space_diff(names: tuple[str, str], attrs: tuple[Mapping[str, Any], Mapping[str, Any]],
                     rows: tuple[Sequence[TrialRow], Sequence[TrialRow]]) -> tuple[list[str], str]:  # fmt: skip
    """(the diff of two studies' search spaces, where the spaces came from): the [space] tables of the specs
    both recorded, else, for both alike, the parameters their trials drew."""
    specs = [recorded_spec(a) for a in attrs]
    if specs[0] is not None and specs[1] is not None:
        return space_diff(specs[0], specs[1], names), "the [space] of the specs the studies recorded"
    return unified(trials_space_lines(rows[0]), trials_space_lines(rows[1]), names), "the parameters the trials drew"
