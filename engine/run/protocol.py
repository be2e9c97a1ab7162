"""The messages on the pipe between the coordinator and a worker: frozen dataclasses, pickled.

Both ends are our own processes (spawned from our own code); no message is ever read from a file or the
store. This module imports nothing heavy: the coordinator never imports torch, so nothing in a message
may be a torch object (a worker sends plain floats and strings).

coordinator -> worker: `RunTrial`, then `StopTrial` only when the answer is "stop" (pruned, or killed by the
user): the worker does not wait for it but reads it at the end of its next epoch, so reporting and asking
the pruner overlap training. `Exit` (or a closed pipe) ends the worker.

worker -> coordinator: `Ready` once, then per trial `Epoch` per epoch, `Log` lines, and one `TrialDone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WEIGHTS_TEMP_PREFIX = "tunetui-weights-"  # a worker's private temporary folder for one trial's weights file


@dataclass(frozen=True)
class RunTrial:
    number: int
    config: dict[str, Any]  # TrainConfig.model_dump()
    task: dict[str, Any]  # TaskSpec.model_dump()
    task_params: dict[str, Any]
    memory_fraction: float | None = None  # the worker caps its GPU memory share with it
    # the trial's private checkpoint folder ([train] checkpoint): resume from the file there, save each epoch
    checkpoint_dir: str | None = None


@dataclass(frozen=True)
class StopTrial:
    number: int


@dataclass(frozen=True)
class Exit:
    pass


@dataclass(frozen=True)
class Ready:
    pid: int
    slot: int
    device: str


@dataclass(frozen=True)
class Epoch:
    number: int
    epoch: int  # 1-based
    metrics: dict[str, float]  # the tt_epoch columns
    steps: list[dict[str, Any]] = field(default_factory=list)  # tt_step rows
    layers: list[dict[str, Any]] = field(default_factory=list)  # tt_layer rows


@dataclass(frozen=True)
class Log:
    number: int
    line: str


@dataclass(frozen=True)
class TrialDone:
    """The trial ended in the worker: trained to the end (`reason` None) or failed (`reason`, `hint`)."""

    number: int
    attrs: dict[str, Any]  # user attrs to record (torch version, train time, test metrics ...)
    findings: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's
    reason: str | None = None  # "nan_loss" | "oom" | "error" | ...
    hint: str = ""
    # the final model's state_dict in the worker's private temporary folder (engine/weights.py): the
    # coordinator uploads it to Optuna's artifact store, or discards it
    weights_file: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None


ToWorker = RunTrial | StopTrial | Exit
FromWorker = Ready | Epoch | Log | TrialDone
