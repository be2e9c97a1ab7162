"""Notes on trials and studies: plain text a user typed, kept as the user attr `note` (Optuna's own place
for it, so `optuna.load_study(...).trials[n].user_attrs["note"]` reads it too)."""

from __future__ import annotations

from engine.store import Store
from engine.text import safe_lines

NOTE_KEY = "note"
NOTE_MAX = 500  # characters: a note is a remark, not a document; the Detail tab shows it whole


def clean_note(text: str) -> str:
    """The note as stored: control bytes removed (line breaks kept), outer blanks trimmed, at most NOTE_MAX
    characters. Shown, it is still outside text (anyone who can write the store can write one)."""
    return safe_lines(text).strip()[:NOTE_MAX].rstrip()


def write_note(store: Store, study_id: int, number: int | None, text: str) -> str:
    """Set the note of trial `number` (None: of the study); an empty note removes it. Returns it as stored.
    Refused (StoreError) where tunetui only reads: stores made by Optuna alone, journal files."""
    note = clean_note(text)
    store.set_user_attr(study_id, number, NOTE_KEY, note or None)
    return note
