"""Pick the trial table's columns: a checkbox per column, keyboard only; the choice lasts the app session."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import SelectionList, Static

from engine.text import safe


class ColumnPicker(ModalScreen[set[str] | None]):
    """Dismissed with the column keys to hide (None: unchanged)."""

    BINDINGS = [
        Binding("escape,C", "done", "Done", key_display="esc"),
        Binding("j", "move(1)", "Down", show=False),
        Binding("k", "move(-1)", "Up", show=False),
    ]

    def __init__(self, columns: list[tuple[str, str]], hidden: set[str]) -> None:
        super().__init__()
        self.columns, self.hidden = columns, hidden

    def compose(self) -> ComposeResult:
        with Vertical(id="columns-box"):
            yield Static("Columns of the trial table", id="columns-title")
            # labels are Text: a parameter's name comes from the store
            yield SelectionList[str](*((Text(safe(label)), key, key not in self.hidden) for key, label in self.columns),
                                     id="columns-list")  # fmt: skip
            yield Static("space/enter: show or hide   j/k: move   escape: done", id="columns-hint")

    def action_move(self, step: int) -> None:
        columns = self.query_one(SelectionList)
        columns.action_cursor_down() if step > 0 else columns.action_cursor_up()

    def action_done(self) -> None:
        shown = set(self.query_one(SelectionList).selected)
        self.dismiss({key for key, _ in self.columns} - shown)
