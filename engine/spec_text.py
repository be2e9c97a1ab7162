"""A spec file's text: read without trusting it (a regular file, bounded, UTF-8, nested not too deep), its
TOML, and the problems found in it, each with file, line, field path and, for a misspelt key, the closest
known one. No pydantic models here: engine/spec.py holds them and turns their errors into these."""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(known), n=3, cutoff=0.6)
    close.sort(key=lambda name: sorted(name) != sorted(str(word)))  # a swap of two letters ranks first
    return f"; did you mean '{close[0]}'?" if close else ""


class SpecProblems(ValueError):
    """Raised inside validation to carry several (path, message) problems out of pydantic."""

    def __init__(self, problems: list[tuple[tuple[Any, ...], str]]):
        super().__init__("; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class SpecIssue:
    path: str  # dotted field path, e.g. "space.lr.low"
    message: str
    line: int | None = None  # 1-based line in the TOML text, where found

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path or '<spec>'}: {self.message}"


class SpecError(Exception):
    """A spec that cannot be used; `issues` says each problem with its field path."""

    def __init__(self, source: str, issues: list[SpecIssue]):
        self.source = source
        self.issues = issues
        super().__init__("\n".join(issue.render(source) for issue in issues))


MAX_SPEC_BYTES = 1 << 20  # a spec is a small TOML file; never read without bound (/dev/zero)
MAX_SPEC_DEPTH = 50  # tables and arrays nested deeper than any spec needs (tomllib itself recurses)


def load_toml(text: str, source: str = "<spec>") -> dict[str, Any]:
    """TOML text as data, or a SpecError: bad syntax (with its line) or nesting too deep."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise SpecError(
            source, [SpecIssue("", f"not valid TOML: {err}", int(match[1]) if match else None)]
        ) from None
    except RecursionError:
        raise _too_deep(source) from None
    check_depth(data, source)
    return data


def check_depth(data: Any, source: str = "<spec>") -> None:
    """Refuse tables and arrays nested deeper than MAX_SPEC_DEPTH (iterative: the data may be deeper
    than Python's recursion limit, which the TOML writer and pickling would hit)."""
    todo = [(data, 1)]
    while todo:
        node, level = todo.pop()
        if level > MAX_SPEC_DEPTH:
            raise _too_deep(source)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        todo.extend((child, level + 1) for child in children if isinstance(child, dict | list))


def _too_deep(source: str) -> SpecError:
    return SpecError(
        source, [SpecIssue("", f"nested more than {MAX_SPEC_DEPTH} levels deep; a spec never needs that")]
    )


def read_spec_text(path: str | Path) -> str:
    """A spec file's text: a regular file of at most MAX_SPEC_BYTES of UTF-8, else a SpecError."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the fstat below refuses it anyway
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise SpecError(str(path), [SpecIssue("", f"cannot read the file: {err.strerror or err}")]) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecError(str(path), [SpecIssue("", "not a regular file; a spec is a TOML file")])
    with os.fdopen(fd, "rb") as file:
        try:
            raw = file.read(MAX_SPEC_BYTES + 1)
        except OSError as err:
            raise SpecError(str(path), [SpecIssue("", f"cannot read the file: {err.strerror or err}")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            str(path), [SpecIssue("", f"the file is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is a small TOML file")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(
            str(path), [SpecIssue("", f"not UTF-8 text ({err.reason} at byte {err.start})")]
        ) from None


# what a field of each type expects, in TOML's words (strict validation: a value of another type is refused)
EXPECTED_TYPES = {
    "int_type": "an integer", "float_type": "a number", "bool_type": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a table", "model_type": "a table",
}  # fmt: skip


def toml_kind(value: Any) -> str:
    """What a TOML value is, in TOML's words: `a boolean (true)`, `a string ("3")`."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return f'a string ("{shown}")'
    return {list: "a list", dict: "a table"}.get(type(value), f"a {type(value).__name__}")


def type_message(e: dict[str, Any]) -> str | None:
    """A value of the wrong TOML type: what was expected and what was found; None for other errors."""
    expected = EXPECTED_TYPES.get(e["type"])
    if expected is None:
        return None
    found = e.get("input")
    hint = ""
    if isinstance(found, str) and e["type"] in ("int_type", "float_type", "bool_type"):
        hint = ": write it without quotes" if _reads_as(found, e["type"]) else ""
    return f"expected {expected}, got {toml_kind(found)}{hint}"


def _reads_as(text: str, kind: str) -> bool:
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return False
    wanted = {"int_type": (int,), "float_type": (int, float), "bool_type": (bool,)}[kind]
    return isinstance(value, wanted) and (kind == "bool_type" or not isinstance(value, bool))


def pydantic_message(e: dict[str, Any], show_input: bool = True) -> str:
    """One pydantic error in the spec's words (`show_input`: add what was found, `(got ...)`)."""
    kind = e["type"]
    typed = type_message(e)
    if typed is not None:
        return typed if show_input else typed.split(", got ")[0]
    if kind == "extra_forbidden":
        return "unknown key (not part of the spec format)"
    if kind == "missing":
        return "required but missing"
    if kind == "union_tag_invalid":
        expected = e.get("ctx", {}).get("expected_tags", "")
        tag = e.get("ctx", {}).get("tag", "")
        return f"unknown kind '{tag}'; expected one of {expected}"
    if kind == "union_tag_not_found":
        return f"needs a '{e.get('ctx', {}).get('discriminator', 'kind').strip(chr(39))}' key"
    msg = e["msg"].removeprefix("Value error, ")
    if show_input and "input" in e and not isinstance(e["input"], dict | list):
        msg += f" (got {e['input']!r})"
    return msg


def issue_at(loc: tuple[Any, ...], message: str, text: str) -> SpecIssue:
    path = ".".join(str(p) for p in loc)
    return SpecIssue(path, message, find_line(text, loc))


def find_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """Best-effort line of a field path in TOML text: the key under its table, else the table header."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    if not parts:
        return None
    lines = text.splitlines()
    for split in range(len(parts), -1, -1):
        table, keys = parts[:split], parts[split:]
        start = 0
        if table:
            header = re.compile(
                r"^\s*\[\s*" + r"\s*\.\s*".join(re.escape(t) for t in table) + r"\s*\]\s*(#.*)?$"
            )
            found = [i for i, line in enumerate(lines) if header.match(line)]
            if not found:
                continue
            start = found[0] + 1
        if not keys:
            return start
        key = re.compile(r"^\s*" + re.escape(keys[0]) + r"\s*=")
        for i in range(start, len(lines)):
            if table and re.match(r"^\s*\[", lines[i]):
                break
            if key.match(lines[i]):
                return i + 1
        if table:
            return start  # the header line itself (1-based: index start-1 + 1)
    return None
