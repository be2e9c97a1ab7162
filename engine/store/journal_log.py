"""Optuna's journal file read as Optuna's own replay reads it, keeping only what tunetui shows, in three steps.

`optuna.storages.JournalStorage` replays every line of a journal when it opens it, copying the trial per
operation (~0.5 ms per trial of 16 lines): 5-10 s for 10,000 trials. This reader applies the same operations
by the same rules (`JournalStorageReplayResult._apply_*` in optuna/storages/journal/_storage.py: a record of
an unknown study or trial, or of a trial already finished, is ignored; a param whose distribution does not
match the study's is ignored; a study name taken twice keeps the first) onto plain records:

1. `read()`: studies, trials, states, values, user attrs: what a row of the table and the studies list
   need. Param and intermediate-value lines (9 in 10 of a study's lines) are only set aside, with their
   place in the file.
2. `apply_params()`: the params set aside, in file order. A param line applies when its trial existed and
   had not finished at that place, which step 1 recorded (`created`, `finished`), so the result is the
   replay's.
3. `apply_intermediate_values()`: the same for `trial.report` values, read with the params (a row counts the
   steps its trial reported) or when a curve is drawn.

The lines Optuna's writer makes (`json.dumps(..., separators=(",", ":"))`, op_code and worker_id first) are
matched with regular expressions instead of being decoded as JSON; any other line goes through `json.loads`.
Later reads start at the byte after the last complete line read, so polling a growing journal reads only
what was appended.

The op codes and fields are Optuna's private format: `check_optuna_version` guards them as it guards the
table layout in optuna_tables.py, and a line this reader does not know raises `NotLean`, on which the caller
reads the file through Optuna's own `JournalStorage` instead."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.store.optuna_tables import check_optuna_version
from engine.store.queries import TrialRow

# Optuna's JournalOperation (optuna/storages/journal/_storage.py)
CREATE_STUDY, DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR = 0, 1, 2, 3
CREATE_TRIAL, SET_TRIAL_PARAM, SET_TRIAL_STATE_VALUES, SET_TRIAL_INTERMEDIATE_VALUE = 4, 5, 6, 7
SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR, DISCARD_TRIALS = 8, 9, 10
# optuna.trial.TrialState and optuna.study.StudyDirection, by value
STATES = {0: "RUNNING", 1: "COMPLETE", 2: "PRUNED", 3: "FAIL", 4: "WAITING"}
FINISHED = frozenset((1, 2, 3))
DIRECTIONS = {0: "NOT_SET", 1: "MINIMIZE", 2: "MAXIMIZE"}
NEVER = float("inf")  # the place in the file where a trial not yet finished finishes

# The lines Optuna's writer makes, field for field; a line they do not match is decoded as JSON. A
# distribution (JSON text inside a JSON string) is taken whole up to the line's end and decoded once per
# distinct text, which also checks it. Param and value lines are found by scanning the text read (`\n`
# then the line), each pattern followed by a catch-all for the same op code's lines in any other form.
_HEAD = rb'\{"op_code":%d,"worker_id":"[^"\\\n]*",'
_NUMBER = rb"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity)"
_STRING = rb'"([^"\\\n]*(?:\\.[^"\\\n]*)*)"'
_TIME = rb'"([^"\\\n]*)"'
_NUMBERS = rb"\[(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity)(?:,(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|NaN|-?Infinity))*\]"
CREATE_TRIAL_LINE = _HEAD % CREATE_TRIAL + rb'"study_id":(\d+),"datetime_start":' + _TIME + rb"\}"
STATE_LINE = (_HEAD % SET_TRIAL_STATE_VALUES + rb'"trial_id":(\d+),"state":(\d),"values":(null|' + _NUMBERS
              + rb')(?:,"datetime_(start|complete)":' + _TIME + rb")?\}")  # fmt: skip
PARAM_LINE = (_HEAD % SET_TRIAL_PARAM + rb'"trial_id":(\d+),"param_name":' + _STRING
              + rb',"param_value_internal":' + _NUMBER + rb',"distribution":"(.*)"\}')  # fmt: skip
VALUE_LINE = (_HEAD % SET_TRIAL_INTERMEDIATE_VALUE + rb'"trial_id":(\d+),"step":(-?\d+),'
              rb'"intermediate_value":' + _NUMBER + rb"\}")  # fmt: skip
PARAM_SCAN = re.compile(rb"\n(?:" + PARAM_LINE + rb'(?=\n)|(\{"op_code":5,[^\n]*))')
PARAM_RE = re.compile(PARAM_LINE)
VALUE_SCAN = re.compile(rb"\n(?:" + VALUE_LINE + rb'(?=\n)|(\{"op_code":7,[^\n]*))')
# step 1's lines: a trial created (groups 1-2), a state set (3-7), or any other line but params and values (8)
TRIAL_SCAN = re.compile(
    rb"\n(?:" + CREATE_TRIAL_LINE + rb"(?=\n)|" + STATE_LINE + rb'(?=\n)|(?!\{"op_code":[57],)([^\n]*))'
)


class NotLean(Exception):
    """A line this reader cannot apply as Optuna would: read the journal through Optuna instead."""


class JournalTrial:
    """One trial as Optuna's replay holds it, minus what tunetui never shows (system attrs)."""

    __slots__ = ("trial_id", "study_id", "number", "state", "values", "params", "distributions", "start",
                 "complete", "user_attrs", "intermediate_values", "created_at", "finished_at", "_row")  # fmt: skip

    def __init__(self, trial_id: int, study_id: int, number: int, created_at: int = -1):
        self.trial_id, self.study_id, self.number = trial_id, study_id, number
        self.state = 0
        self.values: list | None = None
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, Any] = {}
        self.start: float | str | None = None  # ISO text until first asked (`started`)
        self.complete: float | str | None = None
        self.user_attrs: dict[str, Any] = {}
        self.intermediate_values: dict[int, Any] = {}
        # where (byte offset) the lines that created and finished the trial are: what a line set aside
        # in step 1 is checked against in step 2 or 3
        self.created_at, self.finished_at = created_at, NEVER
        self._row: TrialRow | None = None

    @property
    def row_id(self) -> int:
        """A journal numbers its trials from 0, a database from 1, and "above 0" means every trial to the
        readers (`since=0`): the row id is the journal's id + 1."""
        return self.trial_id + 1

    @property
    def started(self) -> float | None:
        """When the trial started, in epoch seconds."""
        if isinstance(self.start, str):
            self.start = _epoch_seconds(self.start)
        return self.start

    @property
    def finished(self) -> float | None:
        if isinstance(self.complete, str):
            self.complete = _epoch_seconds(self.complete)
        return self.complete

    @property
    def row(self) -> TrialRow:
        """The trial as `queries.TrialRow` (kept until the trial changes)."""
        if self._row is None:
            values = tuple(self.values) if self.values is not None else ()
            self._row = TrialRow(
                number=self.number, trial_id=self.trial_id + 1, state=STATES[self.state],
                value=values[0] if len(values) == 1 else None, values=values, params=dict(self.params),
                started=self.started, finished=self.finished, reason=self.user_attrs.get("fail_reason"),
                epochs=0, flags=0, host=self.user_attrs.get("host"), reported=len(self.intermediate_values),
            )  # fmt: skip
        return self._row


class JournalStudy:
    __slots__ = ("study_id", "name", "directions", "user_attrs", "trial_ids", "first_dist")

    def __init__(self, study_id: int, name: str, directions: list[str]):
        self.study_id, self.name, self.directions = study_id, name, directions
        self.user_attrs: dict[str, Any] = {}
        self.trial_ids: list[int] = []
        # param name -> (number, distribution) of the lowest-numbered trial that has the param: what a new
        # value of the param is checked against (Optuna checks the first such trial of the study)
        self.first_dist: dict[str, tuple[int, Any]] = {}


class JournalLog:
    """An Optuna journal file, read so far (`read()` reads what was appended since)."""

    def __init__(self, path: Path):
        check_optuna_version()
        self.path = path
        self.offset = 0  # the byte after the last complete line read
        self.studies: dict[int, JournalStudy] = {}  # the studies that exist (a deleted one is gone)
        self._every_study: dict[int, JournalStudy] = {}  # deleted ones too: their trials still take params
        self.trials: list[JournalTrial] = []  # by trial id, across studies, deleted studies' too
        self._next_study_id = 0
        # what step 1 set aside for steps 2 and 3: the text read (its offset in the file, the text, where
        # its scan starts), and single lines or records found otherwise (offset, line or record)
        self._param_texts: list[tuple[int, bytes, int]] = []
        self._param_lines: list[tuple[int, Any]] = []
        self._value_texts: list[tuple[int, bytes, int]] = []
        self._value_lines: list[tuple[int, Any]] = []
        self._distributions: dict[str | bytes, Any] = {}  # distribution JSON -> Optuna's distribution object
        self._compatibility: dict[tuple[int, int], bool] = {}

    @property
    def params_pending(self) -> bool:
        return bool(self._param_texts or self._param_lines)

    @property
    def values_pending(self) -> bool:
        return bool(self._value_texts or self._value_lines)

    # ------------------------------------------------------------ step 1: the trials
    def read(self) -> bool:
        """Read the complete lines appended since the last read; True when there were any. A line left
        unterminated (being written) waits for the next read."""
        start = max(self.offset - 1, 0)  # the \n that ends the last line read: the scans find lines after one
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < self.offset:
                raise NotLean(f"{self.path} is shorter than what was read: it was rewritten")
            if size == self.offset:
                return False
            f.seek(start)
            data = f.read(size - start)
        end = data.rfind(b"\n") + 1
        if end <= self.offset - start:
            return False
        if self.offset and data[:1] != b"\n":
            raise NotLean(f"{self.path} changed before the end of what was read: it was rewritten")
        with _not_lean():
            self._read_text(start, data[:end], first_line=self.offset == 0)
        self.offset = start + end
        return True

    def _read_text(self, offset: int, text: bytes, first_line: bool) -> None:
        """Step 1 on the text read at `offset`: complete lines, each after a \n but the file's first line."""
        first = 0
        if first_line:
            first = text.index(b"\n")
            self._read_line(offset, text[:first])
        trials, studies = self.trials, self.studies
        for m in TRIAL_SCAN.finditer(text, first, len(text) - 1):  # the last \n ends the last line
            where = offset + m.start() + 1
            study_id, start, trial_id, state, values, which, when, other = m.groups()
            if study_id is not None:  # a trial created: _new_trial, inlined (one per trial)
                study = studies.get(int(study_id))
                if study is not None:
                    trial = JournalTrial(len(trials), study.study_id, len(study.trial_ids), where)
                    trial.start = start.decode()
                    trials.append(trial)
                    study.trial_ids.append(trial.trial_id)
            elif trial_id is not None:
                values = None if values == b"null" else [_number(v) for v in values[1:-1].split(b",")]
                self._set_state(int(trial_id), int(state), values, which, when and when.decode(), where)
            else:
                self._read_line(where, other)
        if first < len(text) - 1:
            self._param_texts.append((offset, text, first))
            self._value_texts.append((offset, text, first))

    def _read_line(self, where: int, line: bytes) -> None:
        """A line of step 1 found otherwise than by the scan: a text's first line, a line in another form."""
        if line.startswith(b'{"op_code":5,'):
            self._param_lines.append((where, line))
        elif line.startswith(b'{"op_code":7,'):
            self._value_lines.append((where, line))
        else:
            self._apply_record(json.loads(line), where)

    def _apply_record(self, log: Any, where: int) -> None:
        """A line in any other form, decoded as JSON: applied by the same rules."""
        op = log["op_code"]
        if op == CREATE_STUDY:
            self._create_study(log["study_name"], log["directions"])
        elif op == DELETE_STUDY:
            if log["study_id"] in self.studies:
                del self.studies[log["study_id"]]
        elif op in (SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR):
            attr = log["user_attr" if op == SET_STUDY_USER_ATTR else "system_attr"]
            if len(attr) != 1:
                raise NotLean("a study attr record sets other than one key")
            study = self.studies.get(log["study_id"])
            if study is not None and op == SET_STUDY_USER_ATTR:
                study.user_attrs.update(attr)
        elif op == CREATE_TRIAL:
            self._create_trial(log, where)
        elif op == SET_TRIAL_PARAM:
            self._param_lines.append((where, log))
        elif op == SET_TRIAL_STATE_VALUES:
            when = log.get("datetime_start") if log["state"] == 0 else log.get("datetime_complete")
            self._set_state(log["trial_id"], log["state"], log["values"], None, when, where)
        elif op == SET_TRIAL_INTERMEDIATE_VALUE:
            self._value_lines.append((where, log))
        elif op in (SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR):
            attr = log["user_attr" if op == SET_TRIAL_USER_ATTR else "system_attr"]
            if len(attr) != 1:
                raise NotLean("a trial attr record sets other than one key")
            trial = self._updatable(log["trial_id"], where)
            if trial is not None and op == SET_TRIAL_USER_ATTR:
                trial.user_attrs.update(attr)
                trial._row = None
        elif op == DISCARD_TRIALS:
            pass  # written only by Rustuna; Optuna's replay skips it too
        else:
            raise NotLean(f"unknown journal operation {op!r}")

    def _create_study(self, name: str, directions: list) -> None:
        if not isinstance(name, str):
            raise NotLean("a study name that is not text")
        if any(s.name == name for s in self.studies.values()):
            return  # another process created it first
        study = JournalStudy(self._next_study_id, name, [DIRECTIONS[d] for d in directions])
        self.studies[study.study_id] = self._every_study[study.study_id] = study
        self._next_study_id += 1

    def _new_trial(self, study_id: int, start: str | None, where: int) -> JournalTrial | None:
        study = self.studies.get(study_id)
        if study is None:
            return None
        trial = JournalTrial(len(self.trials), study_id, len(study.trial_ids), where)
        trial.start = start
        self.trials.append(trial)
        study.trial_ids.append(trial.trial_id)
        return trial

    def _create_trial(self, log: dict, where: int) -> None:
        """A trial created from a record, a template trial's fields included (enqueued, or added whole)."""
        trial = self._new_trial(log["study_id"], log["datetime_start"], where)
        if trial is None:
            return
        trial.state = log.get("state", 0)
        if trial.state not in STATES:
            raise NotLean(f"unknown trial state {trial.state!r}")
        trial.complete = log.get("datetime_complete")
        if trial.state in FINISHED:
            trial.finished_at = where
        if "distributions" in log or "params" in log:  # its params in step 2, in file order with the others
            self._param_lines.append((where, (trial, log)))
        trial.user_attrs = dict(log.get("user_attrs", {}))
        value, values = log.get("value"), log.get("values")
        if value is not None and values is not None:
            raise NotLean("a trial with both value and values")  # Optuna's FrozenTrial refuses it
        trial.values = [value] if value is not None else (list(values) if values is not None else None)
        trial.intermediate_values = {int(k): v for k, v in log.get("intermediate_values", {}).items()}

    def _updatable(self, trial_id: int, where: int) -> JournalTrial | None:
        """The trial `trial_id` when it exists and has not finished at `where` (a line's offset), else None."""
        if not isinstance(trial_id, int) or not 0 <= trial_id < len(self.trials):
            return None
        trial = self.trials[trial_id]
        return trial if trial.created_at < where < trial.finished_at else None

    def _set_state(self, trial_id: int, state: int, values: Any, which: bytes | None, when: str | None,
                   where: int) -> None:  # fmt: skip
        if state not in STATES:
            raise NotLean(f"unknown trial state {state!r}")
        trial = self._updatable(trial_id, where)
        if trial is None or (state == 0 and trial.state == 0):
            return  # a RUNNING trial taken by another process
        if state == 0:
            if which not in (None, b"start") or when is None:
                raise NotLean("a RUNNING record without its start time")
            trial.start = when
        elif state in FINISHED:
            if which not in (None, b"complete") or when is None:
                raise NotLean("a finished trial's record without its completion time")
            trial.complete, trial.finished_at = when, where
        trial.state = state
        if values is not None:
            trial.values = list(values)
        trial._row = None

    # ------------------------------------------------------------ step 2: params
    def apply_params(self) -> None:
        """Apply the param lines set aside by `read()`, in file order."""
        with _not_lean():
            for where, item in _in_file_order(PARAM_SCAN, self._param_texts, self._param_lines):
                if isinstance(item, re.Match) and item[1] is not None:
                    self._set_param(int(item[1]), _string(item[2]), _number(item[3]), item[4], where)
                    continue
                if isinstance(item, tuple):  # a template trial's params
                    self._template_params(*item)
                    continue
                if isinstance(item, re.Match):  # a param line in another form
                    item = item[5]
                if isinstance(item, bytes):
                    if (m := PARAM_RE.fullmatch(item)) is not None:
                        self._set_param(int(m[1]), _string(m[2]), _number(m[3]), m[4], where)
                        continue
                    item = json.loads(item)
                if item["op_code"] != SET_TRIAL_PARAM:
                    raise NotLean(f"a line of op code {SET_TRIAL_PARAM} that is not a param record")
                self._set_param(item["trial_id"], item["param_name"], item["param_value_internal"],
                                item["distribution"], where)  # fmt: skip
        self._param_texts, self._param_lines = [], []

    def _template_params(self, trial: JournalTrial, log: dict) -> None:
        distributions = {k: self._distribution(v) for k, v in log.get("distributions", {}).items()}
        trial.distributions = distributions
        trial.params = {k: distributions[k].to_external_repr(p) for k, p in log.get("params", {}).items()}
        study = self._every_study[trial.study_id]
        for name in trial.params:
            study.first_dist.setdefault(name, (trial.number, distributions[name]))
        trial._row = None

    def _set_param(self, trial_id: int, name: str, internal: Any, distribution_json: str | bytes,
                   where: int) -> None:  # fmt: skip
        trial = self._updatable(trial_id, where)
        if trial is None:
            return
        distribution = self._distribution(distribution_json)
        study = self._every_study[trial.study_id]  # a deleted study's trials still take params in Optuna
        first = study.first_dist.get(name)
        if (
            first is not None
            and first[1] is not distribution
            and not self._compatible(first[1], distribution)
        ):
            return  # Optuna ignores a param another process set with an incompatible distribution
        trial.params[name] = distribution.to_external_repr(internal)
        trial.distributions[name] = distribution
        if first is None or trial.number <= first[0]:
            study.first_dist[name] = (trial.number, distribution)
        trial._row = None

    def _compatible(self, old: Any, new: Any) -> bool:
        """Optuna's check of a param's distribution against the study's, once per pair of distributions."""
        key = (id(old), id(new))  # both live in self._distributions for good
        if key not in self._compatibility:
            from optuna.distributions import check_distribution_compatibility

            try:
                check_distribution_compatibility(old, new)
                self._compatibility[key] = True
            except ValueError:
                self._compatibility[key] = False
        return self._compatibility[key]

    def _distribution(self, text: str | bytes) -> Any:
        """Optuna's distribution of a record's JSON text (str), or of the text as it stands between quotes in
        the line (bytes, still escaped), made once per text."""
        distribution = self._distributions.get(text)
        if distribution is None:
            from optuna.distributions import json_to_distribution

            plain = _string(text) if isinstance(text, bytes) else text
            distribution = self._distributions[text] = json_to_distribution(plain)
        return distribution

    # ------------------------------------------------------------ step 3: intermediate values
    def apply_intermediate_values(self) -> None:
        """Apply the `trial.report` lines set aside by `read()`, in file order."""
        with _not_lean():
            trials, count = self.trials, len(self.trials)
            for where, item in _in_file_order(VALUE_SCAN, self._value_texts, self._value_lines):
                if item.__class__ is re.Match and item[1] is not None:  # the common line, inlined
                    trial_id, step, value = item.group(1, 2, 3)
                    trial = trials[int(trial_id)] if int(trial_id) < count else None
                    if trial is not None and trial.created_at < where < trial.finished_at:
                        trial.intermediate_values[int(step)] = _number(value)
                        trial._row = None  # its count of reported steps changed
                    continue
                else:
                    if isinstance(item, re.Match):  # a value line in another form
                        item = item[4]
                    if isinstance(item, bytes):
                        item = json.loads(item)
                    if item["op_code"] != SET_TRIAL_INTERMEDIATE_VALUE:
                        raise NotLean(f"a line of op code {SET_TRIAL_INTERMEDIATE_VALUE} that is not a value")
                    trial_id, step, value = item["trial_id"], item["step"], item["intermediate_value"]
                trial = self._updatable(trial_id, where)
                if trial is not None:
                    trial.intermediate_values[step] = value
                    trial._row = None
        self._value_texts, self._value_lines = [], []

    # ------------------------------------------------------------ what the store asks
    def study_trials(self, study_id: int) -> list[JournalTrial]:
        study = self.studies.get(study_id)
        return [self.trials[i] for i in study.trial_ids] if study is not None else []


def _in_file_order(scan: re.Pattern, texts: list[tuple[int, bytes, int]],
                   lines: list[tuple[int, Any]]) -> Iterator[tuple[int, Any]]:  # fmt: skip
    """(offset in the file, match) of every line `scan` finds in the texts, and the single lines, in file order."""
    found = ((offset + m.start() + 1, m) for offset, text, start in texts for m in scan.finditer(text, start))
    if not lines:
        return found
    return iter(sorted([*found, *lines], key=lambda item: item[0]))


@contextmanager
def _not_lean() -> Iterator[None]:
    """Any failure to read a line as this reader expects, as NotLean."""
    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise NotLean(
            f"a line is not a journal record this reader knows ({type(err).__name__}: {err})"
        ) from None


def _number(token: bytes) -> int | float:
    """A JSON number as json.loads gives it: an int without a fraction or exponent, else a float."""
    return int(token) if token.lstrip(b"-").isdigit() else float(token)


def _string(token: bytes) -> str:
    """A JSON string's contents (between its quotes) as text."""
    return json.loads(b'"' + token + b'"') if b"\\" in token or b'"' in token else token.decode()


def _epoch_seconds(text: str) -> float:
    """ISO text as Optuna writes it (with its zone; a naive time is local) as epoch seconds. Optuna's replay
    makes it a naive local time first, which only differs in the repeated hour of a DST change."""
    return datetime.fromisoformat(text).timestamp()
