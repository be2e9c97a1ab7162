"""Start a study again: the user picks the spec file on this machine; the store never picks code to run."""

from __future__ import annotations

import tomllib
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


def specs_naming(studies_dir: Path, study_name: str) -> list[Path]:
    """The spec files in the studies folder whose [study] name is the study's (read as TOML, never run)."""
    found = []
    for path in spec_files(studies_dir):
        try:
            study = tomllib.loads(path.read_text(encoding="utf-8")).get("study", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if isinstance(study, dict) and study.get("name") == study_name:
            found.append(path.resolve())
    return found


def recorded_spec(attrs: dict, candidates: list[Path]) -> Path | None:
    """The spec_path the store holds, when it is a file here and not already a candidate: only ever offered,
    shown in full, for the user to choose or not (anyone who can write the store can change it)."""
    value = attrs.get("spec_path")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    try:
        if not path.is_absolute() or not path.is_file() or path.resolve() in candidates:
            return None
    except (OSError, ValueError):
        return None
    return path.resolve()


class RestartScreen(ModalScreen[Path | None]):
    """Lists the candidate specs; enter starts the highlighted one, escape starts nothing."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, study_name: str, studies_dir: Path, candidates: list[Path], recorded: Path | None):
        super().__init__()
        self.study_name, self.studies_dir = study_name, studies_dir
        self.choices = [*candidates, *([recorded] if recorded else [])]
        self.recorded = recorded

    def compose(self) -> ComposeResult:
        with Vertical(id="restart-box"):  # wide: a spec is shown by its full path
            yield Static(Text(safe(f"Start {self.study_name} again from which spec?")), id="picker-title")
            options = [Option(Text(safe(str(path))), id=str(i)) for i, path in enumerate(self.choices)]
            if self.recorded is not None:
                options[-1] = Option(
                    Text(safe(f"{self.recorded}  (path recorded in the store: read it before you run it)")),
                    id=str(len(self.choices) - 1),
                )
            if options:
                yield OptionList(*options, id="picker-list")
                yield Static(Text(f"specs in {safe(self.studies_dir)}/ that name this study. enter: start   "
                                  "escape: cancel"), id="picker-hint")  # fmt: skip
            else:
                yield Static(Text(safe(f"no spec in {self.studies_dir}/ has [study] name = \"{self.study_name}\"; "
                                       "add one, or start a spec with n on the Studies screen")), id="picker-empty")  # fmt: skip
                yield Static("escape: close", id="picker-hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.choices[int(event.option.id)])

    def action_cancel(self) -> None:
        self.dismiss(None)
