"""The spec editor: TOML with validation as you type (parse_spec), save when valid, fork under a new name."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from engine.compare import space_diff
from engine.files import write_private
from engine.spec import NAME_PATTERN, SpecError, StudySpec, parse_spec
from engine.spec_text import SpecIssue
from engine.text import safe
from tui.data import short_path
from tui.messages import Confirm
from tui.widgets.footer import KeyFooter
from tui.widgets.spec_text_area import SpecTextArea

DEBOUNCE_S = 0.3


def set_study_name(text: str, name: str) -> str:
    """The TOML text with [study].name replaced (or added under [study])."""
    lines = text.splitlines(keepends=True)
    header = next(
        (i for i, line in enumerate(lines) if re.match(r"^\s*\[\s*study\s*\]\s*(#.*)?$", line)), None
    )
    new_line = f'name = "{name}"\n'
    if header is None:
        return f"[study]\n{new_line}\n" + text
    for i in range(header + 1, len(lines)):
        if re.match(r"^\s*\[", lines[i]):
            break
        if re.match(r"^\s*name\s*=", lines[i]):
            lines[i] = new_line
            return "".join(lines)
    lines.insert(header + 1, new_line)
    return "".join(lines)


class ForkScreen(ModalScreen[str | None]):
    """Ask for the fork's study name; show how its search space differs from the original."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, suggested: str, diff: list[str]) -> None:
        super().__init__()
        self.suggested, self.diff = suggested, diff

    def compose(self) -> ComposeResult:
        with Vertical(id="fork-box"):
            yield Static("Fork: save a copy under a new study name", id="fork-title")
            yield Input(self.suggested, id="fork-name")
            yield Static(self._diff_text(), id="fork-diff")
            yield Static("", id="fork-error")
            yield Static("enter: save the fork   escape: cancel", id="fork-hint")

    def _diff_text(self):
        from rich.text import Text

        if not self.diff:
            return Text("search space: unchanged from the original")
        out = Text("search space changes:\n", style="bold")
        for line in self.diff[2:40]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            out.append(line + "\n", style=style)
        return out

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not re.match(NAME_PATTERN, name):
            self.query_one("#fork-error", Static).update("a study name is letters, digits, _ . - (max 100)")
            return
        self.dismiss(name)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditorScreen(Screen):
    HELP_TITLE = "Spec editor"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", tooltip="Save the spec (only when it is valid)"),
        Binding(
            "ctrl+f", "fork", "Fork", tooltip="Save a copy under a new study name, showing the space diff"
        ),
        Binding("escape", "back", "Back", tooltip="Leave the editor (asks when there are unsaved changes)"),
        Binding("q", "quit", "Quit", tooltip="Quit tunetui (asks when there are unsaved changes)"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self.saved_text = ""
        self.original_text = ""
        self.issues: list[SpecIssue] = []
        self.spec: StudySpec | None = None
        self._timer: Timer | None = None
        self.validations = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(safe(self.path.name)), id="editor-title", classes="title")
        with Horizontal(id="editor-body"):
            yield self._text_area()
            with Vertical(id="editor-side"):
                yield Static("", id="editor-status")
                yield OptionList(id="editor-issues")
        yield KeyFooter()

    def _text_area(self) -> SpecTextArea:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as err:
            text = f"# cannot read {self.path}: {err}\n"
        self.saved_text = self.original_text = text
        try:
            area = SpecTextArea.code_editor(
                text, language="toml", id="editor-text", soft_wrap=False, tab_behavior="focus"
            )
        except Exception:  # tree-sitter present but without TOML: plain text still edits fine
            area = SpecTextArea.code_editor(
                text, language=None, id="editor-text", soft_wrap=False, tab_behavior="focus"
            )
        return area

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
        self.validate()

    @property
    def text(self) -> str:
        return self.query_one(TextArea).text

    @property
    def dirty(self) -> bool:
        return self.text != self.saved_text

    @on(TextArea.Changed)
    def _changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self.validate)
        self._title()

    def validate(self) -> None:
        self.validations += 1
        self._timer = None
        text = self.text
        try:
            self.spec = parse_spec(text, self.path.name)
            self.issues = []
        except SpecError as err:
            self.spec = None
            self.issues = err.issues
        self.query_one(SpecTextArea).mark_problems(issue.line for issue in self.issues)
        status = self.query_one("#editor-status", Static)
        issues = self.query_one("#editor-issues", OptionList)
        issues.clear_options()
        if self.spec is not None:
            dims = len(self.spec.space)
            status.update(f"[b]valid[/b]: study {self.spec.study.name}, {dims} dimensions. ctrl+s saves")
        else:
            status.update(f"[b]{len(self.issues)} problem{'s' if len(self.issues) != 1 else ''}[/b] "
                          "(tab, then enter on one: jump to its line)")  # fmt: skip
            for i, issue in enumerate(self.issues):
                where = f"line {issue.line}" if issue.line else "line ?"
                text = safe(f"{where}: {issue.path or '<spec>'}: {issue.message}")  # quotes the spec: not markup
                issues.add_option(Option(Text(text), id=str(i)))
            issues.highlighted = 0
        self._title()

    def _title(self) -> None:
        mark = " (modified)" if self.dirty else ""
        state = (
            "valid"
            if self.spec is not None and self._timer is None
            else ("checking" if self._timer else "invalid")
        )
        self.query_one("#editor-title", Static).update(
            Text(safe(f"{self.path.name}{mark} · {state} · in {short_path(self.path.parent)}"))
        )

    @on(OptionList.OptionSelected, "#editor-issues")
    def _jump(self, event: OptionList.OptionSelected) -> None:
        issue = self.issues[int(event.option.id)]
        area = self.query_one(TextArea)
        if issue.line:
            area.move_cursor((issue.line - 1, 0))
            area.scroll_cursor_visible(center=True)
        area.focus()

    def action_save(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self.validate()
        if self.spec is None:
            self.notify(f"not saved: {len(self.issues)} problem(s) in the spec", severity="error")
            return
        try:
            self.path.write_text(self.text, encoding="utf-8")
        except OSError as err:
            self.notify(f"could not save: {err}", severity="error")
            return
        self.saved_text = self.text
        self._title()
        self.notify(f"saved {self.path.name}", timeout=3)

    def action_fork(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self.validate()
        if self.spec is None:
            self.notify("fix the spec before forking it", severity="error")
            return
        suggested = f"{self.spec.study.name}-fork"
        diff = space_diff(self.original_text, self.text)

        def named(name: str | None) -> None:
            if name:
                self._write_fork(name)

        self.app.push_screen(ForkScreen(suggested, diff), named)

    def _write_fork(self, name: str) -> None:
        target = self.path.parent / f"{name}.toml"
        if target.exists():
            self.notify(f"{target.name} exists already; pick another name", severity="error")
            return
        text = set_study_name(self.text, name)
        try:
            parse_spec(text, target.name)
            write_private(target, text)
        except (SpecError, OSError) as err:
            self.notify(f"fork not saved: {err}", severity="error")
            return
        self.path = target
        area = self.query_one(TextArea)
        area.load_text(text)
        self.saved_text = self.original_text = text
        self.validate()
        self.notify(f"forked as {name} ({target.name})", timeout=4)

    def action_back(self) -> None:
        if not self.dirty:
            self.app.pop_screen()
            return
        self.post_message(Confirm("Discard unsaved changes?", str(self.path), yes="Discard", then=self.app.pop_screen))
