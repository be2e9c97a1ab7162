"""Export a study: trials as CSV or JSON, or the best trial as a runnable spec (engine.export)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from engine.files import write_private
from engine.text import safe
from tui.data import open_store
from tui.messages import Confirm, ExportFinished

FORMATS = (("csv", "trials as CSV", "{name}.csv"), ("json", "trials as JSON", "{name}.json"),
           ("spec", "best trial as a spec (TOML)", "{name}-best.toml"))  # fmt: skip


def export_study(url: str, name: str, kind: str, path: Path) -> str:
    """Write the export; returns what was written. Raises ImportError while engine.export is missing."""
    from engine import export  # lazily: the TUI starts without it

    store = open_store(url)
    if store is None:
        raise FileNotFoundError("the store does not exist")
    try:
        if kind == "spec":
            text = export.best_spec_toml(store, name)
            write_private(path, text)
            return f"best spec written to {path}"
        rows = export.export_rows(store, name)
        (export.write_csv if kind == "csv" else export.write_json)(rows, path)
        return f"{len(rows)} trials written to {path}"
    finally:
        store.close()


class ExportScreen(ModalScreen[None]):
    """The highlighted format is the one exported; its path is offered until the user edits it. The best
    spec is offered in the studies folder, so the Studies screen's `n` lists it next to the others."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "export", "Export"),
    ]

    def __init__(self, study_name: str, folder: Path | None = None, specs_folder: Path | None = None) -> None:
        super().__init__()
        self.study_name = study_name
        self.folder = folder or Path.cwd()
        self.specs_folder = specs_folder or self.folder
        self.kind = "csv"
        self.edited = False

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Static(Text(safe(f"Export {self.study_name}")), id="export-title")
            yield OptionList(*(Option(label, id=kind) for kind, label, _ in FORMATS), id="export-kind")
            yield Input(str(self._default_path("csv")), id="export-path", select_on_focus=False)
            yield Static("up/down: format   enter or ctrl+s: export   tab: path   escape: cancel",
                         id="export-hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#export-kind", OptionList).highlighted = 0

    def _default_path(self, kind: str) -> Path:
        template = next(t for k, _, t in FORMATS if k == kind)
        folder = self.specs_folder if kind == "spec" else self.folder
        return folder / template.format(name=self.study_name)

    @on(OptionList.OptionHighlighted, "#export-kind")
    def _kind_changed(self, event: OptionList.OptionHighlighted) -> None:
        self.kind = event.option.id
        if not self.edited:
            self.query_one("#export-path", Input).value = str(self._default_path(self.kind))

    @on(OptionList.OptionSelected, "#export-kind")
    def _kind_chosen(self, event: OptionList.OptionSelected) -> None:
        self.kind = event.option.id
        path = Path(self.query_one("#export-path", Input).value) if self.edited else self._default_path(self.kind)
        self._ask_or_export(self.kind, path.expanduser())

    @on(Input.Changed, "#export-path")
    def _path_edited(self, event: Input.Changed) -> None:
        self.edited = event.value != str(self._default_path(self.kind))

    @on(Input.Submitted, "#export-path")
    def action_export(self) -> None:
        path = Path(self.query_one("#export-path", Input).value).expanduser()
        self._ask_or_export(self.kind, path)

    def _ask_or_export(self, kind: str, path: Path) -> None:
        if not path.exists():
            self._export(kind, path)
            return
        # an existing file is the user's: replaced only on an explicit yes
        self.post_message(Confirm(f"{path.name} exists", f"Replace {path} with the {kind} export?",
                                  yes="Replace", then=lambda: self._export(kind, path)))  # fmt: skip

    @work(thread=True, exclusive=True, group="export")
    def _export(self, kind: str, path: Path) -> None:
        try:
            text = export_study(self.app.storage_url, self.study_name, kind, path)
        except ImportError:
            self.post_message(ExportFinished(False, "export is not available yet (engine.export is missing)"))
        except Exception as err:  # the store, the file system or a study without a spec: say which
            self.post_message(ExportFinished(False, f"export failed: {err}"))
        else:
            self.post_message(ExportFinished(True, text))

    def on_export_finished(self, message: ExportFinished) -> None:
        self.app.notify(message.message, severity="information" if message.ok else "error", timeout=6)
        if message.ok:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
