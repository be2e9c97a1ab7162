"""Forms over one trial or study: its note, and the parameters of a trial to enqueue (checked on enter,
every problem listed, nothing enqueued until they are gone). Escape closes either without a write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from engine.enqueue import EditableParam
from engine.text import safe, safe_lines


class NoteScreen(ModalScreen[str | None]):
    """One line of text; enter saves it (empty: the note is removed), escape keeps the old one."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, note: str, limit: int) -> None:
        super().__init__()
        self.title_text, self.note, self.limit = title, note, limit

    def compose(self) -> ComposeResult:
        with Vertical(id="note-box", classes="form-box"):
            yield Static(Text(safe(self.title_text)), classes="form-title")
            yield Input(safe(self.note), max_length=self.limit, select_on_focus=False, id="note-input")
            yield Static(f"enter: save   escape: cancel   (empty: remove the note; {self.limit} characters at most)",
                         classes="form-hint")  # fmt: skip

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ParamsScreen(ModalScreen[Any]):
    """One field per parameter, with what the search space allows beside it; enter checks every field
    (`check`: the texts -> (the result, or None and the problems)) and closes with the result."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("up", "app.focus_previous", "Previous field", show=False),
        Binding("down", "app.focus_next", "Next field", show=False),
    ]

    def __init__(self, title: str, fields: list[EditableParam], note: str,
                 check: Callable[[dict[str, str]], tuple[Any, list[str]]]) -> None:  # fmt: skip
        super().__init__()
        self.title_text, self.fields, self.note, self.check = title, fields, note, check

    def compose(self) -> ComposeResult:
        with Vertical(id="params-box", classes="form-box"):
            yield Static(Text(safe(self.title_text)), classes="form-title")
            with VerticalScroll(id="params-fields"):
                for i, param in enumerate(self.fields):
                    with Horizontal(classes="param-row"):
                        yield Static(Text(safe(param.name)), classes="param-name")
                        yield Input(safe(param.text), select_on_focus=False, compact=True, id=f"param-{i}",
                                    classes="param-input")
                        yield Static(Text(safe(param.bounds)), classes="param-bounds")
            if self.note:
                yield Static(Text(safe_lines(self.note)), classes="form-hint")
            yield Static("", id="params-problems")
            yield Static("enter: enqueue   up/down: move   escape: cancel", classes="form-hint")

    def on_mount(self) -> None:
        self.query_one("#param-0", Input).focus()  # not the scrolling list around the fields

    def texts(self) -> dict[str, str]:
        return {p.name: self.query_one(f"#param-{i}", Input).value for i, p in enumerate(self.fields)}

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        result, problems = self.check(self.texts())
        if problems:
            self.query_one("#params-problems", Static).update(Text(safe_lines("\n".join(problems)), style="bold red"))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        self.dismiss(None)
