"""What a trial writes to disk in its worker: its final weights for the coordinator to upload
(engine/weights.py), and with `[train] checkpoint = true` a checkpoint at the end of each epoch, from which a
trial left behind by a killed coordinator resumes (engine/run/resume.py).

A checkpoint is one file, `checkpoint.pt` in the trial's private folder, replaced atomically each epoch:
model, optimizer, schedule and AMP scaler states, the epoch, the RNG states (torch's, CUDA's and the
batch order's generator) and the loop's own state (step count, best values, early-stopping patience, the
history the diagnosis reads). It holds tensors and plain containers only, so `torch.load(weights_only=True)`
reads it back. The engine's loop only: an own loop (`[task] loop`) is not checkpointed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.files import open_private, private_dir
from engine.run.protocol import WEIGHTS_TEMP_PREFIX
from engine.run.resume import CHECKPOINT_FILE


def weights_file(model: nn.Module, number: int) -> str:
    """The model's state_dict (plain tensors on the CPU: `torch.load(path, weights_only=True)` reads it)
    in a private temporary folder (0700, file 0600); the coordinator uploads and removes it."""
    folder = Path(tempfile.mkdtemp(prefix=WEIGHTS_TEMP_PREFIX))
    path = folder / f"trial-{number}-weights.pt"
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    with open_private(path, "wb") as out:
        torch.save(state, out)
    return str(path)


LOOP_KEYS = ("step", "best", "best_val_loss", "patience", "epochs", "steps", "layers")  # the loop's own state


class CheckpointUnusable(Exception):
    """A checkpoint the trial cannot resume from; the trial fails with reason "checkpoint"."""


class Checkpoint:
    """One trial's checkpoint file; `parts` are the stateful objects of the loop (None where unused)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / CHECKPOINT_FILE

    def save(self, epoch: int, parts: dict[str, Any], generator: torch.Generator, loop: dict[str, Any]) -> None:
        state = {
            "epoch": epoch,
            "loop": loop,
            "parts": {name: part.state_dict() for name, part in parts.items() if part is not None},
            "rng": {"torch": torch.get_rng_state(), "batches": generator.get_state()},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
        private_dir(self.path.parent)
        partial = self.path.with_suffix(".partial")
        with open_private(partial, "wb") as out:
            torch.save(state, out)
            out.flush()
            os.fsync(out.fileno())  # else a crash after the rename can leave an empty file in its place
        os.replace(partial, self.path)  # a kill mid-write leaves the previous epoch's checkpoint whole

    def restore(self, parts: dict[str, Any], generator: torch.Generator) -> tuple[int, dict[str, Any]] | None:
        """Load the states into `parts` and the RNGs; (epoch, the loop's state), or None without a checkpoint."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # EOFError (empty) would read as the worker's pipe closing: never let it out
            raise CheckpointUnusable(f"{self.path} cannot be read, truncated or not a checkpoint "
                                     f"({type(err).__name__})") from None  # fmt: skip
        try:
            for name, part in parts.items():
                if part is not None and name in state["parts"]:
                    part.load_state_dict(state["parts"][name])
            torch.set_rng_state(state["rng"]["torch"])
            generator.set_state(state["rng"]["batches"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            loop = state["loop"]
            return int(state["epoch"]), {key: loop[key] for key in LOOP_KEYS}
        except Exception as err:  # another model's or loop's state (a size mismatch, a missing key)
            detail = " ".join(str(err).split())[:200]
            raise CheckpointUnusable(f"{self.path} does not fit this trial ({type(err).__name__}: {detail})") from None
