"""Private files and folders: every file tunetui writes is 0600 and every folder it creates 0700,
whatever the caller's umask and whichever command runs first."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

FILE_MODE, DIR_MODE = 0o600, 0o700


def private_dir(path: str | Path) -> Path:
    """Create the folder and each missing parent as 0700; folders that exist already are left alone
    (a shared parent such as the user's home is not ours to change)."""
    target = folder = Path(path)
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:  # created meanwhile by another process: its own mode stands
            continue
        os.chmod(folder, DIR_MODE)  # mkdir's mode passes through the umask
    return target


def open_private(path: str | Path, mode: str = "w", **kwargs) -> IO:
    """Open a file for writing (mode "w", "a", "wb" or "ab"); a new file is 0600, its folders 0700."""
    path = Path(path)
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode, **kwargs)


def write_private(path: str | Path, text: str) -> None:
    with open_private(path, encoding="utf-8") as out:
        out.write(text)


@contextmanager
def private_umask() -> Iterator[None]:
    """For third-party writers (TensorBoard, torch.profiler) that create files with default modes.
    The umask is process-wide: use it only where no other thread writes files meanwhile."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class NotPrivate(PermissionError):
    """A folder another user can write: what tunetui finds in it may be anyone's."""


def check_private_folder(folder: str | Path, what: str) -> None:
    """Refuse (NotPrivate) a folder that belongs to another user, or that its group or every user may write:
    they could put their own files in it (a saved model is a pickle its user loads) or swap ours. `what`
    names the folder in the message ("the saved weights' folder")."""
    info = os.stat(folder)
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.geteuid():
        why = f"it belongs to another user (uid {info.st_uid}, you are {os.geteuid()})"
    elif mode & 0o022:
        why = f"{'every user' if mode & 0o002 else 'its group'} can write it (mode {mode:04o}; chmod go-w {folder})"
    else:
        return
    raise NotPrivate(f"{what} {folder} is not private: {why}; tunetui keeps files only where no one else can "
                     "write them")  # fmt: skip
