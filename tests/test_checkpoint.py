"""Epoch checkpoints in-process: a trial stopped after an epoch and resumed from its checkpoint trains on to
the same model and metrics as one that never stopped (the tensor path on the CPU is deterministic)."""

from __future__ import annotations

import pytest
import torch

from engine.config import TrainConfig
from engine.run.resume import checkpoint_dir, has_checkpoint
from engine.spec import TaskSpec
from engine.trainer.checkpoint import Checkpoint
from engine.trainer.tasks import load_task
from engine.trainer.train import TrialFailed, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec(name="digits", subset=400), {}, CPU)


@pytest.mark.parametrize("options", [
    {"scheduler": "cosine", "optimizer": "sgd", "dropout": 0.2},  # momentum buffers, a per-step schedule, dropout
    {"scheduler": "plateau", "early_stopping_patience": 5, "batch_norm": True},  # per-epoch schedule on val_loss
    {"scheduler": "onecycle", "amp": "fp16", "clip_norm": 1.0},  # a GradScaler (on the CPU too) and clipping
])  # fmt: skip
def test_a_resumed_trial_ends_as_if_it_never_stopped(tmp_path, digits, options):
    config = TrainConfig(epochs=3, layers=1, width=32, batch_size=64, seed=5, step_every=3, **options)
    straight_reports = []
    straight = train(config, digits, CPU, lambda r: straight_reports.append(r) or False)

    folder = tmp_path / "ckpt"
    first_reports = []

    class StopAfterSave(Checkpoint):
        def save(self, epoch, parts, generator, loop):
            super().save(epoch, parts, generator, loop)
            if epoch == 1:
                raise KeyboardInterrupt  # the worker dies right after its checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(config, digits, CPU, lambda r: first_reports.append(r) or False, StopAfterSave(folder))
    assert has_checkpoint(folder) and [r.epoch for r in first_reports] == [1]
    assert (folder.stat().st_mode & 0o777, (folder / "checkpoint.pt").stat().st_mode & 0o777) == (0o700, 0o600)

    resumed_reports = []
    resumed = train(config, digits, CPU, lambda r: resumed_reports.append(r) or False, Checkpoint(folder))
    assert [r.epoch for r in resumed_reports] == [2, 3]  # only the epochs after the checkpoint
    for a, b in zip(straight_reports[1:], resumed_reports, strict=True):
        assert a.metrics["val_loss"] == pytest.approx(b.metrics["val_loss"], rel=1e-6)
        assert [s["step"] for s in a.steps] == [s["step"] for s in b.steps]  # the step count went on
    assert resumed.metrics["val_acc"] == pytest.approx(straight.metrics["val_acc"])
    for (name, x), y in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.allclose(x, y, atol=1e-6), name
    assert resumed.best == pytest.approx(straight.best)  # the loop's own state came back too
    assert len(resumed.findings) == len(straight.findings)


def test_the_checkpoint_folder_is_private_to_the_store_study_and_trial(tmp_path):
    url = f"sqlite:///{tmp_path}/study.db"
    assert checkpoint_dir(url, "s", 3) == tmp_path / "study.state" / "checkpoints" / "s" / "3"
    assert checkpoint_dir(url, "s", 3) != checkpoint_dir(url, "t", 3) != checkpoint_dir(url, "s", 4)


def test_a_checkpoint_that_cannot_be_resumed_fails_the_trial_with_the_reason(tmp_path, digits):
    config = TrainConfig(epochs=2, layers=1, width=16, batch_size=64, seed=5)

    class StopAfterSave(Checkpoint):
        def save(self, *args):
            super().save(*args)
            raise KeyboardInterrupt

    folder = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train(config, digits, CPU, lambda r: False, StopAfterSave(folder))
    saved = (folder / "checkpoint.pt").read_bytes()
    # an empty file raised EOFError, which the worker takes for its pipe closing: the worker died
    for damaged, why in ((b"", "EOFError"), (saved[: len(saved) // 2], "truncated"), (b"garbage", "not a checkpoint")):
        (folder / "checkpoint.pt").write_bytes(damaged)
        with pytest.raises(TrialFailed) as failed:
            train(config, digits, CPU, lambda r: False, Checkpoint(folder))
        assert failed.value.reason == "checkpoint" and why in failed.value.hint
    (folder / "checkpoint.pt").write_bytes(saved)  # whole, but of another model
    with pytest.raises(TrialFailed) as failed:
        train(config.model_copy(update={"width": 32}), digits, CPU, lambda r: False, Checkpoint(folder))
    assert "does not fit this trial" in failed.value.hint and "size mismatch for fc1.weight" in failed.value.hint
