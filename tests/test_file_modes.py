"""Every file tunetui writes is 0600 and every folder it creates 0700, whichever command comes first and
whatever the caller's umask (each command runs first in a fresh folder, under the common umask 022)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_run import ROOT, wait_for, write_spec

USUAL_UMASK = 0o022  # most shells: files 0644, folders 0755 unless the code asks for less


def wrong_modes(root: Path) -> list[str]:
    """Every folder under root (root included) that is not 0700 and every file that is not 0600."""
    wrong = []
    for folder, dirs, files in os.walk(root):
        for path in [Path(folder)] * (Path(folder) == root) + [Path(folder) / d for d in dirs]:
            if path.stat().st_mode & 0o777 != 0o700:
                wrong.append(f"{path.relative_to(root.parent)} {path.stat().st_mode & 0o777:o}")
        for name in files:
            mode = (Path(folder) / name).stat().st_mode & 0o777
            if mode != 0o600:
                wrong.append(f"{(Path(folder) / name).relative_to(root.parent)} {mode:o}")
    return wrong


def tunetui(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TUNETUI_STORAGE"}  # the default store: cwd/.tunetui
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, preexec_fn=lambda: os.umask(USUAL_UMASK), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("specs"), "modes", n_trials=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory, spec) -> str:
    """A finished tunetui study to export (its own folder; exports go elsewhere)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    tunetui("run", str(spec), "--storage", url, "--quiet", cwd=spec.parent)
    return url


def fresh(tmp_path: Path) -> Path:
    folder = tmp_path / "fresh"
    folder.mkdir(mode=0o700)
    return folder


def test_run_first_makes_a_private_store(tmp_path, spec):
    work = fresh(tmp_path)
    tunetui("run", str(spec), "--quiet", cwd=work)
    assert (work / ".tunetui" / "tunetui.db").exists()
    assert len(list((work / ".tunetui" / "tunetui.artifacts").iterdir())) == 1  # the trial's saved weights
    assert wrong_modes(work) == []


def test_run_detach_first_makes_a_private_store_log_and_pid(tmp_path, spec, no_stray_processes):
    work = fresh(tmp_path)
    tunetui("run", str(spec), "--detach", cwd=work)
    pid_file = wait_for(lambda: next((work / ".tunetui").rglob("*.pid"), None), 30, "the pid file")
    pid = int(wait_for(lambda: pid_file.read_text().strip(), 10, "the pid"))

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

    wait_for(gone, 120, "the detached run to end")
    assert any((work / ".tunetui").rglob("*.log"))
    assert wrong_modes(work) == []


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_first_writes_private_files_and_folders(tmp_path, store, fmt):
    work = fresh(tmp_path)
    out = work / "out" / "deeper"
    targets = {"-o": out / f"modes.{fmt}", "--best-spec": out / "best" / "modes.toml", "--tensorboard": out / "tb"}
    args = [item for flag, path in targets.items() for item in (flag, str(path))]
    tunetui("export", "modes", "--format", fmt, *args, "--storage", store, cwd=work)
    assert all(path.exists() for path in targets.values())
    assert any(targets["--tensorboard"].rglob("events.out.tfevents.*"))
    assert wrong_modes(work) == []


def test_profile_first_writes_a_private_trace(tmp_path, spec):
    work = fresh(tmp_path)
    trace = work / "traces" / "t.json"
    tunetui("profile", str(spec), "--steps", "2", "--trace", str(trace), "--device", "cpu", cwd=work)
    assert trace.exists()
    assert wrong_modes(work) == []


def test_a_postgresql_run_keeps_its_state_folder_private(tmp_path, spec, postgres_server):
    """With PostgreSQL the locks (and detached runs' logs) live under $XDG_STATE_HOME/tunetui/."""
    from tests.conftest import fresh_postgres_database

    state = tmp_path / "xdg-state"  # absent: tunetui creates it, and every folder under it
    url = fresh_postgres_database(postgres_server, prefix="modes")
    work = fresh(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "TUNETUI_STORAGE"}
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--storage", url, "--quiet"], cwd=work,
        env={**env, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(state)}, capture_output=True, text=True,
        timeout=300, preexec_fn=lambda: os.umask(USUAL_UMASK), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(state.rglob("*.lock")) and wrong_modes(state) == [] and wrong_modes(work) == []
