"""The Studies screen: every study in the store, its state, trials, best value; open, start, delete."""

from __future__ import annotations

import threading
from typing import NamedTuple

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from engine.notes import NOTE_KEY, NOTE_MAX, write_note
from engine.store import StoreError
from engine.text import safe
from tui.data import delete_study, list_studies, open_store, short_url
from tui.formatting import diagnosis_summary, format_best, trial_letters, trial_summary
from tui.messages import CompareStudies, Confirm, EditNote, EditSpec, NewStudy, OpenStudy, StudiesLoaded
from tui.trial_actions import writable_store
from tui.widgets.footer import KeyFooter

WIDE = 120  # from this width every column shows in full; narrower, "started" goes and long cells are cut
COLUMNS = (("name", "study"), ("status", "state"), ("trials", "trials c/r/p/f"), ("best", "best"),
           ("diagnosis", "diagnosis"), ("started", "started"), ("device", "device"))  # fmt: skip
NARROW_MAX = {"name": 20, "device": 8}  # widest these cells get below WIDE (the diagnosis takes the rest)


class Column(NamedTuple):
    key: str
    label: str
    width: int  # as wide as its label and widest cell (wide terminals), or cut (narrow ones)
    source: str  # the row's text it shows


def with_diagnosis(store, studies: list[dict]) -> list[dict]:
    """Each study's most common finding, from one grouped read (a store without telemetry: none)."""
    kinds = store.finding_kinds() if store is not None and store.has_telemetry() else {}
    for s in studies:
        s["diagnosis"] = diagnosis_summary(kinds.get(s["study_id"], {}), s["counts"])
        s["diagnosis_short"] = diagnosis_summary(kinds.get(s["study_id"], {}), s["counts"], short=True)
    return studies


def fit_columns(rows: list[dict[str, str]], width: int) -> list[Column]:
    """The columns for a terminal `width` columns wide: all of them from WIDE; narrower, every header on
    screen (an 80-column terminal must not scroll sideways): no "started", a short trials label, name and
    device cut to NARROW_MAX, the short diagnosis in what is left."""
    # widths are given, never left to DataTable's auto width: it measures new cells on its idle pass, and rows
    # painted before that pass stayed as wide as their labels ("finis" for finished; seen on PostgreSQL)
    if width >= WIDE:
        return [Column(key, label, max([cell_len(label), *(cell_len(row[key]) for row in rows)]), key)
                for key, label in COLUMNS]  # fmt: skip
    columns = []
    for key, label in COLUMNS:
        label = "trials" if key == "trials" else label
        natural = max([len(label), *(len(row[key]) for row in rows)])
        if key != "started":
            columns.append(Column(key, label, min(natural, NARROW_MAX.get(key, natural)), key))
    # each column has a cell of padding either side; 2 more for the vertical scrollbar
    left = width - 2 - sum(c.width + 2 for c in columns if c.key != "diagnosis") - 2
    return [c._replace(width=max(len(c.label), left), source="diagnosis_short") if c.key == "diagnosis" else c
            for c in columns]  # fmt: skip


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def gpu_line() -> str:
    """This host's GPUs' use and memory as NVML reports them; empty without GPUs or NVML."""
    from engine.gpus import read_gpus

    gpus = read_gpus()
    return ", ".join(g.line() for g in gpus) if gpus else ""


class StudiesScreen(Screen):
    HELP_TITLE = "Studies"
    BINDINGS = [
        Binding("enter", "open", "Open", tooltip="Open the selected study"),
        Binding("n", "new", "New", tooltip="Start a new study from a spec file in the studies folder"),
        Binding("E", "edit", "Edit spec", tooltip="Edit a spec file (validated as you type)"),
        Binding("d", "delete", "Delete", tooltip="Delete the selected study (asks first)"),
        Binding("N", "note", "Note", show=False, tooltip="A note on the selected study"),
        Binding("m", "mark", "Mark", show=False, tooltip="Mark the selected study to compare with another (m again: unmark)"),
        Binding("c", "compare", "Compare", show=False, tooltip="Compare the marked study with the selected one"),
        Binding("slash", "filter", "Filter", key_display="/", tooltip="Show only studies whose name matches"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.studies: list[dict] = []
        self.shown: list[tuple] = []
        self.columns: list[Column] = []
        self.filter_text = ""
        self.marked: str | None = None  # the study `c` compares the selected one with
        self._wake = threading.Event()
        self._closing = False  # set on unmount: the polling thread ends now, not after its sleep
        self._visible = True  # False while another screen is on top
        self._status_text = ""
        self._gpus = ""

    def compose(self) -> ComposeResult:
        yield Static("tunetui: studies", id="studies-title", classes="title")
        yield Input(placeholder="filter by name", id="studies-filter", classes="-hidden")
        table = DataTable(id="studies-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="studies-status", classes="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self.query_one("#studies-title", Static).update(
            Text(safe(f"tunetui: studies in {short_url(self.app.storage_url)}"))
        )
        table.focus()
        self.poll()

    # ------------------------------------------------------------ data
    @work(thread=True, exclusive=True, group="studies-poll")
    def poll(self) -> None:
        worker = get_current_worker()
        store = None
        while not worker.is_cancelled and not self._closing:
            if not self._visible:  # another screen is on top: no reads until it comes back
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:
                if store is None:
                    store = open_store(self.app.storage_url)
                self.post_message(StudiesLoaded(with_diagnosis(store, list_studies(store)), gpus=gpu_line()))
            except StoreError as err:
                self.post_message(StudiesLoaded([], str(err), gpu_line()))
            self._wake.wait(1.0)
            self._wake.clear()
        if store is not None:
            store.close()

    def on_unmount(self) -> None:
        self._closing = True
        self._wake.set()

    def refresh_now(self) -> None:
        self._wake.set()

    def on_studies_loaded(self, message: StudiesLoaded) -> None:
        self.studies = message.studies
        title = f"tunetui: studies in {short_url(self.app.storage_url)}"
        if message.gpus != self._gpus:
            self._gpus = message.gpus
            self.query_one("#studies-title", Static).update(title + (f" · {message.gpus}" if message.gpus else ""))
        self._show()
        if message.error:
            text = f"cannot read the store: {message.error}"
        elif not self.studies:
            text = f"No study in this store yet. Press n to start one from a spec in {self.app.studies_dir}/."
        else:
            running = sum(1 for s in self.studies if s["status"] in ("running", "paused"))
            text = f"{len(self.studies)} studies, {running} running. enter: open  n: new  ?: keys"
        if text != self._status_text:
            self._status_text = text
            self.query_one("#studies-status", Static).update(Text(safe(text)))

    def on_resize(self) -> None:
        self._show()

    def _cells(self, study: dict) -> dict[str, str]:
        """A study's texts, made safe (no markup, no terminal bytes) before they are measured and cut."""
        name = study["study_name"]
        return {key: safe(text) for key, text in (
            ("name", f"◆ {name}" if name == self.marked else name),  # the mark, in words too
            ("status", study["status"]), ("trials", trial_letters(study["counts"])), ("best", format_best(study)),
            ("diagnosis", study.get("diagnosis", "")), ("diagnosis_short", study.get("diagnosis_short", "")),
            ("started", study.get("started_text", "")), ("device", study.get("device", "")))}  # fmt: skip

    def _show(self) -> None:
        table = self.query_one(DataTable)
        needle = self.filter_text.lower()
        studies = [s for s in self.studies if needle in s["study_name"].lower()]
        rows = [self._cells(s) for s in studies]
        columns = fit_columns(rows, self.size.width)
        shown = [tuple(cut(row[c.source], c.width) for c in columns) for row in rows]
        if (columns, shown) == (self.columns, self.shown):
            return
        keep = self.selected_name
        table.clear(columns=columns != self.columns)
        if columns != self.columns:
            for column in columns:
                table.add_column(column.label, key=column.key, width=column.width)
        self.columns, self.shown = columns, shown
        for study, cells in zip(studies, shown, strict=True):
            # cells as Text: a study named "a[/]b" is a name, not markup; the key keeps the exact name
            table.add_row(*(Text(cell) for cell in cells), key=study["study_name"])
        if keep is not None and table.is_valid_row_index(index := self._index_of(keep)):
            table.move_cursor(row=index, animate=False)

    def _index_of(self, name: str) -> int:
        try:
            return self.query_one(DataTable).get_row_index(name)
        except Exception:  # no such row (filtered out, deleted)
            return -1

    @property
    def selected_name(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # the table is being rebuilt
            return None

    # ------------------------------------------------------------ actions
    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        name = self.selected_name
        if name is None:
            self.notify("no study to open; press n to start one", severity="warning")
            return
        self.post_message(OpenStudy(name))

    def action_mark(self) -> None:
        name = self.selected_name
        if name is None:
            return
        self.marked = None if self.marked == name else name
        self._show()
        if self.marked:
            self.notify(f"marked {safe(name)}: select another study and press c to compare them")

    def action_compare(self) -> None:
        name = self.selected_name
        if self.marked is None or name is None or name == self.marked:
            self.notify("mark a study with m, then select another and press c", severity="warning")
            return
        self.post_message(CompareStudies(self.marked, name))

    def action_new(self) -> None:
        self.post_message(NewStudy())

    def action_edit(self) -> None:
        self.post_message(EditSpec())

    def action_delete(self) -> None:
        name = self.selected_name
        if name is None:
            return
        study = next((s for s in self.studies if s["study_name"] == name), None)
        if study and study["status"] in ("running", "paused"):
            self.notify(f"{name} is {study['status']}: stop it before deleting", severity="warning")
            return
        trials = trial_summary(study["counts"]) if study else "?"
        self.post_message(
            Confirm(f"Delete study {name}?", f"{trials} trials and all their telemetry; this cannot be undone.",
                    yes="Delete", then=lambda: self._delete(name))  # fmt: skip
        )

    @work(thread=True, group="studies-delete")
    def _delete(self, name: str) -> None:
        try:
            delete_study(self.app.storage_url, name)
        except Exception as err:  # a store or Optuna error: say it, keep running
            self.app.call_from_thread(self.notify, f"could not delete {name}: {err}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"deleted {name}")
        self.refresh_now()

    def action_note(self) -> None:
        if self.selected_name is not None:
            self._note(self.selected_name)

    @work(thread=True, group="studies-note")
    def _note(self, name: str, text: str | None = None) -> None:
        """Read the study's note and ask for the new one (text None), or write `text`."""
        try:
            with writable_store(self.app.storage_url) as store:
                study_id = store.study_id(name)
                if study_id is None:
                    raise StoreError(f"no study named {name!r}")
                if text is None:
                    note = str(store.study_attrs(study_id).get(NOTE_KEY) or "")
                    self.post_message(EditNote(f"Note on study {name}", note, NOTE_MAX, lambda t: self._note(name, t)))
                    return
                note = write_note(store, study_id, None, text)
        except StoreError as err:
            self.app.call_from_thread(self.notify, f"no note written: {err}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"note {'saved on' if note else 'removed from'} study {name}")

    def action_filter(self) -> None:
        box = self.query_one("#studies-filter", Input)
        box.remove_class("-hidden")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#studies-filter", Input)
        box.value = ""
        box.add_class("-hidden")
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#studies-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self._show()

    @on(Input.Submitted, "#studies-filter")
    def _filter_done(self) -> None:
        self.query_one(DataTable).focus()
        if not self.filter_text:
            self.query_one("#studies-filter", Input).add_class("-hidden")

    def on_screen_resume(self) -> None:
        self._visible = True
        self.refresh_now()

    def on_screen_suspend(self) -> None:
        self._visible = False
