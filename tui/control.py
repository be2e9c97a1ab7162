"""How the TUI acts on studies: control rows for the coordinator, and starting `run --detach`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.cli import DETACH_WAIT_S, STORAGE_ENV
from engine.files import write_private
from engine.store import Store, StoreError, state_dir

LAUNCH_TIMEOUT_S = DETACH_WAIT_S + 30.0  # `run --detach` waits up to DETACH_WAIT_S for the coordinator


def request(url: str, study_id: int, action: str, arg: str | None = None) -> int:
    """Insert one control row (stop, stop_now, pause, resume, kill); the coordinator polls for it."""
    store = Store(url, create=False)
    try:
        return store.request(study_id, action, arg)
    finally:
        store.close()


def run_argv(
    spec_path: str | Path,
    trials: int | None = None,
    workers: int | None = None,
    device: str | None = None,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The headless command that starts a study's coordinator in its own session and returns.

    The storage URL is not in it: `launch` passes it in the environment (argv is readable by every
    local user through `ps`, and the URL may carry a password)."""
    argv = [sys.executable, "-m", "engine.cli", "run", str(spec_path), "--detach", "--storage-from-env"]
    if trials is not None:
        argv += ["--trials", str(trials)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    if device:
        argv += ["--device", device]
    for item in overrides:
        argv += ["--set", item]
    return argv


def launch(argv: list[str], storage_url: str, timeout: float = LAUNCH_TIMEOUT_S) -> tuple[bool, str]:
    """Run the detaching command (an argv list, never a shell); (ok, what it printed)."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,  # the coordinator must outlive the TUI and its terminal
            env={**os.environ, STORAGE_ENV: storage_url},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return False, f"could not start the study: {err}"
    text = (done.stdout + done.stderr).strip()
    return done.returncode == 0, text


def restart_spec(url: str, name: str, attrs: dict) -> Path:
    """The spec to start a study again with: its recorded file, else its recorded text written out."""
    path = Path(attrs["spec_path"]) if attrs.get("spec_path") else None
    text = attrs.get("spec_toml")
    if path is not None and path.is_file():
        # the file, unless the study ran with --set overrides: then the text it really ran with
        if not text or path.read_text(encoding="utf-8", errors="replace") == text:
            return path
    if not text:
        raise StoreError(
            f"{name} has no recorded spec (spec_path/spec_toml); start it with n from a spec file"
        )
    target = state_dir(url) / "specs" / f"{name}.toml"
    write_private(target, text)
    return target
