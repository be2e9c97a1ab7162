"""`?`: every key of the screen below (its own, the app's, the focused panel's), footer or not."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

GENERAL = (
    ("ctrl+p", "command palette: every action by name"),
    ("tab / shift+tab", "move focus between panels"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", key_display="esc")]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def _rows(self, node: DOMNode | None, own_only: bool = True) -> list[tuple[str, str]]:
        """(keys, what they do) of a node; own_only: only bindings declared by tunetui's classes."""
        if node is None:
            return []
        own = {
            b.action if isinstance(b, Binding) else b[1]
            for cls in type(node).__mro__
            if cls.__module__.startswith("tui.")
            for b in cls.__dict__.get("BINDINGS", [])
        }
        rows: dict[str, list[str]] = {}
        for key, bindings in node._bindings.key_to_bindings.items():
            for binding in bindings:
                if not binding.description or (own_only and binding.action not in own):
                    continue
                text = binding.description
                if binding.tooltip and binding.tooltip != binding.description:
                    text += f": {binding.tooltip}"
                label = binding.key_display or self.app.get_key_display(Binding(key, binding.action))
                if label not in rows.setdefault(text, []):
                    rows[text].append(label)
        return [(" ".join(keys), text) for text, keys in rows.items()]

    def compose(self) -> ComposeResult:
        title = getattr(self.below, "HELP_TITLE", type(self.below).__name__)
        focused = self.below.focused
        sections = [
            (title, self._rows(self.below)),
            ("everywhere", self._rows(self.app) + list(GENERAL)),
        ]
        if focused is not None:
            name = focused.id or type(focused).__name__
            sections.append((f"in the focused panel ({name})", self._rows(focused, own_only=False)))
        table = Table(box=None, show_header=False, expand=True, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True, width=12)
        table.add_column("action", ratio=1)
        for heading, rows in sections:
            if not rows:
                continue
            table.add_row(f"[u]{heading}[/u]", "")
            for keys, text in rows:
                table.add_row(keys, text)
            table.add_row("", "")
        with VerticalScroll(id="help-box"):
            yield Static(f"{title}: keys", id="help-title")
            yield Static(table, id="help-table")
            yield Static("escape or ? closes", id="help-hint")

    def action_close(self) -> None:
        self.dismiss(None)
