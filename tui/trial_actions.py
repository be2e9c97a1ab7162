"""The Study screen's trial actions: a note on the selected trial (N), an edited copy enqueued (Q), a failed
trial retried (R) and a diagnosis finding's remedy enqueued after its parameter diff (F). Store work runs
in threads, through engine/notes.py and engine/enqueue.py; forms and confirmations are posted to the app.
Stores tunetui only reads (made by Optuna alone, journal files) refuse before any form opens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from textual import work
from textual.binding import Binding

from engine.enqueue import (
    OVERRIDES_KEY,
    Plan,
    copy_plan,
    editable_params,
    enqueue,
    overrides_from,
    remedy_plan,
    retry_plan,
    study_spec,
    value_text,
)
from engine.notes import NOTE_KEY, NOTE_MAX, write_note
from engine.store import Store, StoreError, TrialRow
from tui.messages import Confirm, EditNote, EditParams

TRIAL_ACTION_BINDINGS = [
    Binding("N", "note", "Note", show=False, tooltip="Write a note on the selected trial (its user attr `note`)"),
    Binding("Q", "enqueue", "Enqueue copy", show=False,
            tooltip="Enqueue a copy of the selected trial with edited parameters (inside the search space)"),
    Binding("R", "retry", "Retry", show=False, tooltip="Enqueue the selected failed trial's parameters again"),
    Binding("F", "remedy", "Fix", show=False,
            tooltip="Enqueue the selected trial again with its diagnosis remedy applied (shows the diff first)"),
]  # fmt: skip


@contextmanager
def writable_store(url: str) -> Iterator[Store]:
    """The store opened for the workbench's own writes; StoreError where tunetui only reads it."""
    store = Store(url, create=False)
    try:
        store.check_writable()
        yield store
    finally:
        store.close()


def plan_text(plan: Plan, waits: str) -> str:
    """What a confirmation shows: the changes (old -> new), else the params, and where the trial waits."""
    lines = [change.line() for change in plan.changes]
    if not lines:
        lines = [f"{name} = {value_text(value)}" for name, value in plan.params.items()]
    lines += [f"override {name} = {value_text(value)} (not sampled)" for name, value in plan.overrides.items()
              if all(change.name != name for change in plan.changes)]  # fmt: skip
    return "\n".join([*lines, "", f"recorded on the trial as origin: {plan.origin}", waits])


class TrialActions:
    """Mixed into the Study screen (which has `model`, `study_name`, `_polling` and `_show_active`)."""

    def _trial_row(self) -> TrialRow | None:
        model = self.model
        row = model.rows.get(model.selected) if model.study_id is not None and model.selected is not None else None
        if row is None:
            self.notify("no trial selected", severity="warning")
        return row

    def _say(self, text: str, error: bool = False) -> None:
        """A toast from a worker thread (outside text: never markup)."""
        self.app.call_from_thread(self.notify, text, severity="error" if error else "information",
                                  markup=False, timeout=None if error else 5)  # fmt: skip

    def _waits(self) -> str:
        if self.model.shown_status() in ("running", "paused"):
            return "The study's coordinator starts it before sampling a new trial (it counts toward the run's trials)."
        return "It waits (WAITING) until the study runs again: s starts it, or tunetui run."

    # ------------------------------------------------------------ notes
    def action_note(self) -> None:
        row = self._trial_row()
        if row is not None:
            self._open_note(row.number)

    @work(thread=True, group="trial-actions")
    def _open_note(self, number: int) -> None:
        try:
            with writable_store(self.app.storage_url) as store:
                note = store.trial_attrs(self.model.study_id, number).get(NOTE_KEY) or ""
        except StoreError as err:
            self._say(f"no note written: {err}", error=True)
            return
        self.post_message(EditNote(f"Note on trial #{number} of {self.study_name}", str(note), NOTE_MAX,
                                   lambda text: self._save_note(number, text)))  # fmt: skip

    @work(thread=True, group="trial-actions")
    def _save_note(self, number: int, text: str) -> None:
        try:
            with writable_store(self.app.storage_url) as store:
                note = write_note(store, self.model.study_id, number, text)
        except StoreError as err:
            self._say(f"the note was not saved: {err}", error=True)
            return
        self.app.call_from_thread(self._note_saved, number, note)

    def _note_saved(self, number: int, note: str) -> None:
        detail = self.model.details.get(number)
        if detail is not None:  # a finished trial is not read again: show the note now
            if note:
                detail.attrs[NOTE_KEY] = note
            else:
                detail.attrs.pop(NOTE_KEY, None)
        self._show_active()
        self.notify(f"note {'saved on' if note else 'removed from'} trial #{number}", timeout=3)

    # ------------------------------------------------------------ enqueue, retry, remedy
    def action_enqueue(self) -> None:
        row = self._trial_row()
        if row is not None:
            self._prepare(row, "copy")

    def action_retry(self) -> None:
        row = self._trial_row()
        if row is not None and row.state != "FAIL":
            self.notify(f"only a failed trial is retried (#{row.number} is {row.state.lower()}); Q enqueues a copy "
                        "of any trial", severity="warning")  # fmt: skip
        elif row is not None:
            self._prepare(row, "retry")

    def action_remedy(self) -> None:
        row = self._trial_row()
        if row is not None:
            self._prepare(row, "remedy")

    @work(thread=True, group="trial-actions")
    def _prepare(self, row: TrialRow, kind: str) -> None:
        number, sid = row.number, self.model.study_id
        try:
            with writable_store(self.app.storage_url) as store:
                spec = study_spec(store.study_attrs(sid))
                overrides = overrides_from(store.trial_attrs(sid, number).get(OVERRIDES_KEY), spec)
                findings = store.findings(sid, number) if kind == "remedy" else []
            if kind == "copy":
                fields = editable_params(spec, row.params)
                if not fields:
                    raise ValueError(f"trial #{number} has no parameter of the search space to edit")
                kept = ", ".join(f"{k}={value_text(v)}" for k, v in overrides.items())
                self.post_message(EditParams(
                    f"Enqueue a copy of trial #{number}", fields,
                    (f"overrides kept: {kept}\n" if kept else "") + self._waits(),
                    lambda texts: copy_plan(spec, number, row.params, overrides, texts), self._enqueue))  # fmt: skip
                return
            if kind == "retry":
                plan, title = retry_plan(spec, number, row.params, overrides), f"Retry trial #{number}?"
            else:
                plan = remedy_plan(spec, number, row.params, overrides, findings)
                title = f"Enqueue trial #{number} again with its remedy?"
        except (StoreError, ValueError) as err:
            self._say(f"nothing enqueued: {err}", error=True)
            return
        self.post_message(Confirm(title, plan_text(plan, self._waits()), yes="Enqueue", then=lambda: self._enqueue(plan)))

    @work(thread=True, group="trial-actions")
    def _enqueue(self, plan: Plan) -> None:
        try:
            with writable_store(self.app.storage_url) as store:
                number = enqueue(store, self.study_name, plan)
        except (StoreError, ValueError) as err:
            self._say(f"nothing enqueued: {err}", error=True)
            return
        self._say(f"enqueued trial #{number} ({plan.origin})")
        self._polling.wake.set()
