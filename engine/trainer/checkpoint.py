"""What a trial writes to disk in its worker: its final weights for the coordinator to upload
(engine/weights.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from engine.files import open_private
from engine.run.protocol import WEIGHTS_TEMP_PREFIX


def weights_file(model: nn.Module, number: int) -> str:
    """The model's state_dict (plain tensors on the CPU: `torch.load(path, weights_only=True)` reads it)
    in a private temporary folder (0700, file 0600); the coordinator uploads and removes it."""
    folder = Path(tempfile.mkdtemp(prefix=WEIGHTS_TEMP_PREFIX))
    path = folder / f"trial-{number}-weights.pt"
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    with open_private(path, "wb") as out:
        torch.save(state, out)
    return str(path)
