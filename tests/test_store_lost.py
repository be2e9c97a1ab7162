"""A SQLite store deleted or replaced under a running study is noticed: exit 1 with what was lost, the workers
end, and nothing is written to the path afterwards (no new file, the replacement left as it was)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.helpers_run import StoreView, alive, finish, start, wait_for, workers_of, write_spec

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def started_and_one_done(tmp_path, name: str):
    """A slow study under way (2 workers, many trials) with at least one finished trial in its store."""
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    spec = write_spec(tmp_path, name, "slow", n_trials=200, epochs=3, task_params={"epoch_s": 0.3})
    process = start(spec, url, "--workers", "2", log=tmp_path / "run.log")
    view = StoreView(url)
    wait_for(lambda: any(t["state"] == "COMPLETE" for t in view.trials(name).values()), 120, "a finished trial")
    view.engine.dispose()  # the test reads nothing more through a connection that could create the file
    wait_for(lambda: len(workers_of(process.pid)) == 2, 30, "two workers")
    return db, process, workers_of(process.pid)


def ended(tmp_path, process, workers) -> str:
    code = finish(process, 60)
    log = (tmp_path / "run.log").read_text()
    assert code == 1, log[-3000:]
    wait_for(lambda: not any(alive(pid) for pid in workers), 30, "the workers to end")
    assert "internal error" not in log and "best trial" not in log  # no summary of a store that is gone
    return log


def test_a_deleted_store_file_ends_the_run_with_exit_1_and_is_not_recreated(tmp_path):
    db, process, workers = started_and_one_done(tmp_path, "gone")
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    log = ended(tmp_path, process, workers)
    assert f"the store file {db} was deleted during the run: the results it held are lost" in log, log[-3000:]
    assert not db.exists()  # nothing wrote a fresh empty store at the path


def test_a_replaced_store_file_ends_the_run_and_the_new_file_is_left_alone(tmp_path):
    db, process, workers = started_and_one_done(tmp_path, "swapped")
    other = tmp_path / "other.db"
    shutil.copy(db, other)  # a copy, as a restore from a backup would put there
    os.replace(other, db)
    replacement = db.read_bytes()
    log = ended(tmp_path, process, workers)
    assert f"the store file {db} was replaced during the run" in log, log[-3000:]
    assert db.read_bytes() == replacement  # not one write went into the new file
