"""How the TUI acts on studies: control rows for the coordinator, and starting `run --detach`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from engine.cli import DETACH_WAIT_S, STORAGE_ENV

LAUNCH_TIMEOUT_S = DETACH_WAIT_S + 30.0  # `run --detach` waits up to DETACH_WAIT_S for the coordinator


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
