"""A study spec: a TOML file parsed into pydantic models; engine/spec_text.py reads the file and words the
problems (file, line, field path)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from engine.config import CLASSIFICATION_LOSSES, REGRESSION_LOSSES, TRAIN_FIELDS, TrainConfig
from engine.spec_study import (  # noqa: F401 - NAME_PATTERN, METRIC_PATTERN, Objective: the spec's names
    METRIC_PATTERN,
    MODEL_MEASURES,
    NAME_PATTERN,
    OBJECTIVE_METRICS,
    Objective,
    Strict,
    StudySection,
)
from engine.spec_text import (
    SpecError,
    SpecIssue,
    SpecProblems,
    did_you_mean,
    issue_at,
    load_toml,
    pydantic_message,
    read_spec_text,
)

LOSSES_OF = {"classification": CLASSIFICATION_LOSSES, "regression": REGRESSION_LOSSES}
REGRESSION_TASKS = ("diabetes",)  # built-in tasks with float targets; the others classify
BINARY_TASKS = ("breast_cancer",)  # built-in tasks with two classes (bce_logits)
LOOP_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"  # "module:function"
# samplers Optuna refuses for several objectives
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)


# ---------------------------------------------------------------- sections


class BudgetSection(Strict):
    n_trials: int | None = Field(20, ge=1, le=1_000_000)
    timeout_s: float | None = Field(None, gt=0)
    trial_timeout_s: float | None = Field(None, gt=0)
    # opt-in: stop the run once Optuna's terminator estimate of the improvement left falls below this
    # (engine/terminator.py), after at least `stop_min_trials` complete trials (Optuna's Terminator waits 20)
    stop_when_improvement_below: float | None = Field(None, gt=0, allow_inf_nan=False)  # inf: stop at once
    stop_min_trials: int = Field(20, ge=3)


class TPESampler(Strict):
    kind: Literal["tpe"]
    n_startup_trials: int = Field(10, ge=0)
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = True  # parallel workers should not all sample the same point


class RandomSampler(Strict):
    kind: Literal["random"]


class GridSampler(Strict):
    kind: Literal["grid"]


class CmaEsSampler(Strict):
    kind: Literal["cmaes"]
    n_startup_trials: int = Field(1, ge=0)
    sigma0: float | None = Field(None, gt=0)


class QMCSampler(Strict):
    kind: Literal["qmc"]
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = True


class GPSampler(Strict):
    kind: Literal["gp"]
    n_startup_trials: int = Field(10, ge=0)


Sampler = Annotated[
    TPESampler | RandomSampler | GridSampler | CmaEsSampler | QMCSampler | GPSampler,
    Field(discriminator="kind"),
]


class PrunerSection(Strict):
    kind: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(5, ge=0)
    n_warmup_steps: int = Field(2, ge=0)
    interval_steps: int = Field(1, ge=1)
    percentile: float = Field(25.0, gt=0, lt=100)
    min_resource: int = Field(1, ge=1)
    max_resource: int | None = Field(None, ge=1)  # hyperband; default: train.epochs
    reduction_factor: int = Field(3, ge=2)


class TaskSpec(Strict):
    name: str = "digits"  # built-in task, or "module:function" for a user task
    data_dir: str = "~/.cache/tunetui/data"
    download: bool = False  # only then may a task reach the network
    val_fraction: float = Field(0.2, gt=0, lt=1)
    subset: int | None = Field(None, ge=1)  # use only the first N training samples
    params: dict[str, Any] = Field(default_factory=dict)  # passed to user tasks
    # the user's own training loop, "module:function" (engine/trainer/context.py); it loads its own data
    loop: str | None = Field(None, pattern=LOOP_PATTERN)

    @model_validator(mode="after")
    def _loop_or_name(self) -> TaskSpec:
        # compared with the default, not model_fields_set: a worker validates a dump, which has every field
        if self.loop is not None and "name" in self.model_fields_set:  # `name = "digits"` too
            raise ValueError("a task with its own loop loads its own data: give `loop` or `name`, not both")
        return self

    @property
    def label(self) -> str:
        """What trains: `loop module:function` or the task's name (for summaries)."""
        return f"loop {self.loop}" if self.loop is not None else f"task {self.name}"

    @property
    def is_user_task(self) -> bool:
        return ":" in self.name or self.loop is not None


class DevicesSection(Strict):
    device: str = "auto"  # auto | cpu | cuda | cuda:0,cuda:1
    workers: int | None = Field(None, ge=1, le=256)  # default: one per GPU slot, or 1 on CPU
    trials_per_gpu: int = Field(1, ge=1, le=64)
    # a worker's share of its GPU's memory (torch.cuda.set_per_process_memory_fraction); None: no cap
    memory_fraction: float | None = Field(None, gt=0, le=1)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+(,\s*cuda:\d+)*", value):
            return value
        raise ValueError("expected auto, cpu, cuda, or a list like cuda:0,cuda:1")


class StorageSection(Strict):
    # default: sqlite:///.tunetui/tunetui.db (or TUNETUI_STORAGE); "" is refused, not read as the default
    url: str | None = Field(None, min_length=1)
    # the folder of the trials' saved weights (Optuna's artifact store); default beside the store (engine/weights.py)
    artifacts: str | None = Field(None, min_length=1)


# ---------------------------------------------------------------- search space

Scalar = bool | int | float | str
Condition = Scalar | list[Scalar] | dict[Literal["eq", "ne", "lt", "le", "gt", "ge", "in"], Any]


class Dimension(Strict):
    when: dict[str, Condition] = Field(default_factory=dict)  # sampled only when every condition holds

    def holds(self, params: dict[str, Any]) -> bool:
        return all(name in params and condition_holds(cond, params[name]) for name, cond in self.when.items())


class FloatDim(Dimension):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> FloatDim:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna's rule)")
        return self

    def grid_values(self) -> list[float] | None:
        if self.step is None:
            return None
        count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]


class IntDim(Dimension):
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> IntDim:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low < 1:
            raise ValueError(f"log scale needs low >= 1 (got {self.low})")
        if self.log and self.step != 1:
            raise ValueError("log and step cannot be combined (Optuna's rule)")
        return self

    def grid_values(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


class CategoricalDim(Dimension):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, choices: list[Scalar]) -> list[Scalar]:
        if len({(type(c), c) for c in choices}) != len(choices):
            raise ValueError("choices must be unique")
        return choices

    def grid_values(self) -> list[Scalar]:
        return list(self.choices)


Dim = Annotated[FloatDim | IntDim | CategoricalDim, Field(discriminator="type")]


def key_problems(train: dict[str, Any], when: dict[str, Any], user_task: bool) -> list[tuple[tuple[Any, ...], str]]:
    """Unknown training parameters (with the closest known name) and `when` references that are not
    declared above: checked on the validated spec, and on the raw TOML when other fields are wrong too."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    for section, names in (("train", train), ("space", when)):
        for name in names:
            if name not in TRAIN_FIELDS and not user_task:
                problems.append(((section, name), f"unknown training parameter '{name}'{did_you_mean(name, TRAIN_FIELDS)}"))
    seen: list[str] = []
    for name, conditions in when.items():
        for ref in conditions if isinstance(conditions, dict) else ():
            if ref not in seen:
                problems.append((("space", name, "when", ref), f"'{ref}' must be a dimension declared above '{name}'"))
        seen.append(name)
    return problems


def train_value_problems(fixed: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """The fixed [train] values TrainConfig refuses, strictly: a spec's values have TOML's types (`epochs =
    "3"` is a string, `lr = true` a boolean), as in the sections (spec_study.Strict)."""
    try:
        TrainConfig.model_validate({k: v for k, v in fixed.items() if k in TRAIN_FIELDS}, strict=True)
    except ValidationError as err:
        return [(("train", *e["loc"]), pydantic_message(e)) for e in err.errors()]
    return []


def condition_holds(condition: Any, value: Any) -> bool:
    """A `when` condition: a scalar (equal), a list (one of), or a table of comparisons."""
    if isinstance(condition, list):
        return value in condition
    if not isinstance(condition, dict):
        return value == condition
    checks = {
        "eq": lambda v, c: v == c,
        "ne": lambda v, c: v != c,
        "lt": lambda v, c: v < c,
        "le": lambda v, c: v <= c,
        "gt": lambda v, c: v > c,
        "ge": lambda v, c: v >= c,
        "in": lambda v, c: v in c,
    }
    try:
        return all(checks[op](value, operand) for op, operand in condition.items())
    except TypeError:
        return False


# ---------------------------------------------------------------- the study


class StudySpec(Strict):
    study: StudySection
    budget: BudgetSection = Field(default_factory=BudgetSection)
    sampler: Sampler = Field(default_factory=lambda: TPESampler(kind="tpe"))
    pruner: PrunerSection = Field(default_factory=PrunerSection)
    task: TaskSpec = Field(default_factory=TaskSpec)
    train: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Dim] = Field(default_factory=dict)
    devices: DevicesSection = Field(default_factory=DevicesSection)
    storage: StorageSection = Field(default_factory=StorageSection)

    @model_validator(mode="after")
    def _space_fits_training(self) -> StudySpec:
        problems = key_problems(self.train, {name: dim.when for name, dim in self.space.items()},
                                self.task.is_user_task)  # fmt: skip
        if self.task.loop is None:
            problems += self._loss_problems()
        elif self.train.get("checkpoint") is True:  # accepted, it let a user count on a resume that never comes
            problems.append((("train", "checkpoint"), "a loop of its own ([task] loop) is not checkpointed: the "
                             "engine saves and resumes only its own loop; leave checkpoint out"))  # fmt: skip
        if self.study.objectives is not None:
            problems += self._multi_objective_problems()
        if isinstance(self.sampler, GridSampler):
            for name, dim in self.space.items():
                if dim.grid_values() is None:
                    problems.append(
                        (("space", name, "step"), "the grid sampler needs a step on float dimensions")
                    )
        if not problems:
            problems = self._extremes_fit()
        if problems:
            raise SpecProblems(problems)
        return self

    def losses(self) -> list[str]:
        """The losses trials may train with: the sampled choices, else [train] loss (or the default)."""
        dim = self.space.get("loss")
        if isinstance(dim, CategoricalDim):
            return [str(choice) for choice in dim.choices]
        return [str(self.train.get("loss", TrainConfig.model_fields["loss"].default))]

    def _loss_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        """The engine's loop: the loss fits the built-in task, and the metric is one the loss reports."""
        losses = self.losses()
        where = ("space", "loss", "choices") if "loss" in self.space else ("train", "loss") if "loss" in self.train else ("task", "name")  # fmt: skip
        kinds = {kind for kind, names in LOSSES_OF.items() if set(losses) & set(names)}
        if len(kinds) != 1:  # a loss outside both lists is TrainConfig's error, found elsewhere
            return [(where, "mixes classification and regression losses: a study's metric is of one kind")] if kinds else []
        kind = kinds.pop()
        problems = []
        if not self.task.is_user_task:
            name = self.task.name
            if (name in REGRESSION_TASKS) != (kind == "regression"):
                task_kind = "a regression (float targets)" if name in REGRESSION_TASKS else "a classification"
                expected = " or ".join(LOSSES_OF["regression" if name in REGRESSION_TASKS else "classification"])
                problems.append((where, f"task {name!r} is {task_kind}: expected loss {expected} (got "
                                 f"{', '.join(losses)})"))  # fmt: skip
            elif "bce_logits" in losses and name not in BINARY_TASKS:
                problems.append((where, f"bce_logits needs a task with two classes ({', '.join(BINARY_TASKS)}, or "
                                 f"one of your own); {name!r} has more: use cross_entropy"))  # fmt: skip
        for path, metric in self.study.metric_paths():
            if metric in OBJECTIVE_METRICS[kind] or metric in MODEL_MEASURES:
                continue
            other = next(k for k in OBJECTIVE_METRICS if k != kind)
            hint = (f"{metric} is reported by {other} losses ({', '.join(LOSSES_OF[other])})"
                    if metric in OBJECTIVE_METRICS[other] else "any other name needs a loop of your own ([task] loop)")  # fmt: skip
            problems.append((path, f"expected one of {', '.join(OBJECTIVE_METRICS[kind] + MODEL_MEASURES)} for a "
                             f"{kind} loss ({', '.join(losses)}) (got {metric!r}); {hint}"))  # fmt: skip
        return problems

    def _multi_objective_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        """Optuna's rules for several objectives: no pruning (a trial reports no single value per epoch) and a
        sampler that handles several. Pruning is turned off for a spec that does not name a pruner."""
        problems = []
        if "pruner" not in self.model_fields_set:
            self.pruner = PrunerSection(kind="none")
        elif self.pruner.kind != "none":
            problems.append((("pruner", "kind"), f"a study with several objectives cannot prune (Optuna's pruners "
                             f"compare one value per epoch): set kind = \"none\" or leave [pruner] out (got "
                             f"{self.pruner.kind!r})"))  # fmt: skip
        if self.budget.stop_when_improvement_below is not None:
            problems.append((("budget", "stop_when_improvement_below"), "Optuna's terminator estimates the "
                             "improvement left in one objective: leave it out for several"))  # fmt: skip
        if self.sampler.kind in SINGLE_OBJECTIVE_SAMPLERS:
            problems.append((("sampler", "kind"), f"the {self.sampler.kind} sampler optimizes one objective: use tpe, "
                             "random, grid, qmc or gp for several"))  # fmt: skip
        return problems

    def _extremes_fit(self) -> list[tuple[tuple[Any, ...], str]]:
        """Each dimension's bounds (and choices) must be values the training config accepts."""
        fixed = self.fixed_train()
        problems = train_value_problems(fixed)
        if problems:
            return problems
        for name, dim in self.space.items():
            if name not in TRAIN_FIELDS:
                continue
            probes = (
                [("choices", c) for c in dim.choices]
                if isinstance(dim, CategoricalDim)
                else [("low", dim.low), ("high", dim.high)]
            )
            for where, value in probes:
                try:
                    TrainConfig.model_validate({**fixed, name: value}, strict=True)
                except ValidationError as err:
                    msg = "; ".join(pydantic_message(e, show_input=False) for e in err.errors())
                    problems.append((("space", name, where), f"{value!r} is not a valid {name}: {msg}"))
                    break
        return problems

    def fixed_train(self) -> dict[str, Any]:
        """The [train] table with the study seed filled in; user-task extras removed."""
        fixed = {k: v for k, v in self.train.items() if k in TRAIN_FIELDS}
        fixed.setdefault("seed", self.study.seed)
        if "latency_ms" in self.study.metrics:  # timed only when asked: it costs forward passes each epoch
            fixed["measure_latency"] = True
        return fixed

    def train_config(self, params: dict[str, Any], seed: int | None = None) -> TrainConfig:
        """The trial's TrainConfig: fixed values, overridden by sampled ones."""
        merged = {**self.fixed_train(), **{k: v for k, v in params.items() if k in TRAIN_FIELDS}}
        if seed is not None:
            merged["seed"] = seed
        return TrainConfig(**merged)

    def task_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """A user task's parameters: [task.params], extra [train] keys, then sampled ones.

        A loop of its own trains itself, so it gets every [train] key and every sampled value, and the
        study's metrics (as "__metrics__": its worker checks each report for them)."""
        if self.task.loop is not None:
            return {**self.task.params, **self.train, **params, "__metrics__": self.study.metrics}
        extra_fixed = {k: v for k, v in self.train.items() if k not in TRAIN_FIELDS}
        sampled = {k: v for k, v in params.items() if k not in TRAIN_FIELDS}
        return {**self.task.params, **extra_fixed, **sampled}


# ---------------------------------------------------------------- loading


def parse_spec(text: str, source: str = "<spec>") -> StudySpec:
    """Parse TOML text into a StudySpec, or raise SpecError listing every problem."""
    data = load_toml(text, source)
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        issues = _issues_from(err, text)
        if not any(isinstance(e.get("ctx", {}).get("error"), SpecProblems) for e in err.errors()):
            issues += _raw_key_issues(data, text, {issue.path for issue in issues})
        issues.sort(key=lambda issue: issue.line or 0)  # in reading order (stable: ties keep theirs)
        raise SpecError(source, issues) from None


def _raw_key_issues(data: dict[str, Any], text: str, known: set[str]) -> list[SpecIssue]:
    """The key problems (and wrong [train] values) the model validator would find, when field errors stopped it
    from running."""
    train, space, task = (data.get(k) for k in ("train", "space", "task"))
    train = train if isinstance(train, dict) else {}
    space = space if isinstance(space, dict) else {}
    user_task = isinstance(task, dict) and (":" in str(task.get("name", "")) or "loop" in task)
    when = {name: dim.get("when") if isinstance(dim, dict) else None for name, dim in space.items()}
    problems = key_problems(train, when, user_task) + train_value_problems(train)
    issues = [issue_at(path, message, text) for path, message in problems]
    return [issue for issue in issues if issue.path not in known]


def load_spec(path: str | Path) -> StudySpec:
    """Read and parse a spec file; unreadable files become a SpecError too."""
    return parse_spec(read_spec_text(path), str(Path(path)))


def _issues_from(err: ValidationError, text: str) -> list[SpecIssue]:
    issues = []
    for e in err.errors():
        carried = e.get("ctx", {}).get("error")
        if isinstance(carried, SpecProblems):
            for path, message in carried.problems:
                issues.append(issue_at(path, message, text))
            continue
        loc = tuple(part for part in e["loc"] if not _is_union_tag(part))
        message = pydantic_message(e)
        if e["type"] == "extra_forbidden" and (model := _model_at(e["loc"][:-1])) is not None:
            message += did_you_mean(e["loc"][-1], model.model_fields)
        issues.append(issue_at(loc, message, text))
    return issues


# pydantic puts the discriminator's value ("float", "tpe") into loc for tagged unions
_UNION_TAGS: dict[str, type[BaseModel]] = {
    "float": FloatDim, "int": IntDim, "categorical": CategoricalDim, "tpe": TPESampler,
    "random": RandomSampler, "grid": GridSampler, "cmaes": CmaEsSampler, "qmc": QMCSampler, "gp": GPSampler,
}  # fmt: skip


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and part in _UNION_TAGS


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose keys belong at a pydantic error location (for "did you mean")."""
    model: type[BaseModel] | None = StudySpec
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if _is_union_tag(part):
            model = _UNION_TAGS[part]
            continue
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        if get_origin(annotation) is dict:
            if parts:
                parts.pop(0)  # the table's own key, e.g. a dimension's name
            annotation = get_args(annotation)[1]
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model
