"""The trial filter's line under the Study screen's title: the text box `/` opens, the message for a filter
that does not parse, and while a filter is on, its text and how many trials meet it ("12 of 300")."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from tui.trial_filter import FilterError, parse
from tui.widgets.trial_table import TrialTable

EXAMPLE = "state=complete lr<1e-3 layers>=2 (= != < <= > >=)"


class FilterBar(Vertical):
    """Hidden while no filter is on and none is being typed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    DEFAULT_CSS = """
    FilterBar { height: auto; padding: 0 1; display: none; }
    FilterBar.-on { display: block; }
    FilterBar Input { height: 1; }
    FilterBar Input.-hidden { display: none; }
    FilterBar #filter-line { height: 1; text-wrap: nowrap; text-overflow: ellipsis; color: $text-muted; }
    FilterBar #filter-line.-error { color: $error; text-style: bold; height: auto; max-height: 3; text-wrap: wrap; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.table: TrialTable | None = None
        self.count: tuple[str, int, int] = ("", 0, 0)

    def compose(self) -> ComposeResult:
        # disabled while hidden: the screen's first focus goes to the table, not to a hidden box
        yield Input(placeholder=EXAMPLE, compact=True, select_on_focus=False, disabled=True, id="filter-input",
                    classes="-hidden")  # fmt: skip
        yield Static("", id="filter-line")

    def edit(self, table: TrialTable) -> None:
        """`/`: type a filter for `table` (the one on, if any, to change)."""
        self.table = table
        box = self.query_one(Input)
        box.value = table.filter_text
        box.disabled = False
        box.remove_class("-hidden")
        self.add_class("-on")
        self._say(f"enter filters, escape cancels: {EXAMPLE}")
        box.focus()

    def on_input_changed(self) -> None:
        self._say(f"enter filters, escape cancels: {EXAMPLE}")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.table is None:
            return
        text = event.value.strip()
        try:
            terms = parse(text, self.table.params, self.table.metrics)
        except FilterError as err:
            self._say(str(err), error=True)  # plain Text: the message quotes what was typed
            return
        self.table.set_filter(text, terms)
        self._close()

    def action_cancel(self) -> None:
        self._close()

    def _close(self) -> None:
        box = self.query_one(Input)
        box.add_class("-hidden")
        box.disabled = True
        if self.table is not None:
            self.table.focus()
        self.show_count(*self.count)

    def show_count(self, text: str, shown: int, total: int) -> None:
        """The filter on (its text escaped) and how many trials meet it; hidden when none is on."""
        self.count = (text, shown, total)
        if not self.query_one(Input).has_class("-hidden"):
            return  # being typed: the line keeps its hint or error
        self.set_class(bool(text), "-on")
        if text:
            self._say(f"filter {text} · {shown} of {total} trials · / edits, escape clears")

    def _say(self, message: str, error: bool = False) -> None:
        line = self.query_one("#filter-line", Static)
        line.set_class(error, "-error")
        line.update(Text(("error: " if error else "") + message))
