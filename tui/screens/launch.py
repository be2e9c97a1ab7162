"""The Launch screen: trials, workers, device, storage and overrides for a spec; starts it detached."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static
from textual.worker import get_current_worker

from engine.launch import ExistingStudy, RunRequest, UsageError, whole_number
from engine.spec import SpecError, StudySpec, load_spec
from engine.store import StoreError, resolve_url
from engine.text import safe, safe_lines
from tui.messages import EditSpec, LaunchFinished, OpenStudy
from tui.widgets.footer import KeyFooter


def spec_summary(spec: StudySpec) -> str:
    dims = ", ".join(spec.space) or "none (a fixed config)"
    return (
        f"[b]{spec.study.name}[/b]: {spec.study.summary()} on {spec.task.label}; "
        f"sampler {spec.sampler.kind}, pruner {spec.pruner.kind}; "
        f"{spec.budget.n_trials or 'unlimited'} trials of {spec.train.get('epochs', 'default')} epochs\n"
        f"search space: {dims}"
    )


class LaunchScreen(Screen):
    HELP_TITLE = "Launch"
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", tooltip="Start the coordinator detached and watch the study"),
        Binding("ctrl+o", "edit", "Edit spec", tooltip="Open the spec in the editor"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, spec_path: Path) -> None:
        super().__init__()
        self.spec_path = Path(spec_path)
        self.spec: StudySpec | None = None
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(f"Launch {self.spec_path.name}", id="launch-title", classes="title")
        with Vertical(id="launch-box"):
            yield Static("", id="launch-summary")
            with Grid(id="launch-form"):
                yield Label("trials")
                yield _field(id="launch-trials", type="integer", placeholder="spec's budget")
                yield Label("workers")
                yield _field(id="launch-workers", type="integer", placeholder="auto: one per GPU slot, 1 on CPU")
                yield Label("device")
                yield _field(id="launch-device", placeholder="auto | cpu | cuda | cuda:0,cuda:1")
                yield Label("storage")
                yield _field(id="launch-storage")
                yield Label("overrides")
                yield _field(id="launch-set", placeholder="e.g. train.epochs=2 budget.trial_timeout_s=60")
            yield Static("", id="launch-existing")
            yield Button("Launch (ctrl+l)", id="launch-button", variant="success")
            yield Static("", id="launch-message")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#launch-storage", Input).value = self.app.storage_url
        self._load()
        self.query_one("#launch-trials", Input).focus()

    def on_screen_resume(self) -> None:
        self._load()  # the spec may have been edited

    @on(Input.Changed, "#launch-storage, #launch-set")
    def _target_changed(self) -> None:
        if self.spec is not None:
            self._read_existing(self.spec_path, self._overrides(), self._storage_url())

    def _overrides(self) -> tuple[str, ...]:
        try:
            return tuple(o for o in shlex.split(self.query_one("#launch-set", Input).value) if "=" in o)
        except ValueError:  # an open quote while typing
            return ()

    def _storage_url(self) -> str:
        return resolve_url(self.query_one("#launch-storage", Input).value.strip() or None)

    @work(thread=True, exclusive=True, group="existing")
    def _read_existing(self, path: Path, overrides: tuple[str, ...], storage: str) -> None:
        """Say, before the launch adds to it, that the study exists and what of its training this changes."""
        from engine.launch import existing_study, load_run_spec

        try:
            spec, _ = load_run_spec(RunRequest(path, overrides=overrides))
            found = existing_study(storage, spec)
        except (SpecError, UsageError, StoreError, OSError):
            found, spec = None, None  # the launch itself names what is wrong
        text = existing_text(spec.study.name, found) if spec is not None and found else Text("")
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.query_one("#launch-existing", Static).update, text)

    def _load(self) -> None:
        summary = self.query_one("#launch-summary", Static)
        try:
            self.spec = load_spec(self.spec_path)
        except SpecError as err:
            self.spec = None
            summary.update(f"[b]this spec has problems[/b] (ctrl+o to edit):\n{escape(safe_lines(err))}")
            return
        summary.update(spec_summary(self.spec))
        self._read_existing(self.spec_path, self._overrides(), self._storage_url())
        trials = self.query_one("#launch-trials", Input)
        if not trials.value and self.spec.budget.n_trials:
            trials.value = str(self.spec.budget.n_trials)
        device = self.query_one("#launch-device", Input)
        if not device.value:
            device.value = self.spec.devices.device
        if self.spec.devices.workers and not self.query_one("#launch-workers", Input).value:
            self.query_one("#launch-workers", Input).value = str(self.spec.devices.workers)

    def _message(self, text: str, title: str = "") -> None:
        """A bold title of ours, then text that may quote the CLI or a task: shown as text, never markup."""
        shown = Text.assemble((title + "\n", "bold") if title else "", safe_lines(text))
        self.query_one("#launch-message", Static).update(shown)

    @on(Button.Pressed, "#launch-button")
    @on(Input.Submitted)
    def action_launch(self) -> None:
        if self.busy:
            return
        if self.spec is None:
            self._message("fix the spec first (ctrl+o)")
            return
        try:
            trials = _int_or_none(self.query_one("#launch-trials", Input).value, "trials")
            workers = _int_or_none(self.query_one("#launch-workers", Input).value, "workers")
            overrides = shlex.split(self.query_one("#launch-set", Input).value)
        except ValueError as err:
            self._message(str(err))
            return
        bad = [o for o in overrides if "=" not in o]
        if bad:
            self._message(f"overrides are KEY=VALUE; not: {' '.join(bad)}")
            return
        device = self.query_one("#launch-device", Input).value.strip() or None
        storage = resolve_url(self.query_one("#launch-storage", Input).value.strip() or None)
        name = self.spec.study.name
        for item in overrides:
            key, _, value = item.partition("=")
            if key.strip() == "study.name":
                name = value.strip().strip("\"'")
        request = RunRequest(self.spec_path.resolve(), trials=trials, device=device, workers=workers,
                             overrides=tuple(overrides))  # fmt: skip
        self.busy = True
        self._message(f"starting {name}...")
        self._launch(request, name, storage)

    @work(thread=True, exclusive=True, group="launch")
    def _launch(self, request: RunRequest, name: str, storage: str) -> None:
        """`tunetui run --detach`'s own checks and start (engine/launch.py), off the UI thread: it waits
        until the coordinator is up, or reports its log's last lines."""
        from engine.launch import explain_refusal, start_detached

        try:
            started = start_detached(request, storage)
        except (SpecError, UsageError, StoreError) as err:
            self.post_message(LaunchFinished(False, name, explain_refusal(err)))
            return
        if started.ok and storage != self.app.storage_url:
            self.app.storage_url = storage
        self.post_message(LaunchFinished(started.ok, started.study_name, started.summary(), request.trials))

    def on_launch_finished(self, message: LaunchFinished) -> None:
        self.busy = False
        if not message.ok:
            self._message(message.message, title=f"could not start {message.study_name}")
            return
        self.app.notify(f"started {message.study_name}", timeout=3)
        self.post_message(OpenStudy(message.study_name, replace=True))

    def action_edit(self) -> None:
        self.post_message(EditSpec(self.spec_path))

    def action_back(self) -> None:
        self.app.pop_screen()


def existing_text(name: str, found: ExistingStudy) -> Text:
    """The notice above the Launch button: the study exists, how many trials, what [train] changes."""
    same = " (same [train])" if found.stored_spec and not found.train_changes else ""
    text = Text.assemble((f"{safe(name)} exists in this store", "bold"),
                         f": {found.trials} trials{same}; launching adds to them.")  # fmt: skip
    if found.train_changes:
        text.append(f"\n[train] differs from the stored spec: {safe(', '.join(found.train_changes))}")
    elif not found.stored_spec:
        text.append("\nIt recorded no spec: its [train] values cannot be compared.")
    return text


def _field(**kwargs) -> Input:
    """A form field: focusing it keeps the text as it is (no select-all that the next key would replace)."""
    return Input(select_on_focus=False, **kwargs)


def _int_or_none(text: str, what: str) -> int | None:
    """A count field: empty is None (the spec's), else a whole number of 1 or more (`1e3`, `nan` and a page
    of digits are refused in words, as the CLI refuses them: no `invalid literal for int()`)."""
    if not text.strip():
        return None
    try:
        value = whole_number(text)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    if value < 1:
        raise ValueError(f"{what} must be at least 1")
    return value
