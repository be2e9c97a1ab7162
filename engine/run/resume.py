"""Trials that resume from a checkpoint (`[train] checkpoint = true`): where a trial's checkpoint folder is,
whether it holds one, and its removal once the trial has ended.

The worker writes the checkpoint (engine/trainer/checkpoint.py) after each epoch; the coordinator only
names the folder, `<state dir>/checkpoints/<study>/<trial number>/` (0700), and removes it when the trial
ends, however it ends. A coordinator that finds a RUNNING trial of its own host left by a dead coordinator
(an orphan, engine/run/ledger.py) resumes it, same number, when its folder holds a checkpoint, instead of
failing it `orphaned` (docs/faults.md). No torch here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.store import state_path

CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_dir(url: str, study: str, number: int) -> Path:
    """The trial's checkpoint folder (the study name is a NAME_PATTERN: letters, digits, _ . -)."""
    return state_path(url) / "checkpoints" / study / str(number)


def has_checkpoint(folder: Path) -> bool:
    return (folder / CHECKPOINT_FILE).is_file()


def remove_checkpoint(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
