"""Saved weights: the coordinator uploads a trial's state_dict to Optuna's artifact store and keeps what
`[train] save_weights` asks; `show` lists them and `export --weights` writes one out."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import optuna
import pytest
import torch

from engine.weights import WeightKeeper, artifact_dir, saved_weights, study_weights
from tests.conftest import run_cli
from tests.helpers_run import tunetui_here

SPEC = """
[study]
name = "kept"
seed = 3

[budget]
n_trials = 2

[sampler]
kind = "random"

[pruner]
kind = "none"

[task]
name = "digits"

[train]
epochs = 1
layers = 1
width = 16
{train}

[space.lr]
type = "float"
low = 1e-3
high = 1e-1
log = true
"""


def test_the_artifact_folder_is_beside_the_store_unless_the_spec_names_one(tmp_path):
    assert artifact_dir(f"sqlite:///{tmp_path}/s/study.db") == tmp_path / "s" / "study.artifacts"
    assert artifact_dir("sqlite:///x.db", str(tmp_path / "mine")) == tmp_path / "mine"
    pg = artifact_dir("postgresql://u:secret@host/db")
    assert pg.name == "artifacts" and "secret" not in str(pg)


def _trial_with_file(study: optuna.Study, tmp_path: Path, value: float, keeper: WeightKeeper) -> int:
    trial = study.ask()
    path = tmp_path / f"trial-{trial.number}-weights.pt"
    path.write_bytes(b"w" * (trial.number + 1))
    keeper.upload(trial, str(path))
    study.tell(trial, value)
    keeper.keep_best(t.number for t in study.best_trials)
    return trial.number


@pytest.mark.parametrize("mode, kept", [("best", [1]), ("all", [0, 1, 2])])
def test_best_keeps_only_the_best_trials_file_and_all_keeps_every_one(tmp_path, mode, kept):
    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    folder = tmp_path / "artifacts"
    keeper = WeightKeeper(folder, mode)
    for value in (0.5, 0.9, 0.7):
        _trial_with_file(study, tmp_path, value, keeper)
    trials = study.get_trials()
    found = saved_weights(trials, study._storage, folder)
    assert [w.number for w in found] == kept
    assert [w.filename for w in found] == [f"trial-{n}-weights.pt" for n in kept]
    assert [w.size for w in found] == [n + 1 for n in kept]
    assert sorted(p.name for p in folder.iterdir()) == sorted(w.artifact_id for w in found)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.iterdir())
    # a later run of "best" adopts the files of earlier runs, and drops them for a better trial
    later = WeightKeeper(folder, "best")
    later.adopt(trials, study._storage)
    _trial_with_file(study, tmp_path, 0.95, later)
    assert [w.number for w in saved_weights(study.get_trials(), study._storage, folder)] == [3]


def test_weights_uploaded_to_a_trial_its_coordinator_never_told_are_removed_by_the_next(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db", study_name="s")
    folder = tmp_path / "artifacts"
    trial = study.ask()
    path = tmp_path / "trial-0-weights.pt"
    path.write_bytes(b"w")
    WeightKeeper(folder, "all").upload(trial, str(path))
    # killed between the upload and tell: the next coordinator fails or resumes the trial, and resumed it
    # uploads again, so the first file must go (else the trial would have two)
    [orphan] = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    WeightKeeper(folder, "all").forget(orphan, study._storage)
    assert list(folder.iterdir()) == []


def test_an_artifact_id_from_the_store_never_becomes_a_path(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=url, study_name="s")
    trial = study.ask()
    outside = tmp_path / "secret"
    outside.write_text("not an artifact")
    record = {"artifact_id": "../secret", "filename": "x.pt", "mimetype": "a", "encoding": None}
    study._storage.set_trial_system_attr(trial._trial_id, "artifacts:../secret", json.dumps(record))
    study.tell(trial, 1.0)
    folder = tmp_path / "artifacts"
    folder.mkdir()
    assert saved_weights(study.get_trials(), study._storage, folder) == []


def test_a_loop_of_its_own_keeps_the_model_it_saves_else_the_one_it_watches():
    from engine.config import TrainConfig
    from engine.trainer.context import TrialContext

    ctx = TrialContext({}, torch.device("cpu"), TrainConfig(), "val_acc", lambda *a: None, lambda: False)
    watched, chosen = torch.nn.Linear(2, 1), torch.nn.Linear(2, 2)
    ctx.watch(watched, torch.optim.SGD(watched.parameters(), lr=0.1))
    assert ctx.model is watched
    ctx.save_weights(chosen)
    ctx.watch(watched, torch.optim.SGD(watched.parameters(), lr=0.1))
    assert ctx.model is chosen
    ctx.close()


def test_a_run_saves_the_best_trials_weights_that_show_lists_and_export_writes(tmp_path):
    spec = tmp_path / "kept.toml"
    spec.write_text(SPEC.format(train=""), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/store.db"
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = run_cli("run", str(spec), "--storage", url, "--workers", "1", "--quiet", cwd=tmp_path,
                     env={"TMPDIR": str(temp)})  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    study = optuna.load_study(study_name="kept", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    folder = tmp_path / "store.artifacts"
    from engine.store import Store

    saved = study_weights(Store(url, read_only=True), "kept", folder)
    assert [w.number for w in saved] == [study.best_trial.number]  # "best" is the default
    assert len(list(folder.iterdir())) == 1
    assert list(temp.glob("tunetui-weights-*")) == []  # the worker's temporary copy is gone

    shown = tunetui_here("show", "kept", "--json", storage=url)  # reads and refusals: in this process
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["weights"]
    assert [(w["trial"], w["file"], w["bytes"]) for w in listed] == [
        (study.best_trial.number, f"trial-{study.best_trial.number}-weights.pt", saved[0].size)
    ]
    assert "saved weights (1" in tunetui_here("show", "kept", storage=url).stdout

    out = tmp_path / "best.pt"
    written = run_cli("export", "kept", "--weights", "-o", str(out), "--storage", url)  # a process: its file's mode
    assert written.returncode == 0, written.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    state = torch.load(out, weights_only=True)
    # the engine's MLP on digits: 64 inputs, one hidden layer of 16, 10 classes; it loads into that shape
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    assert {tuple(v.shape) for v in state.values()} == {(16, 64), (16,), (10, 16), (10,)}
    model.load_state_dict(dict(zip(model.state_dict(), state.values(), strict=True)))

    again = tunetui_here("export", "kept", "--weights", "-o", str(out), storage=url)
    assert again.returncode == 2 and "--force" in again.stderr
    assert tunetui_here("export", "kept", "--weights", "-o", str(out), "--force", storage=url).returncode == 0
    other = 1 - study.best_trial.number
    missing = tunetui_here("export", "kept", "--weights", "--trial", str(other), "-o", str(tmp_path / "o.pt"),
                           storage=url)  # fmt: skip
    assert missing.returncode == 2 and f"trial {other} has no saved weights" in missing.stderr
    assert not (tmp_path / "o.pt").exists()


def test_export_refusals_name_their_cause_a_non_file_output_a_refused_write_a_missing_folder(tmp_path, capsys):
    from engine.cli import main

    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    _trial_with_file(study, tmp_path, 0.5, WeightKeeper(artifact_dir(url), "all"))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # --force replaced whatever the path named by a move (a FIFO, a folder, /dev/full as root): refused now
    for output in (fifo, tmp_path):
        assert main(["--storage", url, "export", "s", "--weights", "-o", str(output), "--force"]) == 2
        assert f"{output} exists and is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not list(tmp_path.glob(".*.partial"))
    # a write the machine refuses names the file, not the store, and is no internal error
    assert main(["--storage", url, "export", "s", "-o", "/dev/full"]) == 1
    assert capsys.readouterr().err.strip() == "tunetui: cannot write /dev/full: No space left on device"
    assert main(["--storage", url, "export", "s", "--format", "json", "-o", str(tmp_path)]) == 2
    assert f"cannot write {tmp_path}: Is a directory" in capsys.readouterr().err
    assert main(["--storage", url, "export", "nosuch", "--tensorboard", str(tmp_path / "tb")]) == 1
    assert "no study named 'nosuch'" in capsys.readouterr().err
    # the store moved without its folder: said so, and how to name it (was "see [train] save_weights")
    artifact_dir(url).rename(tmp_path / "moved")
    assert main(["--storage", url, "export", "s", "--weights", "--trial", "0", "-o", str(tmp_path / "w.pt")]) == 2
    assert f"the folder {artifact_dir(url)} does not exist" in capsys.readouterr().err
    store_file = str(tmp_path / "study.db")  # named by mistake: was "does not exist"
    assert main(["--storage", url, "export", "s", "--weights", "-o", str(tmp_path / "w.pt"), "--artifacts", store_file]) == 2
    assert f"{store_file} is not a folder" in capsys.readouterr().err
    assert main(["--storage", url, "export", "s", "--weights", "--trial", "0", "-o", str(tmp_path / "w.pt"),
                 "--artifacts", str(tmp_path / "moved")]) == 0  # fmt: skip
    assert (tmp_path / "w.pt").read_bytes() == b"w"
    deep = tmp_path / "new" / "folder" / "w.pt"  # folders made as for every other export (was exit 1)
    assert main(["--storage", url, "export", "s", "--weights", "-o", str(deep), "--artifacts", str(tmp_path / "moved")]) == 0
    assert deep.read_bytes() == b"w" and (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_a_run_whose_weights_folder_cannot_be_made_is_refused_before_it_starts(tmp_path):
    from tests.helpers_run import tunetui_here

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    spec = tmp_path / "kept.toml"
    spec.write_text(SPEC.format(train="") + f'[storage]\nartifacts = "{a_file}/weights"\n')
    url = f"sqlite:///{tmp_path}/study.db"
    # was: the run started and every trial said "weights not saved: Not a directory", exit 0
    refused = tunetui_here("run", str(spec), "--quiet", storage=url)
    assert refused.returncode == 2, refused.stderr
    assert f"the saved weights' folder {a_file}/weights cannot be made: {a_file} is not a folder" in refused.stderr
    assert not (tmp_path / "study.db").exists()
    from engine.launch import check_artifacts
    from engine.spec import parse_spec

    check_artifacts(parse_spec(SPEC.format(train='save_weights = "none"') + f'[storage]\nartifacts = "{a_file}"\n'), url)


def test_a_weights_folder_another_user_can_write_is_refused(tmp_path):
    """Its files may be anyone's (a state_dict is a pickle its user loads), so: a run is refused before it
    starts (the default folder beside the store and a `[storage] artifacts` one), `export --weights` writes
    nothing, `show` lists nothing and says why, an upload mid-run fails. A private folder passes."""
    from engine.files import NotPrivate
    from tests.helpers_run import tunetui_here

    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    folder = artifact_dir(url)
    _trial_with_file(study, tmp_path, 0.5, WeightKeeper(folder, "all"))
    spec = tmp_path / "kept.toml"
    spec.write_text(SPEC.format(train=""), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    configured = tmp_path / "configured.toml"
    configured.write_text(SPEC.format(train="") + f'[storage]\nartifacts = "{elsewhere}"\n', encoding="utf-8")
    for mode, why in ((0o777, "every user can write it (mode 0777"), (0o770, "its group can write it (mode 0770")):
        os.chmod(folder, mode)
        os.chmod(elsewhere, mode)
        for run_spec, named in ((spec, folder), (configured, elsewhere)):
            refused = tunetui_here("run", str(run_spec), "--quiet", storage=url)
            assert refused.returncode == 2, refused.stderr
            assert f"the saved weights' folder {named} is not private: {why}" in refused.stderr
            assert optuna.get_all_study_names(url) == ["s"]  # nothing started
        export = tunetui_here("export", "s", "--weights", "-o", str(tmp_path / "w.pt"), storage=url)
        assert export.returncode == 2 and f"{folder} is not private: {why}" in export.stderr, export.stderr
        assert "nothing was written" in export.stderr and not (tmp_path / "w.pt").exists()
        shown = tunetui_here("show", "s", storage=url)
        assert shown.returncode == 0 and "saved weights not listed: the saved weights' folder" in shown.stdout
        assert json.loads(tunetui_here("show", "s", "--json", storage=url).stdout)["weights"] == []
        keeper = WeightKeeper(folder, "all")
        trial = study.ask()
        (tmp_path / "w.bin").write_bytes(b"w")
        with pytest.raises(NotPrivate, match="is not private"):
            keeper.upload(trial, str(tmp_path / "w.bin"))
        study.tell(trial, 0.1)
    assert len(list(folder.iterdir())) == 1  # the refused uploads wrote nothing
    if os.geteuid() == 0:  # only root can give a folder to another user
        os.chmod(folder, 0o700)
        os.chown(folder, 65534, -1)
        export = tunetui_here("export", "s", "--weights", "-o", str(tmp_path / "w.pt"), storage=url)
        assert export.returncode == 2 and "it belongs to another user (uid 65534" in export.stderr, export.stderr
        os.chown(folder, 0, -1)
    os.chmod(folder, 0o700)
    written = tunetui_here("export", "s", "--weights", "--trial", "0", "-o", str(tmp_path / "w.pt"), storage=url)
    assert written.returncode == 0, written.stderr


def test_an_upload_that_fails_midway_leaves_no_file(tmp_path):
    """A full disk while the file is written: the write goes to a hidden partial file renamed into place
    only when whole, so the folder holds nothing after the failure (it kept a truncated file under the
    artifact's id, which `show` listed and `export --weights` copied)."""
    from tests.test_store_faults import mounted

    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted(disk, ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(disk)]):
        study = optuna.create_study(storage=f"sqlite:///{tmp_path}/study.db", study_name="s")
        keeper = WeightKeeper(disk, "all")
        big = tmp_path / "big.pt"
        big.write_bytes(b"w" * (256 * 1024))
        trial = study.ask()
        with pytest.raises(OSError, match="No space left on device"):
            keeper.upload(trial, str(big))
        assert list(disk.iterdir()) == []
        study.tell(trial, 0.5)
        assert saved_weights(study.get_trials(), study._storage, disk) == []


def test_a_trial_whose_weights_could_not_be_saved_says_so_in_show(tmp_path):
    """The run's weights folder fills up mid-run: the trial completes, the folder keeps no file, and `show`
    (and `show --trial`) say why the trial has no weights (it was only a line in the coordinator's log)."""
    from tests.helpers_run import tunetui_here
    from tests.test_store_faults import mounted

    disk = tmp_path / "disk"
    disk.mkdir()
    spec = tmp_path / "kept.toml"
    spec.write_text(SPEC.format(train="").replace("width = 16", "width = 64") + f'[storage]\nartifacts = "{disk}"\n',
                    encoding="utf-8")  # fmt: skip
    url = f"sqlite:///{tmp_path}/store.db"
    with mounted(disk, ["mount", "-t", "tmpfs", "-o", "size=4k,mode=0700", "tmpfs", str(disk)]):  # < 19 KB of weights
        result = run_cli("run", str(spec), "--storage", url, "--trials", "1", "--quiet", cwd=tmp_path)
        assert result.returncode == 0, result.stderr + result.stdout
        assert [p.name for p in disk.iterdir()] == []
    why = f"No space left on device ({disk})"
    assert f"trial 0: weights not saved: {why}" in result.stdout
    assert optuna.load_study(study_name="kept", storage=url).trials[0].state.name == "COMPLETE"
    for args in (("show", "kept"), ("show", "kept", "--trial", "0")):  # the best trial's lines, one trial's
        shown = " ".join(tunetui_here(*args, storage=url).stdout.split())  # rich wraps at 80 columns
        assert shown.count(f"weights not saved: {why}") == 1, shown
    assert json.loads(tunetui_here("show", "kept", "--json", storage=url).stdout)["weights_not_saved"] == {"0": why}
