"""The typed hyperparameters of one trial: fixed [train] values merged with the sampled ones."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_LAYERS = 8
CLASSIFICATION_LOSSES = ("cross_entropy", "bce_logits")  # class labels; report accuracy
REGRESSION_LOSSES = ("mse", "huber")  # float targets; report RMSE, MAE and R2


class TrainConfig(BaseModel):
    """Everything the training loop needs to know about one trial. Validated again after sampling."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    seed: int = 0
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)

    # model
    model: Literal["mlp", "resnet"] = "mlp"
    layers: int = Field(2, ge=0, le=MAX_LAYERS)  # hidden layers (mlp) or residual stages (resnet)
    width: int = Field(128, ge=1, le=65_536)  # every hidden layer, unless width_<i> overrides layer i
    width_1: int | None = Field(None, ge=1, le=65_536)
    width_2: int | None = Field(None, ge=1, le=65_536)
    width_3: int | None = Field(None, ge=1, le=65_536)
    width_4: int | None = Field(None, ge=1, le=65_536)
    width_5: int | None = Field(None, ge=1, le=65_536)
    width_6: int | None = Field(None, ge=1, le=65_536)
    width_7: int | None = Field(None, ge=1, le=65_536)
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # every hidden layer, unless dropout_<i> overrides
    dropout_1: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_2: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_3: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_4: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_5: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_6: float | None = Field(None, ge=0.0, lt=1.0)
    dropout_7: float | None = Field(None, ge=0.0, lt=1.0)
    batch_norm: bool = False
    init: Literal["default", "kaiming", "xavier"] = "default"

    # optimizer
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0, le=100.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)  # decoupled for AdamW, coupled (in the grad) for Adam/SGD
    l2: float = Field(0.0, ge=0.0)  # explicit L2 penalty added to the loss
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)  # classification losses only
    # the loss (engine/trainer/losses.py): cross_entropy and bce_logits (two classes, one logit) classify,
    # mse and huber regress float targets
    loss: Literal["cross_entropy", "mse", "huber", "bce_logits"] = "cross_entropy"
    huber_delta: float = Field(1.0, gt=0.0)  # where huber turns from squared to absolute error
    clip_norm: float | None = Field(None, gt=0.0)

    # schedule
    scheduler: Literal["none", "step", "multistep", "cosine", "cyclic", "onecycle", "plateau"] = "none"
    warmup_epochs: int = Field(0, ge=0)
    step_size: int = Field(10, ge=1)  # epochs, for "step"
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    milestones: list[int] = Field(default_factory=lambda: [30, 60])
    cyclic_mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    cyclic_gamma: float = Field(0.99994, gt=0.0, le=1.0)  # cyclic exp_range: amplitude *= gamma per step
    base_lr: float | None = Field(None, gt=0.0)  # cyclic: lower bound (default lr / 10)
    max_lr: float | None = Field(None, gt=0.0)  # cyclic / onecycle: upper bound (default lr)
    step_size_up: int | None = Field(None, ge=1)  # cyclic: steps per half cycle (default: 2 epochs of steps)
    pct_start: float = Field(0.3, gt=0.0, lt=1.0)  # onecycle
    plateau_patience: int = Field(2, ge=0)
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)

    # stopping
    early_stopping_patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0.0)

    # data and speed
    augment: bool = False
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    compile: bool = False
    channels_last: bool = True  # CUDA conv nets only
    # a task of data sets (LoaderTaskData): processes decoding batches beside the trial (0: in the trial's
    # own process); None: min(4, half the cores)
    loader_workers: int | None = Field(None, ge=0, le=64)

    # what a trial leaves on disk: its final model's state_dict through Optuna's artifact store (engine/weights.py;
    # "best": only the best trial's, or the Pareto front's), and a checkpoint per epoch that a run killed
    # mid-trial resumes from (engine/trainer/checkpoint.py)
    save_weights: Literal["best", "all", "none"] = "best"
    checkpoint: bool = False

    # telemetry
    telemetry: bool = True  # off: no step samples, no layer stats (grad_norm only when clipping)
    step_every: int = Field(10, ge=1)  # keep every k-th optimizer step's sample
    histograms: bool = True
    hist_bins: int = Field(32, ge=4, le=256)
    # the model's inference time each epoch (latency_ms, engine/trainer/measure.py); on by itself when a
    # metric or objective names latency_ms; its parameter count (params) is reported every epoch
    measure_latency: bool = False

    @model_validator(mode="after")
    def _check_ranges(self) -> TrainConfig:
        if self.base_lr is not None and self.max_lr is not None and self.base_lr > self.max_lr:
            raise ValueError(f"base_lr ({self.base_lr}) must not exceed max_lr ({self.max_lr})")
        if self.label_smoothing > 0 and self.loss in REGRESSION_LOSSES:
            raise ValueError(f"label_smoothing applies to class labels, not to loss {self.loss!r}")
        return self

    def hidden_widths(self) -> list[int]:
        """Width of each hidden layer: width_<i> where given, else width."""
        return [
            getattr(self, f"width_{i}", None) or self.width if i else self.width for i in range(self.layers)
        ]

    def hidden_dropouts(self) -> list[float]:
        """Dropout after each hidden layer: dropout_<i> where given, else dropout."""
        out = []
        for i in range(self.layers):
            own = getattr(self, f"dropout_{i}", None) if i else None
            out.append(self.dropout if own is None else own)
        return out


TRAIN_FIELDS = frozenset(TrainConfig.model_fields)
