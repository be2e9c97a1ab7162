"""Starting a study: the spec as a run sees it (`--set` overrides applied), the checks made before anything
starts, and the detached coordinator (its own session; the storage URL in its environment, never its argv;
up once its heartbeat is in the store). One path for `tunetui run [--detach]`, the TUI's Launch screen
and its `s` (start again). Imports neither torch nor textual."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.isolation import STORAGE_ENV, python_path
from engine.text import safe, safe_lines

MAX_TRIALS = 1_000_000  # the spec's own limit on budget.n_trials
DETACH_WAIT_S = 60.0  # a detached coordinator must be up (heartbeat written) within this, else it failed
LOG_TAIL_LINES = 10


class UsageError(Exception):
    """Bad input from the user: nothing was started (the CLI's exit code 2)."""


def whole_number(text: str) -> int:
    """A count a user typed (`--trials`, `--workers`, `--steps`, the Launch screen's fields): ASCII digits,
    so `1e3`, `nan`, `1.5` and `1_000` are refused (ValueError saying so) rather than read; the range is the
    caller's to check."""
    text = text.strip()
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError(f"expected a whole number, e.g. 3 (got {text[:40]!r})")
    if len(text) > 40:  # int() of thousands of digits is refused; the range check says the rest
        raise ValueError(f"a number of {len(text)} digits is far too large")
    return int(text)


@dataclass(frozen=True)
class RunRequest:
    """What `tunetui run` is asked to start (its flags; the TUI's Launch form fills the same)."""

    spec: str | Path
    trials: int | None = None
    timeout: float | None = None
    device: str | None = None
    workers: int | None = None
    study_name: str | None = None
    overrides: Sequence[str] = ()  # --set KEY=VALUE
    graceful: bool = False


@dataclass(frozen=True)
class Prepared:
    """A run that passed every check: its spec, the spec's text for the store, the storage URL."""

    spec: Any  # engine.spec.StudySpec
    text: str
    url: str


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> None:
    """--set a.b=VALUE: VALUE in TOML syntax (a bare word is taken as a string)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        except RecursionError:
            raise UsageError(f"--set {key}: the value is nested too deeply") from None
        parts = [p.strip() for p in key.split(".")]
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {key}: {part} is not a table")
        node[parts[-1]] = value


def load_run_spec(request: RunRequest):
    """The spec as this run sees it (--set and --study-name applied), plus its text for the store."""
    import tomli_w

    from engine.spec import parse_spec
    from engine.spec_text import check_depth, load_toml, read_spec_text

    path = Path(request.spec)
    text = read_spec_text(path)
    spec = parse_spec(text, str(path))  # the plain spec's errors first, with line numbers
    if not request.overrides and request.study_name is None:
        return spec, text
    data = load_toml(text, str(path))
    apply_overrides(data, request.overrides)
    if request.study_name is not None:
        data.setdefault("study", {})["name"] = request.study_name
    check_depth(data, f"{path} (with --set)")
    text = tomli_w.dumps(data)
    return parse_spec(text, f"{path} (with --set/--study-name)"), text


def check_run_numbers(request: RunRequest) -> None:
    """The numbers and names given to `run`, before anything is read or started."""
    from engine.spec import NAME_PATTERN

    if request.trials is not None and not 1 <= request.trials <= MAX_TRIALS:
        raise UsageError(f"--trials must be between 1 and {MAX_TRIALS:,} (got {request.trials})")
    if request.timeout is not None and not (math.isfinite(request.timeout) and request.timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds (got {request.timeout})")
    if request.workers is not None and request.workers < 1:
        raise UsageError(f"--workers must be at least 1 (got {request.workers})")
    if request.study_name is not None and not re.fullmatch(NAME_PATTERN, request.study_name):
        raise UsageError(
            f"--study-name {request.study_name!r}: a study name is 1-100 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


def check_device(device: str | None) -> None:
    """--device reads as [devices] device does (auto, cpu, cuda, cuda:0,cuda:1)."""
    if not device:
        return
    from engine.spec import DevicesSection

    try:
        DevicesSection(device=device)
    except ValueError as err:
        raise UsageError(f"--device: {err.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def check_machine(spec, device: str | None, workers: int | None) -> int:
    """The device must be here and the workers must fit this machine (engine/resources.py)."""
    from engine.resources import ResourceError, check_run

    try:
        return check_run(
            device or spec.devices.device, workers or spec.devices.workers, spec.devices.trials_per_gpu,
            device_label="--device" if device else "[devices] device",
            workers_label="--workers" if workers else "[devices] workers",
        )  # fmt: skip
    except ResourceError as err:
        raise UsageError(str(err)) from None


def refuse_another_study(url: str, spec) -> None:
    """A spec whose direction, metric, value rule or search space differs from the existing study's would
    mix incomparable values into it: refuse (exit 2) before anything is started or written."""
    from engine.identity import ATTR, differences, known_identity, study_identity
    from engine.store import Store, StoreError, sqlite_path

    db = sqlite_path(url)
    if db is not None and not db.is_file():
        return  # a new store: a new study
    try:
        store = Store(url, read_only=True)
    except StoreError:
        return  # the run itself names what is wrong with the store
    try:
        study_id = store.study_id(spec.study.name)
        if study_id is None:
            return
        attrs = store.study_attrs(study_id)
        recorded = known_identity(attrs.get(ATTR), store.directions(study_id), attrs)
    finally:
        store.close()
    changed = differences(recorded, study_identity(spec))
    if changed:
        raise UsageError(
            f"study {spec.study.name} was created with {'; and '.join(changed)}: use --study-name NEW for a "
            "new study; nothing was started"
        )


@dataclass(frozen=True)
class ExistingStudy:
    """A study of the spec's name already in the store: a launch adds trials to it."""

    trials: int
    train_changes: list[str]  # the fixed [train] values this spec changes, "epochs 20 -> 2"
    stored_spec: bool  # False: the study recorded no spec (Optuna alone made it), nothing to compare


def existing_study(url: str, spec) -> ExistingStudy | None:
    """What a launch of `spec` into `url` would add to: the study of its name, or None when there is none
    (or no store yet). Read-only; the fixed [train] values are compared with the spec the study recorded."""
    from engine.spec import SpecError, parse_spec
    from engine.store import Store, StoreError, sqlite_path

    db = sqlite_path(url)
    if db is not None and not db.is_file():
        return None
    try:
        store = Store(url, read_only=True)
    except StoreError:
        return None
    try:
        study_id = store.study_id(spec.study.name)
        if study_id is None:
            return None
        counts = next((s["counts"] for s in store.studies() if s["study_id"] == study_id), {})
        stored_text = store.study_attrs(study_id).get("spec_toml")
    finally:
        store.close()
    trials = sum(counts.values())
    if not isinstance(stored_text, str):
        return ExistingStudy(trials, [], stored_spec=False)
    try:
        stored = parse_spec(stored_text, "the stored spec").fixed_train()
    except SpecError:
        return ExistingStudy(trials, [], stored_spec=False)
    return ExistingStudy(trials, train_differences(stored, spec.fixed_train()), stored_spec=True)


def train_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each fixed training value that differs, as "epochs 20 -> 2" ("default" where one side leaves it out)."""
    out = []
    for key in sorted(set(stored) | set(new)):
        if stored.get(key, _DEFAULT) != new.get(key, _DEFAULT):
            out.append(f"{key} {_shown(stored.get(key, _DEFAULT))} -> {_shown(new.get(key, _DEFAULT))}")
    return out


_DEFAULT = object()


def _shown(value: Any) -> str:
    return "default" if value is _DEFAULT else repr(value) if isinstance(value, str) else str(value)


def prepare(request: RunRequest, storage: str | None, env_url: str | None = None) -> Prepared:
    """Every check a run makes before it starts anything: SpecError, UsageError or StoreUrlError if one
    fails. `storage` is the URL given explicitly; else the spec's (relative to the spec), else `env_url`
    ($TUNETUI_STORAGE), else the default."""
    from engine.store import resolve_url

    check_run_numbers(request)
    spec, text = load_run_spec(request)
    from_spec = bool(spec.storage.url) and not storage
    url = resolve_url(storage or spec.storage.url or env_url,
                      base=Path(request.spec).resolve().parent if from_spec else None)  # fmt: skip
    check_device(request.device)
    check_machine(spec, request.device, request.workers)
    check_artifacts(spec, url)
    refuse_another_study(url, spec)
    return Prepared(spec, text, url)


def check_artifacts(spec, url: str) -> None:
    """The saved weights' folder must be private (no other user may write it: engine/files.py), and a
    `[storage] artifacts` folder one tunetui can make or write: else every trial's upload would fail with a
    warning and the run would end with no weights at all. (The default folder is beside the store: a
    read-only or missing store folder is the store's own error.)"""
    from engine.files import NotPrivate, check_private_folder
    from engine.weights import FOLDER, artifact_dir

    if spec.train_config({}).save_weights == "none":
        return
    folder = artifact_dir(url, spec.storage.artifacts)
    if folder.is_dir():
        try:
            check_private_folder(folder, FOLDER)
        except NotPrivate as err:
            raise UsageError(f"{err} (see [storage] artifacts, or [train] save_weights = \"none\")") from None
    if not spec.storage.artifacts:
        return
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"the saved weights' folder {folder} cannot be made: {existing} is not a folder "
                         "(see [storage] artifacts, or [train] save_weights = \"none\")")  # fmt: skip
    if not os.access(existing, os.W_OK):
        raise UsageError(f"the saved weights' folder {folder} cannot be written: {existing} is read-only "
                         "(see [storage] artifacts, or [train] save_weights = \"none\")")  # fmt: skip


def child_argv(request: RunRequest) -> list[str]:
    """The detached coordinator's command line: the run's flags, never the storage URL (every local user
    can read a command line through `ps`; the URL may carry a password)."""
    argv = [sys.executable, "-m", "engine.cli", "run", str(Path(request.spec).resolve()), "--storage-from-env",
            "--quiet"]  # fmt: skip
    for flag in ("trials", "timeout", "device", "workers", "study_name"):
        value = getattr(request, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    for item in request.overrides:
        argv += ["--set", item]
    if request.graceful:
        argv.append("--graceful")
    return argv


@dataclass(frozen=True)
class Detached:
    """How a detached start went: up (its heartbeat is in the store), or what its log said."""

    study_name: str
    pid: int
    log_path: Path
    up: bool
    exit_code: int | None  # None: still running when the wait ended (then it was stopped)
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.up or self.exit_code == 0

    def report(self) -> str:
        """What happened, in the words `tunetui run --detach` prints (outside text made safe)."""
        name, log = safe(self.study_name), safe(self.log_path)
        if self.up:
            return (f"started coordinator for {name}: pid {self.pid}\nlog: {log}\n"
                    f"watch: tunetui ls   |   tunetui show {name}   |   stop: tunetui stop {name}")  # fmt: skip
        if self.exit_code == 0:
            return f"the coordinator for {name} ran and exited (nothing was left to run); log: {log}"
        if self.exit_code is None:
            return (f"the coordinator did not come up within {DETACH_WAIT_S:g}s; stopped it (pid {self.pid}); "
                    f"log: {log}")  # fmt: skip
        return f"the coordinator exited (code {self.exit_code}) before it came up; log: {log}"

    def summary(self) -> str:
        """The report, after the log's last lines when the start failed (what the TUI shows)."""
        return self.report() if self.ok else f"{self.log_tail}\n{self.report()}".strip()


def detach(request: RunRequest, prepared: Prepared, wait_s: float = DETACH_WAIT_S) -> Detached:
    """Start the run as a new session (it survives the terminal, an SSH drop, the TUI); return once its
    coordinator is up, or has exited, or `wait_s` passed (then it is stopped, not left running)."""
    from engine.files import private_dir
    from engine.store import state_dir

    name, url = prepared.spec.study.name, prepared.url
    logs, pids = private_dir(state_dir(url) / "logs"), private_dir(state_dir(url) / "pids")
    log_path = logs / f"{name}.log"
    env = {**os.environ, STORAGE_ENV: url, "TUNETUI_LOG_PATH": str(log_path), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = python_path(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        process = subprocess.Popen(
            child_argv(request), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env, cwd=os.getcwd(),
        )  # fmt: skip
    pid_fd = os.open(pids / f"{name}.pid", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(pid_fd, "w") as out:
        out.write(f"{process.pid}\n")
    up = wait_until_up(process, url, name, wait_s)
    code = process.poll()
    if code is None:  # reap it when it ends: a TUI that launched it runs on, and would keep a zombie
        threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    tail = ""
    if not up and code != 0:
        tail = safe_lines("\n".join(log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]))
        if code is None:  # neither up nor gone: stop it rather than leave a coordinator we called failed
            os.killpg(process.pid, signal.SIGTERM)
    return Detached(name, process.pid, log_path, up, code, tail)


def wait_until_up(process: subprocess.Popen, url: str, name: str, wait_s: float = DETACH_WAIT_S,
                  poll_s: float = 0.2) -> bool:  # fmt: skip
    """True once the coordinator's heartbeat (this pid, this host) is in the store; False if the
    process exits first or `wait_s` passes. Imports alone take a second or more."""
    from engine.run.coordinator import host_name
    from engine.store import Store, StoreError

    host = host_name()
    deadline = time.monotonic() + wait_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            store = Store(url, read_only=True)
            try:
                study_id = store.study_id(name)
                beats = store.heartbeats(study_id) if study_id is not None else []
            finally:
                store.close()
        except StoreError:
            beats = []  # the store or its tables are not there yet
        if any(b["pid"] == process.pid and b["host"] == host for b in beats):
            return True
        time.sleep(poll_s)
    return False


def start_detached(request: RunRequest, storage: str | None) -> Detached:
    """The TUI's launch: every check of `tunetui run`, then `detach`. Raises what `prepare` raises."""
    return detach(request, prepare(request, storage))


def explain_refusal(err: Exception) -> str:
    """A refusal (SpecError, UsageError, StoreError) as the CLI prints it, ending in 'nothing was started.'"""
    from engine.text import hide_passwords

    text = safe_lines(hide_passwords(str(err)))
    return text if "nothing was started" in text else f"{text}\nnothing was started."

