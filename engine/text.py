"""Outside text (study names, params, error text, log lines) made fit for a terminal and for rich markup."""

from __future__ import annotations

import re

from rich.markup import escape

# C0 controls, DEL and C1 controls: ESC starts terminal sequences, and 0x9b is a one-byte CSI
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(value: object) -> str:
    """The text with every control character removed (tab and newline become a space): one line."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(lambda m: " " if m.group() in "\t\n\r" else "", text)


def safe_lines(value: object) -> str:
    """Like safe(), but keeps the line breaks (for multi-line messages)."""
    text = value if isinstance(value, str) else str(value)
    return "\n".join(safe(line) for line in text.splitlines())


# scheme://user:password@ anywhere in a text (an error message, a log line)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]*@")


def hide_passwords(text: str) -> str:
    """The text with the password of every URL in it replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def markup_safe(value: object) -> str:
    """Outside text to put inside rich markup: no control characters, every `[` escaped."""
    return escape(safe(value))
