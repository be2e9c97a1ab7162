"""`?`: every key of the screen below, including those the footer has no room for."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GENERAL = (
    ("ctrl+p", "command palette: every action by name"),
    ("tab / shift+tab", "move focus between panels"),
    ("escape", "back / close"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss", "Close", key_display="esc"),
    ]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("action")
        seen = set()
        for active in self.below.active_bindings.values():
            binding = active.binding
            if not binding.description:
                continue
            label = binding.key_display or self.app.get_key_display(binding)
            if (label, binding.description) in seen:
                continue
            seen.add((label, binding.description))
            text = binding.description
            if binding.tooltip and binding.tooltip != binding.description:
                text += f": {binding.tooltip}"
            table.add_row(label, text)
        for key, text in GENERAL:
            table.add_row(key, text)
        title = getattr(self.below, "HELP_TITLE", type(self.below).__name__)
        with VerticalScroll(id="help-box"):
            yield Static(f"[b]{title}[/b]: keys", id="help-title")
            yield Static(table, id="help-table")
            yield Static("escape or ? to close", id="help-hint")

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(result)
