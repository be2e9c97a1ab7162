"""The trial table's filter language: `state=complete lr<1e-3 layers>=2 optimizer=adam val_f1>0.8`, terms ANDed.

`parse` turns the text into terms or raises FilterError with a message fit to show as plain text; `matches`
checks one trial. Pure: no Textual, no store (tests/tui/test_trial_filter.py).
"""

from __future__ import annotations

import difflib
import math
import shlex
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from engine.store import TrialRow
from engine.text import safe
from tui.formatting import STATE_TEXT, format_value
from tui.trial_cells import cell

OPERATORS = ("!=", "<=", ">=", "==", "=", "<", ">")  # the two-character ones first: `<=` is not `<` then `=3`
COLUMNS = {"number": "number", "#": "number", "state": "state", "value": "value", "epochs": "epochs",
           "ep": "epochs", "rep": "epochs", "time": "duration", "duration": "duration", "flags": "flags", "!": "flags"}  # fmt: skip
STATES = (*STATE_TEXT.values(), "killed")
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class FilterError(ValueError):
    """Text the user typed that is not a filter; the message quotes it made safe (no terminal bytes)."""


@dataclass(frozen=True)
class Term:
    key: str  # a column: "state", "value", ..., "param:NAME" or "metric:NAME"
    op: str  # one of OPERATORS, "==" read as "="
    text: str  # the value as typed
    number: float | None  # the value as a number, when it is one

    def __str__(self) -> str:
        return f"{self.key.split(':', 1)[-1]}{self.op}{self.text}"


def quoted(text: str) -> str:
    """Typed text as a message quotes it: one line without terminal bytes, at most 60 characters."""
    line = safe(text)
    return line if len(line) <= 60 else line[:59] + "…"


def parse(text: str, params: Collection[str], metrics: Collection[str] = ()) -> tuple[Term, ...]:
    """The terms of `text`; `params` and `metrics` are the parameter and reported metric names the table has
    (any of them is a key; a parameter before a metric of the same name, which `metric:NAME` reaches)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise FilterError("the filter has control characters (an ESC or similar byte): type plain text")
    try:
        words = shlex.split(text)  # "optimizer='adam w'" is one term
    except ValueError:
        raise FilterError(f"a quote is not closed in {quoted(text)!r}") from None
    return tuple(_term(word, params, metrics) for word in words)


def _term(word: str, params: Collection[str], metrics: Collection[str]) -> Term:
    at, op = min(((word.find(o), o) for o in OPERATORS if o in word), default=(-1, ""), key=lambda f: f[0])
    if not op:
        raise FilterError(f"{quoted(word)!r} has no operator: write KEY=VALUE (= != < <= > >=), e.g. state=complete")
    name, text = word[:at], word[at + len(op) :]
    op = "=" if op == "==" else op
    if not name:
        raise FilterError(f"{quoted(word)!r}: a column name goes before {op}")
    if not text:
        raise FilterError(f"{quoted(word)!r}: a value goes after {op}")
    if text[0] in "=<>!":  # `lr!==3` is no comparison with the text "=3": a doubled operator is a typo
        raise FilterError(f"{quoted(word)!r}: one operator per term (= != < <= > >=), then the value")
    key = _key(name, params, metrics)
    number = _number(text)
    if key == "state":
        if op not in ("=", "!="):
            raise FilterError(f"{quoted(word)!r}: state compares with = or != only")
        if text.lower() not in STATES:
            raise FilterError(f"{quoted(word)!r}: a state is one of {', '.join(STATES)}")
    elif op in COMPARE and number is None:
        raise FilterError(f"{quoted(word)!r}: {op} compares numbers and {quoted(text)!r} is not a number")
    elif (key in ("number", "value", "epochs", "duration", "flags") or key.startswith("metric:")) and number is None:
        raise FilterError(f"{quoted(word)!r}: {name} is a number and {quoted(text)!r} is not one")
    return Term(key, op, text, number)


def _key(name: str, params: Collection[str], metrics: Collection[str]) -> str:
    if name in COLUMNS:
        return COLUMNS[name]
    # `param:state` and `metric:state` reach a parameter or a metric named like a column
    bare = name.removeprefix("metric:") if name.startswith("metric:") else name.removeprefix("param:")
    if bare in params and not name.startswith("metric:"):
        return f"param:{bare}"
    if bare in metrics and not name.startswith("param:"):
        return f"metric:{bare}"
    known = [*dict.fromkeys(COLUMNS.values()), *sorted(params), *sorted(metrics)]
    close = difflib.get_close_matches(bare, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; columns: {', '.join(known)}"
    raise FilterError(f"unknown column {quoted(name)!r}{hint}")


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return None if math.isnan(number) else number


def matches(row: TrialRow, terms: tuple[Term, ...], now: float) -> bool:
    """True when the trial meets every term; a trial with nothing in a term's column never meets it."""
    return all(_meets(cell(row, term.key, now), term) for term in terms)


def _meets(value: Any, term: Term) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if term.op in COMPARE:
        return numeric and COMPARE[term.op](value, term.number)
    if numeric and term.number is not None:
        # what the table shows is what matches: lr=0.0003456 finds 0.00034561 (4 significant digits)
        equal = value == term.number or format_value(value) == format_value(term.number)
    else:
        equal = str(value).lower() == term.text.lower()
    return equal == (term.op == "=")
