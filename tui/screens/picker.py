"""Pick a spec file from the studies folder."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine.text import safe
from tui.data import spec_files


class SpecPicker(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, studies_dir: Path, purpose: str = "start") -> None:
        super().__init__()
        self.studies_dir, self.purpose = studies_dir, purpose

    def compose(self) -> ComposeResult:
        files = spec_files(self.studies_dir)
        with Vertical(id="picker-box"):
            yield Static(f"Spec to {self.purpose} (from {self.studies_dir}/)", id="picker-title")
            if files:
                yield OptionList(*(Option(Text(safe(f.name)), id=str(f)) for f in files), id="picker-list")
            else:
                yield Static(f"no *.toml spec in {self.studies_dir.resolve()}", id="picker-empty")
            yield Static("enter: choose   escape: cancel", id="picker-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(Path(event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
