"""The TUI's messages: data from its threads to the screens, and navigation from the screens to app.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from tui.data import StudyDelta


@dataclass
class StudiesLoaded(Message):
    """The studies list, read again; replaces any older one still queued."""

    studies: list[dict]
    error: str | None = None
    gpus: str = ""  # this host's GPUs' use and memory (NVML); empty where there are none

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StudiesLoaded)


@dataclass
class StudyUpdated(Message):
    """What changed in the watched study since the last poll (deltas: never collapsed)."""

    delta: StudyDelta


@dataclass
class PollFailed(Message):
    """The store could not be read this tick; polling goes on."""

    error: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PollFailed)


@dataclass
class ImportancesComputed(Message):
    importances: dict[str, float] | None
    note: str = ""
    complete: int = 0  # complete trials the importances were computed from


@dataclass
class LaunchFinished(Message):
    """The detached `run` command returned: ok, or what it printed."""

    ok: bool
    study_name: str
    message: str = ""
    trials: int | None = None  # the count asked for; it bubbles to the app, whose `s` asks for it again


@dataclass
class ExportFinished(Message):
    ok: bool
    message: str


@dataclass
class FrontListed(Message):
    """A spec export of a study with several objectives needs a trial: its Pareto front, (number, values)."""

    choices: list[tuple[int, str]]


@dataclass
class SpecUnavailable(Message):
    """The study has no spec to export (not started by tunetui): why, in the words `export --best-spec` uses."""

    reason: str


# ---------------------------------------------------------------- navigation: screens ask, app.py pushes
# Screens never import each other: they post one of these and TunetuiApp opens the screen.


@dataclass
class OpenStudy(Message):
    """Show the Study screen of this study (on top, or instead of the asking screen with replace)."""

    name: str
    replace: bool = False


@dataclass
class CompareStudies(Message):
    """Show two studies' histories overlaid, beside the diff of their search spaces."""

    first: str
    second: str


@dataclass
class NewStudy(Message):
    """Pick a spec in the studies folder, then show the Launch screen for it."""


@dataclass
class LaunchSpec(Message):
    """Show the Launch screen for this spec."""

    path: Path


@dataclass
class EditSpec(Message):
    """Open the spec editor on this file; None: pick a spec in the studies folder first."""

    path: Path | None = None


@dataclass
class Confirm(Message):
    """Ask before a destructive action (y/n/escape); `then` runs on yes only."""

    title: str
    detail: str
    yes: str
    then: Callable[[], None]


@dataclass
class PickColumns(Message):
    """Show or hide the trial table's columns; `then` gets the keys to hide (kept for the app session)."""

    columns: list[tuple[str, str]]  # (key, label) of every column, in table order
    hidden: set[str]
    then: Callable[[set[str]], None]


@dataclass
class ChooseSpecToStart(Message):
    """List the specs that could start this study again; `then` gets the one the user chose."""

    study_name: str
    user_attrs: dict
    then: Callable[[Path, int | None], None]  # the spec, and the trial count last launched (None: the spec's)


@dataclass
class ExportStudy(Message):
    """Show the export dialog of this study."""

    name: str


@dataclass
class OpenAnalysis(Message):
    """Show the analysis views of this study."""

    name: str


@dataclass
class ControlSent(Message):
    """A control request (pause, resume, stop, stop_now, kill) was written, or why not; or, with
    `answered`, the coordinator's answer to it."""

    ok: bool
    text: str
    action: str = ""
    answered: bool = False


@dataclass
class EditNote(Message):
    """Show the note form; `then` gets the text typed (not called on escape)."""

    title: str
    note: str
    limit: int
    then: Callable[[str], None]


@dataclass
class EditParams(Message):
    """Show the parameters form of a trial to enqueue; `check` turns the fields' texts into the result or
    problems, `then` gets the result (not called on escape)."""

    title: str
    fields: list
    note: str
    check: Callable[[dict[str, str]], tuple]
    then: Callable[[Any], None]
