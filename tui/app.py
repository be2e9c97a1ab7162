"""The tunetui app: composes the screens, holds the storage URL, and offers every key in the palette."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.store import resolve_url
from engine.text import safe, safe_lines
from tui.messages import (
    ChooseSpecToStart,
    CompareStudies,
    Confirm,
    EditNote,
    EditParams,
    EditSpec,
    ExportStudy,
    LaunchFinished,
    LaunchSpec,
    NewStudy,
    OpenAnalysis,
    OpenStudy,
    PickColumns,
)
from tui.screens.analysis import AnalysisScreen
from tui.screens.columns import ColumnPicker
from tui.screens.compare import CompareScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.editor import EditorScreen
from tui.screens.export import ExportScreen
from tui.screens.help import HelpScreen
from tui.screens.launch import LaunchScreen
from tui.screens.picker import SpecPicker
from tui.screens.restart import RestartScreen, recorded_spec, specs_naming
from tui.screens.studies import StudiesScreen
from tui.screens.study import StudyScreen
from tui.screens.trial_forms import NoteScreen, ParamsScreen


class ScreenCommands(Provider):
    """Every key of the screen below the palette, as a command (so the palette reaches them all)."""

    def _commands(self):
        seen = set()
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or binding.action in seen or binding.action.startswith("app.command"):
                continue
            seen.add(binding.action)
            label = f"{binding.description} ({binding.key_display or key})"
            help_text = binding.tooltip or binding.description
            node = active.node

            def run(node=node, action=binding.action) -> None:
                self.app.call_later(node.run_action, action)

            yield label, run, help_text

    async def discover(self) -> Hits:
        for label, run, help_text in self._commands():
            yield DiscoveryHit(label, run, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for label, run, help_text in self._commands():
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), run, help=help_text)


class TunetuiApp(App):
    """A keyboard-driven workbench over one store; quitting leaves every study running."""

    CSS_PATH = "tunetui.tcss"
    TITLE = "tunetui"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit; running studies keep running"),
        Binding("question_mark", "help", "Keys", key_display="?", tooltip="Show every key of this screen"),
    ]

    def __init__(
        self,
        storage_url: str | None = None,
        studies_dir: str | Path = "studies",
        *,
        clock: Callable[[], float] = time.time,
        poll_s: float = 0.33,
        open_study: str | None = None,
    ) -> None:
        super().__init__()
        self.storage_url = resolve_url(storage_url)
        self.studies_dir = Path(studies_dir)
        self.clock = clock
        self.poll_s = poll_s
        self.open_study = open_study
        self.launch_trials: dict[str, int] = {}  # study -> the trial count its last launch here asked for
        self.hidden_columns: set[str] = set()  # trial table columns the user hid (`C`), for every study

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:  # fmt: skip
        """Every toast: messages carry study names and error text from the store, so never markup and
        never a control byte (every Widget.notify lands here)."""
        super().notify(safe_lines(message), title=safe(title), severity=severity, timeout=timeout, markup=False)

    def on_mount(self) -> None:
        self.push_screen(StudiesScreen())
        if self.open_study:
            self.push_screen(StudyScreen(self.open_study))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
            return
        self.push_screen(HelpScreen(self.screen))

    # ------------------------------------------------------------ navigation (screens post, the app pushes)
    def on_open_study(self, message: OpenStudy) -> None:
        (self.switch_screen if message.replace else self.push_screen)(StudyScreen(message.name))

    def on_new_study(self, message: NewStudy) -> None:
        def chosen(path: Path | None) -> None:
            if path is not None:
                self.push_screen(LaunchScreen(path))

        self.push_screen(SpecPicker(self.studies_dir, "start"), chosen)

    def on_launch_spec(self, message: LaunchSpec) -> None:
        self.push_screen(LaunchScreen(message.path))

    def on_edit_spec(self, message: EditSpec) -> None:
        if message.path is not None:
            self.push_screen(EditorScreen(message.path))
            return

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.push_screen(EditorScreen(path))

        self.push_screen(SpecPicker(self.studies_dir, "edit"), chosen)

    def on_confirm(self, message: Confirm) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                message.then()

        self.push_screen(ConfirmScreen(message.title, message.detail, yes=message.yes), answered)

    def on_edit_note(self, message: EditNote) -> None:
        def typed(text: str | None) -> None:
            if text is not None:
                message.then(text)

        self.push_screen(NoteScreen(message.title, message.note, message.limit), typed)

    def on_edit_params(self, message: EditParams) -> None:
        def checked(result) -> None:
            if result is not None:
                message.then(result)

        self.push_screen(ParamsScreen(message.title, message.fields, message.note, message.check), checked)

    def on_pick_columns(self, message: PickColumns) -> None:
        def picked(hidden: set[str] | None) -> None:
            if hidden is not None:
                self.hidden_columns = hidden
                message.then(hidden)

        self.push_screen(ColumnPicker(message.columns, message.hidden), picked)

    def on_choose_spec_to_start(self, message: ChooseSpecToStart) -> None:
        # the store is data: the spec (and so the task code) to run is one the user picks here
        candidates = specs_naming(self.studies_dir, message.study_name)
        recorded = recorded_spec(message.user_attrs, candidates)

        def chosen(spec: Path | None) -> None:
            if spec is not None:
                message.then(spec, self.launch_trials.get(message.study_name))

        self.push_screen(RestartScreen(message.study_name, self.studies_dir, candidates, recorded), chosen)

    def on_launch_finished(self, message: LaunchFinished) -> None:
        """A launch from the Launch screen: its trial count is the one `s` on the study starts again with."""
        if not message.ok:
            return
        if message.trials is None:
            self.launch_trials.pop(message.study_name, None)
        else:
            self.launch_trials[message.study_name] = message.trials

    def on_export_study(self, message: ExportStudy) -> None:
        self.push_screen(ExportScreen(message.name, specs_folder=self.studies_dir))

    def on_open_analysis(self, message: OpenAnalysis) -> None:
        self.push_screen(AnalysisScreen(message.name))

    def on_compare_studies(self, message: CompareStudies) -> None:
        self.push_screen(CompareScreen(message.first, message.second))


def run_app(storage_url: str | None, studies_dir: str = "studies") -> None:
    """Entry point of `tunetui` with no command."""
    TunetuiApp(storage_url, studies_dir).run()
