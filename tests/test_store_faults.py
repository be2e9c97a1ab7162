"""The machine's faults are named, with what to do, never `internal error`: a read-only folder, a full disk, a
corrupt store file, and a storage URL whose scheme or driver tunetui does not have.

Tests run as root here, and root ignores a folder's mode bits (chmod 0500 would not stop it), so the
read-only folder is a read-only bind mount and the full disk a 1 MiB tmpfs: real EROFS and ENOSPC. Both
need mount rights; where there are none (not root) those tests are skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers_run import tunetui, tunetui_here, write_spec

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def no_internal_error(done: subprocess.CompletedProcess) -> str:
    text = done.stdout + done.stderr
    assert "internal error" not in text and "Traceback" not in text, text
    return done.stderr


@contextmanager
def mounted(target: Path, *how: list[str]):
    """Run each mount command on target; unmount at the end. Skips the test where mounting is refused."""
    for command in how:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", str(target)], capture_output=True, check=False)
            pytest.skip(f"cannot mount here ({' '.join(command)}: {done.stderr.strip()}); needs root")
    try:
        yield target
    finally:  # a handle still open on it (a store engine of this process) makes umount busy: detach it lazily
        if subprocess.run(["umount", str(target)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def one_trial_store(tmp_path: Path, folder: Path, name: str = "small") -> tuple[Path, str]:
    spec = write_spec(tmp_path / "spec", name, "tiny", n_trials=1)
    url = f"sqlite:///{folder}/store.db"
    done = tunetui("run", str(spec), "--quiet", storage=url, timeout=120)
    assert done.returncode == 0, done.stderr
    return spec, url


@pytest.mark.parametrize("url, says", [
    ("mysql://u@h/db", "its driver is not installed (No module named 'MySQLdb')"),
    ("foo://x/y", "unsupported scheme 'foo'"),
    ("postgresql://:::", "is not a valid URL"),
])  # fmt: skip
def test_a_url_tunetui_cannot_use_is_bad_input(tmp_path, url, says):
    spec = write_spec(tmp_path, "small", "tiny", n_trials=1)
    for args in (("ls",), ("show", "small"), ("export", "small"), ("stop", "small"), ("run", str(spec))):
        done = (tunetui if args[0] == "run" else tunetui_here)(*args, storage=url)  # the run as a program
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert says in no_internal_error(done) and "sqlite:///PATH" in done.stderr


def test_a_read_only_folder_is_named_and_its_store_still_reads(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    spec, url = one_trial_store(tmp_path, folder)
    before = (folder / "store.db").read_bytes()
    with mounted(folder, ["mount", "--bind", str(folder), str(folder)],
                 ["mount", "-o", "remount,ro,bind", str(folder)]):  # fmt: skip
        run = tunetui("run", str(spec), "--trials", "1", "--quiet", storage=url)
        assert run.returncode == 1 and f"the folder {folder} is read-only" in no_internal_error(run)
        assert "Pick a writable folder" in run.stderr
        fresh = tunetui("run", str(spec), "--quiet", storage=f"sqlite:///{folder}/sub/new.db")
        assert fresh.returncode == 1 and "not writable" in no_internal_error(fresh), fresh.stderr
        stop = tunetui_here("stop", "small", storage=url)
        assert stop.returncode == 1 and "read-only" in no_internal_error(stop), stop.stderr
        for args in (("ls",), ("show", "small"), ("export", "small")):  # viewers read it as it is
            done = tunetui_here(*args, storage=url)
            assert done.returncode == 0, (args, done.stderr)
            assert "small" in done.stdout or "COMPLETE" in done.stdout
    assert (folder / "store.db").read_bytes() == before


def test_a_full_disk_is_named_with_what_to_do(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    spec = write_spec(tmp_path / "spec", "big", "tiny", n_trials=40, epochs=3)
    with mounted(disk, ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]):
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (1024 * 1024 - 4096 * 2))  # as full as the disk lets it be
        new = tunetui("run", str(spec), "--quiet", storage=f"sqlite:///{disk}/store.db")
        assert new.returncode == 1 and "is full" in no_internal_error(new), new.stderr
        assert "df -h" in new.stderr

        filler.unlink()  # room to start, not to finish: 40 trials' telemetry fill the rest
        shutil.rmtree(disk / "store.state", ignore_errors=True)
        for leftover in disk.glob("store.db*"):
            leftover.unlink()
        (disk / "filler").write_bytes(b"\0" * (700 * 1024))
        during = tunetui("run", str(spec), "--quiet", storage=f"sqlite:///{disk}/store.db", timeout=240)
        assert during.returncode == 1 and "is full" in no_internal_error(during), during.stderr


def test_a_corrupt_store_file_is_named_and_left_unchanged(tmp_path):
    spec, url = one_trial_store(tmp_path, tmp_path)
    db = tmp_path / "store.db"
    size = db.stat().st_size
    with open(db, "r+b") as f:  # garbage over the middle of every third page: b-tree pages break
        for offset in range(4096, size, 4096 * 3):
            f.seek(offset + 100)
            f.write(os.urandom(1500))
    damaged = db.read_bytes()
    for args in (("ls",), ("show", "small"), ("export", "small"), ("run", str(spec), "--quiet")):
        done = (tunetui if args[0] == "run" else tunetui_here)(*args, storage=url)  # the run as a program
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        stderr = no_internal_error(done)
        assert f"the store {db} is corrupt" in stderr and "PRAGMA integrity_check" in stderr, stderr
    assert db.read_bytes() == damaged

    with open(db, "r+b") as f:  # the header too: not a database at all
        f.write(b"this is no sqlite file")
    done = tunetui_here("ls", storage=url)
    assert done.returncode == 1 and "is corrupt (file is not a database)" in no_internal_error(done)
