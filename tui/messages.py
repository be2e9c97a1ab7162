"""Messages the TUI's threads post to its screens: data flows in as small dataclass messages."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class ExportFinished(Message):
    ok: bool
    message: str
