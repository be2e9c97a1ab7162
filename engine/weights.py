"""A study's saved model weights: the state_dict files its trials leave, kept in Optuna's artifact store
(`FileSystemArtifactStore` in a private folder beside the store), which of them stay, and how `show` lists
and `export --weights` writes them out.

The coordinator is the only writer: a worker writes its trial's state_dict to a private temporary folder
and names the file in its `TrialDone`; the coordinator uploads it to the trial (`upload_artifact`, before
telling the trial: a finished trial's attrs cannot change) and removes the worker's copy. With
`save_weights = "best"` it then removes the files of trials that are no longer best (the Pareto front's,
with several objectives): Optuna's record of the artifact stays on the old trial, its file does not, and
`show` lists only artifacts whose file is in the folder. An upload writes its file whole or not at all
(`WholeFileStore`); a failed one is the trial's `weights_error` attr, which `show` prints. A folder another
user can write is refused (engine/files.py `check_private_folder`): its files could be anyone's. No torch
here: the coordinator never imports it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from optuna.artifacts import (
    FileSystemArtifactStore,
    download_artifact,
    get_all_artifact_meta,
    upload_artifact,
)
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial, TrialState

from engine.files import FILE_MODE, check_private_folder, private_dir, private_umask
from engine.run.protocol import WEIGHTS_TEMP_PREFIX
from engine.store import journal_path, sqlite_path, state_path
from engine.store.optuna_tables import study_storage

ARTIFACTS_KEY = "artifacts:"  # Optuna's system attr prefix of an artifact's record
WEIGHTS_ERROR_KEY = "weights_error"  # a complete trial's user attr: why its weights were not saved
FOLDER = "the saved weights' folder"
# upload_artifact names artifacts by uuid4: anything else read from the store is never a path we open
ARTIFACT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def artifact_dir(url: str, configured: str | None = None) -> Path:
    """The artifact folder: `[storage] artifacts` (or --artifacts) when given, else beside the store:
    `<db>.artifacts/` next to a SQLite file or journal, `<state dir>/artifacts` for a database server
    (local to the coordinator's host: several hosts keep their trials' files each on their own)."""
    if configured:
        return Path(configured).expanduser().resolve()
    db = sqlite_path(url) or journal_path(url)
    if db is not None:
        return db.resolve().parent / f"{db.stem}.artifacts"
    return state_path(url) / "artifacts"


@dataclass(frozen=True)
class SavedWeights:
    number: int
    artifact_id: str
    filename: str
    size: int  # bytes of the file in the folder


def artifacts_of(trial: FrozenTrial, storage: Any) -> list[Any]:
    """Optuna's records of the trial's artifacts (`ArtifactMeta`), skipping the query for trials with none."""
    if not any(key.startswith(ARTIFACTS_KEY) for key in trial.system_attrs):
        return []
    return get_all_artifact_meta(trial, storage=storage)


def saved_weights(trials: Iterable[FrozenTrial], storage: Any, folder: Path) -> list[SavedWeights]:
    """Every complete trial's artifact whose file is in `folder`, by trial number (ids that are not
    Optuna's uuids are skipped: a store's text never becomes a path)."""
    found = []
    for trial in trials:
        if trial.state != TrialState.COMPLETE:
            continue
        for meta in artifacts_of(trial, storage):
            if not ARTIFACT_ID.match(str(meta.artifact_id)):
                continue
            try:
                size = (folder / meta.artifact_id).stat().st_size
            except OSError:
                continue  # removed when a better trial came (save_weights = "best"), or another host's folder
            found.append(SavedWeights(trial.number, meta.artifact_id, str(meta.filename), size))
    return sorted(found, key=lambda w: w.number)


def study_weights(store: Any, study_name: str, folder: Path) -> list[SavedWeights]:
    """The saved weights of a study (`show`, `export --weights`); none without the folder (no read then).
    NotPrivate when another user can write the folder: its files may not be the trials'."""
    if not folder.is_dir():
        return []
    check_private_folder(folder, FOLDER)
    study = store.optuna_study(study_name)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return saved_weights(trials, study_storage(study), folder)


def write_weights(saved: SavedWeights, folder: Path, output: str | Path, force: bool) -> None:
    """Copy one artifact out (0600, through Optuna's download_artifact); an existing file only with force."""
    output = Path(output)
    if output.exists() and not output.is_file():  # the move into place would replace a folder or a device
        raise FileExistsError(f"{output} exists and is not a regular file: name a new file")
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists: pass --force to overwrite it")
    partial = output.with_name(f".{output.name}.partial")
    partial.unlink(missing_ok=True)
    private_dir(output.parent)  # as every other export: missing folders made, 0700
    try:
        with private_umask():  # download_artifact opens the file with the default mode
            download_artifact(artifact_store=FileSystemArtifactStore(folder), file_path=str(partial),
                              artifact_id=saved.artifact_id)  # fmt: skip
        os.chmod(partial, FILE_MODE)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
        raise


def discard(path: str | None) -> None:
    """Remove a worker's weights file and its private folder."""
    if not path:
        return
    file = Path(path)
    if file.parent.name.startswith(WEIGHTS_TEMP_PREFIX):
        shutil.rmtree(file.parent, ignore_errors=True)
    else:
        file.unlink(missing_ok=True)


class WholeFileStore(FileSystemArtifactStore):
    """Optuna's file artifact store, writing each file whole or not at all: into a hidden partial file (0600)
    renamed into place once written, removed when the write fails (a full disk, a read-only folder), so a
    failed upload leaves no file in the folder (its record on the trial then names none, which `show` skips)."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.folder = folder

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        if not ARTIFACT_ID.match(artifact_id):  # upload_artifact's uuid4: never a path of its own
            raise ValueError(f"not an artifact id: {artifact_id!r}")
        partial = self.folder / f".{artifact_id}.partial"
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as out:
                os.fchmod(fd, FILE_MODE)  # O_CREAT's mode passes through the umask
                shutil.copyfileobj(content_body, out)
                out.flush()
                os.fsync(fd)  # whole on disk before it has its name: a power cut leaves no short file
            os.replace(partial, self.folder / artifact_id)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def failure_text(err: OSError, folder: Path) -> str:
    """Why an upload failed, in the words `show` prints: "No space left on device (/x/s.artifacts)"."""
    return f"{err.strerror} ({folder})" if err.strerror else str(err)


class WeightKeeper:
    """The coordinator's side: uploads a finished trial's file and keeps what `save_weights` asks."""

    def __init__(self, folder: Path, mode: str):
        self.folder, self.mode = folder, mode
        self.kept: dict[int, str] = {}  # trial number -> artifact id, of files in our folder
        self._store: FileSystemArtifactStore | None = None

    def adopt(self, trials: Iterable[FrozenTrial], storage: Any) -> None:
        """Take over the files earlier runs left in the folder, so that "best" still drops them (one read
        per trial with an artifact: only "best" needs it)."""
        if self.mode == "best" and self.folder.is_dir():
            for saved in saved_weights(trials, storage, self.folder):
                self.kept[saved.number] = saved.artifact_id

    def upload(self, trial: Any, path: str) -> str:
        """Upload the worker's file to the RUNNING trial (0600 in a 0700 folder), whole or not at all.
        Raises OSError (NotPrivate: another user can write the folder, checked at every upload)."""
        check_private_folder(private_dir(self.folder), FOLDER)
        if self._store is None:
            self._store = WholeFileStore(self.folder)
        artifact_id = upload_artifact(artifact_store=self._store, file_path=path, study_or_trial=trial)
        self.kept[trial.number] = artifact_id
        return artifact_id

    def forget(self, trial: FrozenTrial, storage: Any) -> None:
        """Remove the files a dead coordinator uploaded to a trial it never told (killed between the upload
        and `tell`): the trial is failed `orphaned`, or resumed and uploads again."""
        for meta in artifacts_of(trial, storage):
            if ARTIFACT_ID.match(str(meta.artifact_id)):
                (self.folder / meta.artifact_id).unlink(missing_ok=True)
        self.kept.pop(trial.number, None)

    def keep_best(self, best: Iterable[int]) -> list[int]:
        """With "best": remove every kept file but the best trials'. Returns the trial numbers dropped."""
        if self.mode != "best":
            return []
        keep = set(best)
        dropped = [number for number in self.kept if number not in keep]
        for number in dropped:
            try:
                FileSystemArtifactStore(self.folder).remove(self.kept.pop(number))
            except ArtifactNotFound:
                pass
        return dropped
