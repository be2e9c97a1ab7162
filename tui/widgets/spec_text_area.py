"""The spec editor's text: a TextArea whose lines with a problem are marked (a red background and an
underline, which NO_COLOR keeps), from the line numbers engine/spec_text.py gives each problem."""

from __future__ import annotations

from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.widgets import TextArea

PROBLEM_STYLE = Style(bgcolor="#5f1f1f", underline=True)


class SpecTextArea(TextArea):
    problem_lines: frozenset[int] = frozenset()  # 0-based indices of the lines to mark

    def mark_problems(self, lines: Iterable[int | None]) -> None:
        """Mark these 1-based lines (None: a problem without a line, listed only) and unmark the others."""
        marked = frozenset(line - 1 for line in lines if line)
        if marked != self.problem_lines:
            self.problem_lines = marked
            self.notify_style_update()  # TextArea caches rendered lines: render them again
            self.refresh()

    def get_line(self, line_index: int) -> Text:
        """TextArea's documented hook for styling a line: a problem line is marked end to end."""
        line = super().get_line(line_index)
        if line_index in self.problem_lines:
            line.stylize(PROBLEM_STYLE)
        return line
