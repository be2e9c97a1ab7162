"""The [study] section of a spec: the study's name, what it optimizes (one metric and direction, or a list of
objectives: a multi-objective study) and how a trial's value is taken; and which metrics a loss reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.spec_text import SpecProblems

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
METRIC_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # a name a user's own loop reports (`val_rmse`)
# what the engine's own loop reports, by the kind of its loss ([train] loss)
OBJECTIVE_METRICS = {
    "classification": ("val_acc", "val_loss", "train_acc", "train_loss"),
    "regression": ("val_rmse", "val_mae", "val_r2", "val_loss", "train_rmse", "train_mae", "train_r2", "train_loss"),
}
# what the engine measures of the model, whatever its loss (engine/trainer/measure.py): the parameter count
# every epoch, the inference latency only when a metric or objective names it (or [train] measure_latency)
MODEL_MEASURES = ("params", "latency_ms")
MAX_OBJECTIVES = 8


class Strict(BaseModel):
    # strict: a TOML value has a real type, so `n_trials = true` or `epochs = "3"` is refused, not read as 1 or 3
    # (an integer still fills a float field: `lr = 1` is 1.0)
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())


class Objective(Strict):
    metric: str = Field(pattern=METRIC_PATTERN)
    direction: Literal["maximize", "minimize"]


class StudySection(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    direction: Literal["maximize", "minimize"] = "maximize"
    # one of OBJECTIVE_METRICS of the loss's kind or MODEL_MEASURES, or with [task] loop any name the loop reports
    metric: str = Field("val_acc", pattern=METRIC_PATTERN)
    # several objectives instead of metric/direction: Optuna's multi-objective study (no pruning)
    objectives: list[Objective] | None = Field(None, max_length=MAX_OBJECTIVES)
    # how a trial's value is taken (engine/value.py); mean_last_3 by measurement (docs/benchmarks.md)
    value: Literal["best", "last", "mean_last_3"] = "mean_last_3"
    seed: int = 0
    description: str = ""
    retry_failed: bool = False  # re-enqueue a trial left orphaned by a crashed coordinator

    @model_validator(mode="after")
    def _one_way_to_say_the_objective(self) -> StudySection:
        if self.objectives is None:
            return self
        problems: list[tuple[tuple[Any, ...], str]] = []
        if len(self.objectives) < 2:
            problems.append((("study", "objectives"), "list two or more objectives (one objective is `metric` and "
                             f"`direction`); got {len(self.objectives)}"))  # fmt: skip
        for key in ("metric", "direction"):
            if key in self.model_fields_set:
                problems.append((("study", key), f"give `objectives` or `metric`/`direction`, not both: `{key}` "
                                 "is one objective's, and `objectives` lists each one's metric and direction"))  # fmt: skip
        seen: set[str] = set()
        for i, objective in enumerate(self.objectives):
            if objective.metric in seen:
                problems.append((("study", "objectives", i, "metric"), f"{objective.metric!r} is named twice: each "
                                 "objective is a different metric"))  # fmt: skip
            seen.add(objective.metric)
        if problems:
            raise SpecProblems(problems)
        return self

    @property
    def metrics(self) -> list[str]:
        """The metric of each objective, in order (one for a single-objective study)."""
        return [o.metric for o in self.objectives] if self.objectives else [self.metric]

    @property
    def directions(self) -> list[str]:
        """The direction of each objective, in order."""
        return [o.direction for o in self.objectives] if self.objectives else [self.direction]

    def metric_paths(self) -> list[tuple[tuple[Any, ...], str]]:
        """(field path, metric) of each objective, for problems that name one."""
        if self.objectives is None:
            return [(("study", "metric"), self.metric)]
        return [(("study", "objectives", i, "metric"), o.metric) for i, o in enumerate(self.objectives)]

    def summary(self) -> str:
        """`maximize val_acc`, or `maximize val_acc, minimize params` (validate, the Launch screen)."""
        return ", ".join(f"{d} {m}" for d, m in zip(self.directions, self.metrics, strict=True))
