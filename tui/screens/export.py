"""Export a study: trials as CSV or JSON, or the best trial as a runnable spec (engine.export); a study with
several objectives has no best, so the spec export asks which trial of its Pareto front to write."""

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
from tui.messages import Confirm, ExportFinished, FrontListed, SpecUnavailable

FORMATS = (("csv", "trials as CSV", "{name}.csv"), ("json", "trials as JSON", "{name}.json"),
           ("spec", "best trial as a spec (TOML)", "{name}-best.toml"))  # fmt: skip


def missing_spec_reason(url: str, name: str) -> str | None:
    """Why the study's best trial cannot be written as a spec (engine.export's words), or None when it can."""
    from engine import export
    from engine.store import StoreError

    store = open_store(url)
    if store is None:
        return None  # the export itself says the store is gone
    try:
        export.stored_spec(store, name)
    except StoreError as err:
        return str(err)
    finally:
        store.close()
    return None


def export_study(url: str, name: str, kind: str, path: Path, trial: int | None = None) -> str | list[tuple[int, str]]:
    """Write the export; returns what was written, or, for the spec of a study with several objectives and no
    trial chosen, its Pareto front to choose from. Raises ImportError while engine.export is missing."""
    from engine import export  # lazily: the TUI starts without it

    store = open_store(url)
    if store is None:
        raise FileNotFoundError("the store does not exist")
    try:
        if kind == "spec":
            if trial is None and (front := export.front_choices(store, name)) is not None:
                return front
            text = export.best_spec_toml(store, name, trial)
            write_private(path, text)
            return f"{'best spec' if trial is None else f'spec of trial {trial}'} written to {path}"
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
            yield Static(id="export-why")  # why the spec option is disabled, when it is
            yield OptionList(id="export-front")  # a study with several objectives: which front trial's spec
            yield Input(str(self._default_path("csv")), id="export-path", select_on_focus=False)
            yield Static("up/down: format   enter or ctrl+s: export   tab: path   escape: cancel",
                         id="export-hint")  # fmt: skip

    def on_mount(self) -> None:
        self.query_one("#export-kind", OptionList).highlighted = 0
        self.query_one("#export-front", OptionList).display = False
        self.query_one("#export-why", Static).display = False
        self._check_spec()

    @work(thread=True, group="export-check")
    def _check_spec(self) -> None:
        try:
            reason = missing_spec_reason(self.app.storage_url, self.study_name)
        except Exception:  # an unreadable store: the export itself says so
            return
        if reason is not None:
            self.post_message(SpecUnavailable(reason))

    def on_spec_unavailable(self, message: SpecUnavailable) -> None:
        """Said up front, not after the user chose it: the spec option stays listed, disabled, with the reason."""
        kinds = self.query_one("#export-kind", OptionList)
        kinds.replace_option_prompt("spec", "best trial as a spec (unavailable)")
        kinds.disable_option("spec")
        why = self.query_one("#export-why", Static)
        why.update(Text(safe(f"no spec export: {message.reason}")))
        why.display = True
        if self.kind == "spec":
            kinds.highlighted = 0

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
        front = self.query_one("#export-front", OptionList)
        chosen = front.highlighted_option if self.kind == "spec" and front.display else None
        self._ask_or_export(self.kind, path, int(chosen.id) if chosen is not None else None)

    def on_front_listed(self, message: FrontListed) -> None:
        """Several objectives: list the front's trials with their values; Enter writes the chosen one's spec."""
        if not message.choices:
            self.app.notify("no trial is on the Pareto front yet (no complete trial)", severity="error", timeout=6)
            return
        front = self.query_one("#export-front", OptionList)
        front.clear_options()
        front.add_options([Option(Text(f"#{number}  {values}"), id=str(number)) for number, values in message.choices])
        front.display = True
        front.highlighted = 0
        front.focus()
        self.query_one("#export-hint", Static).update(
            "several objectives: choose a Pareto-front trial   enter: write its spec   escape: cancel")

    @on(OptionList.OptionSelected, "#export-front")
    def _front_trial_chosen(self, event: OptionList.OptionSelected) -> None:
        trial = int(event.option.id)
        path = (Path(self.query_one("#export-path", Input).value) if self.edited
                else self.specs_folder / f"{self.study_name}-trial{trial}.toml")  # fmt: skip
        self._ask_or_export("spec", path.expanduser(), trial)

    def _ask_or_export(self, kind: str, path: Path, trial: int | None = None) -> None:
        if not path.exists():
            self._export(kind, path, trial)
            return
        # an existing file is the user's: replaced only on an explicit yes
        self.post_message(Confirm(f"{path.name} exists", f"Replace {path} with the {kind} export?",
                                  yes="Replace", then=lambda: self._export(kind, path, trial)))  # fmt: skip

    @work(thread=True, exclusive=True, group="export")
    def _export(self, kind: str, path: Path, trial: int | None = None) -> None:
        try:
            result = export_study(self.app.storage_url, self.study_name, kind, path, trial)
        except ImportError:
            self.post_message(ExportFinished(False, "export is not available yet (engine.export is missing)"))
        except Exception as err:  # the store, the file system or a study without a spec: say which
            self.post_message(ExportFinished(False, f"export failed: {err}"))
        else:
            self.post_message(FrontListed(result) if isinstance(result, list) else ExportFinished(True, result))

    def on_export_finished(self, message: ExportFinished) -> None:
        self.app.notify(message.message, severity="information" if message.ok else "error", timeout=6)
        if message.ok:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
