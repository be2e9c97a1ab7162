"""A screen's poll of one study, run in the screen's worker thread: each delta (or the store's error)
comes back as a message, and the thread sleeps between polls until woken (a new selection wants other
telemetry now) or closed (the screen went away: the thread ends at once, not after its sleep).

A big study's first read comes in two parts (rows, then params). A screen that paints the first part
(`paints_partial`) calls `painted()` once it has: the second part waits for that (at most a second), so
the UI thread paints without sharing the GIL with the next read (first paint: benchmarks/bench_tui.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from textual.screen import Screen
from textual.worker import get_current_worker

from engine.store import StoreError
from tui.data import StudyWatcher, Want
from tui.messages import PollFailed, StudyUpdated


class StudyPolling:
    def __init__(self, screen: Screen, study_name: str, slower: float = 1.0, paints_partial: bool = False):
        self.screen = screen
        self.paints_partial = paints_partial
        self._painted = threading.Event()
        self.study_name = study_name
        self.slower = slower  # times the app's poll interval (a view that needs no 3 Hz)
        self.wake = threading.Event()
        self.closed = False

    def run(self, want: Callable[[], Want]) -> None:
        """Poll until the worker is cancelled or `close` is called; `want` says what the screen shows now."""
        worker = get_current_worker()
        url = self.screen.app.storage_url
        watcher = StudyWatcher(url, self.study_name)
        try:
            while not worker.is_cancelled and not self.closed:
                try:
                    delta = watcher.poll(want())
                except StoreError as err:
                    self.screen.post_message(PollFailed(str(err)))
                    watcher.close()
                    watcher = StudyWatcher(url, self.study_name)
                else:
                    self.screen.post_message(StudyUpdated(delta))
                    if delta.partial:  # the rest of a big first read: no pause but the paint's
                        if self.paints_partial:
                            self._painted.wait(1.0)
                            self._painted.clear()
                        continue
                self.wake.wait(self.screen.app.poll_s * self.slower)
                self.wake.clear()
        finally:
            watcher.close()

    def painted(self) -> None:
        """The screen has painted the partial read it was sent (called from the UI thread)."""
        self._painted.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        self._painted.set()
