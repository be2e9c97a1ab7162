"""Trials enqueued from the workbench: a copy of a trial with edited parameters, a retry of a failed one, or
its remedy (engine/remedy.py). Each is a `Plan`: the parameters Optuna's `enqueue_trial` fixes (always
inside the study's search space), the training values the coordinator applies instead of sampling
(`overrides`: a remedy's values outside the space or fixed in [train]) and where the trial came from
(`origin`), both kept as the trial's user attrs so no result is silently mixed with the sampled ones.

A copy's edited values outside the search space are refused: the study's sampler would learn from
values its space cannot produce. A remedy may need such values; they become overrides, and a dimension
that is overridden is not sampled, so the trial's params never claim a value it did not train with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.config import TRAIN_FIELDS, TrainConfig
from engine.remedy import remedy_for
from engine.spec import CategoricalDim, Dim, FloatDim, IntDim, SpecError, StudySpec, parse_spec
from engine.store import Store, StoreError
from engine.store.errors import store_errors

ORIGIN_KEY = "origin"
OVERRIDES_KEY = "overrides"


@dataclass(frozen=True)
class Change:
    name: str
    old: Any
    new: Any
    how: str  # "param", or why it is an override

    def line(self) -> str:
        return f"{self.name}: {value_text(self.old)} -> {value_text(self.new)}  ({self.how})"


@dataclass(frozen=True)
class Plan:
    params: dict[str, Any]  # fixed by enqueue_trial: inside the search space
    overrides: dict[str, Any]  # applied by the coordinator instead of sampling
    origin: str
    changes: tuple[Change, ...] = field(default=())

    def user_attrs(self) -> dict[str, Any]:
        return {ORIGIN_KEY: self.origin, **({OVERRIDES_KEY: self.overrides} if self.overrides else {})}


@dataclass(frozen=True)
class EditableParam:
    name: str
    text: str  # the value as the field shows it
    bounds: str  # what the search space allows, in words


# ---------------------------------------------------------------- values and the search space


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bounds_text(dim: Dim) -> str:
    if isinstance(dim, CategoricalDim):
        return "one of " + ", ".join(value_text(c) for c in dim.choices)
    kind = "float" if isinstance(dim, FloatDim) else "int"
    extra = " log" if dim.log else (f" step {value_text(dim.step)}" if dim.step not in (None, 1) else "")
    return f"{kind} {value_text(dim.low)}..{value_text(dim.high)}{extra}"


def outside(dim: Dim, value: Any) -> str | None:
    """Why `value` is not a value of the dimension (None: it is one), as Optuna's distributions judge it."""
    if isinstance(dim, CategoricalDim):
        ok = any(type(c) is type(value) and c == value for c in dim.choices)
        return None if ok else f"{value_text(value)} is not {bounds_text(dim)}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{value_text(value)} is not a finite number"
    if isinstance(dim, IntDim) and not isinstance(value, int):
        return f"{value_text(value)} is not a whole number"
    if not dim.low <= value <= dim.high:
        return f"{value_text(value)} is outside the search space ({bounds_text(dim)})"
    if dim.step is not None:
        k = (value - dim.low) / dim.step
        if abs(k - round(k)) > 1e-8:
            return f"{value_text(value)} is not on the grid ({bounds_text(dim)})"
    return None


def typed_text(text: str, limit: int = 40) -> str:
    """What the user typed, quoted in a problem: at most `limit` characters (a pasted page stays one line)."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


def parse_value(dim: Dim, text: str) -> Any:
    """The typed value of a field for this dimension; ValueError with what was expected."""
    text = text.strip()
    if isinstance(dim, CategoricalDim):
        for choice in dim.choices:
            if value_text(choice) == text:
                return choice
        raise ValueError(f"{typed_text(text)} is not {bounds_text(dim)}")
    try:
        return int(text) if isinstance(dim, IntDim) else float(text)
    except ValueError:
        expected = "a whole number" if isinstance(dim, IntDim) else "a number"
        raise ValueError(f"{typed_text(text)} is not {expected}") from None


def study_spec(study_attrs: dict[str, Any]) -> StudySpec:
    """The spec the study last ran with (the `spec_toml` it recorded), for its search space."""
    text = study_attrs.get("spec_toml")
    if not isinstance(text, str) or not text:
        raise ValueError("the study recorded no spec (spec_toml): its search space is unknown")
    try:
        return parse_spec(text, "the study's recorded spec")
    except SpecError as err:
        raise ValueError(f"the study's recorded spec does not parse: {err}") from None


def overrides_from(value: Any, spec: StudySpec) -> dict[str, Any]:
    """A trial's `overrides` attr, checked (the store is data): training values or dimensions of the spec,
    each a plain value. ValueError says what is wrong."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"the trial's overrides are not a table of values: {value!r}"[:300])
    for name, item in value.items():
        if name not in TRAIN_FIELDS and name not in spec.space:
            raise ValueError(f"the trial overrides {name!r}, which is neither a training value nor a dimension"[:300])
        if not isinstance(item, bool | int | float | str):
            raise ValueError(f"the trial's override of {name} is not a plain value: {item!r}"[:300])
    return dict(value)


def _checked(spec: StudySpec, plan: Plan) -> Plan:
    """The plan, once its values make a valid training config (ValueError: why not)."""
    try:
        spec.train_config({**plan.params, **plan.overrides})
    except ValueError as err:  # pydantic's ValidationError too
        raise ValueError(f"these values are not a valid training config: {err}") from None
    return plan


# ---------------------------------------------------------------- plans


def editable_params(spec: StudySpec, params: dict[str, Any]) -> list[EditableParam]:
    """The trial's params that are dimensions of the search space, in the spec's order."""
    return [EditableParam(name, value_text(params[name]), bounds_text(dim))
            for name, dim in spec.space.items() if name in params]  # fmt: skip


def copy_plan(spec: StudySpec, number: int, params: dict[str, Any], overrides: dict[str, Any],
              texts: dict[str, str]) -> tuple[Plan | None, list[str]]:  # fmt: skip
    """A copy of trial `number` with the edited fields `texts` (name -> text): the plan, or every problem."""
    problems: list[str] = []
    new = dict(params)
    for name, text in texts.items():
        dim = spec.space.get(name)
        if dim is None:
            problems.append(f"{name}: not a dimension of the study's search space")
            continue
        try:
            value = parse_value(dim, text)
        except ValueError as err:
            problems.append(f"{name}: {err}")
            continue
        why = outside(dim, value)
        if why is not None:
            problems.append(f"{name}: {why}; a copy stays inside the space (a remedy, F, may leave it)")
        new[name] = value
    if problems:
        return None, problems
    changes = tuple(Change(n, params.get(n), new[n], "param") for n in new if new[n] != params.get(n))
    edits = ", ".join(f"{c.name} {value_text(c.old)} -> {value_text(c.new)}" for c in changes)
    origin = f"copy of #{number}" + (f", edited: {edits}" if edits else "")  # what a WAITING trial will run
    try:
        return _checked(spec, Plan(new, dict(overrides), origin, changes)), []
    except ValueError as err:
        return None, [str(err)]


def retry_plan(spec: StudySpec, number: int, params: dict[str, Any], overrides: dict[str, Any]) -> Plan:
    """Trial `number` again, with the same params and overrides; ValueError when the space moved since."""
    for name, value in params.items():
        dim = spec.space.get(name)
        why = "not a dimension of the study's search space any more" if dim is None else outside(dim, value)
        if why is not None:
            raise ValueError(f"trial #{number}'s {name}: {why}")
    return _checked(spec, Plan(dict(params), dict(overrides), f"retry of #{number}"))


def remedy_plan(spec: StudySpec, number: int, params: dict[str, Any], overrides: dict[str, Any],
                findings: list[dict]) -> Plan:  # fmt: skip
    """Trial `number` again with its findings' remedies applied: each new value a param where the search
    space holds it, else an override. ValueError when no remedy applies."""
    defaults = {name: f.default for name, f in TrainConfig.model_fields.items()}
    current = {**defaults, **spec.fixed_train(), **params, **overrides}
    remedy = remedy_for(findings, current)
    if not remedy.changes:
        kinds = ", ".join(str(f.get("kind")) for f in findings) or "no findings"
        raise ValueError(f"trial #{number}: no remedy to apply ({kinds}); see the remedy text in the Detail tab")
    new_params, new_overrides, changes = dict(params), dict(overrides), []
    for name, value in remedy.changes.items():
        dim = spec.space.get(name)
        why = "not a dimension" if dim is None else outside(dim, value)
        if why is None:
            new_params[name] = value
            new_overrides.pop(name, None)
            how = "param"
        else:
            new_overrides[name] = value
            new_params.pop(name, None)  # not sampled either: the params never claim a value it did not use
            how = (f"override: outside the search space ({bounds_text(dim)})" if dim is not None
                   else "override: fixed in [train]" if name in spec.train else "override: not in the spec")  # fmt: skip
        changes.append(Change(name, current.get(name), value, how))
    origin = f"remedy of #{number}: {', '.join(remedy.labels)}"
    return _checked(spec, Plan(new_params, new_overrides, origin, tuple(changes)))


# ---------------------------------------------------------------- into the store


def enqueue(store: Store, study_name: str, plan: Plan) -> int:
    """Enqueue the plan with Optuna's `study.enqueue_trial`; the new WAITING trial's number. A coordinator's
    next ask() takes it before sampling a new trial (the running one too). StoreError where tunetui only
    reads (stores made by Optuna alone, journal files)."""
    import optuna
    from optuna.trial import TrialState

    store.check_writable()
    attrs = plan.user_attrs()
    with store_errors(store.url):
        try:
            study = optuna.load_study(study_name=study_name, storage=store.optuna_storage())
        except KeyError:
            raise StoreError(f"no study named {study_name!r}") from None
        study.enqueue_trial(plan.params, user_attrs=attrs)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return max(t.number for t in waiting
               if t.user_attrs == attrs and t.system_attrs.get("fixed_params") == plan.params)  # fmt: skip
