"""The key footer, rebuilt only when the keys it shows change, and only while its screen is shown.

Textual's `Footer` rebuilds all its key widgets on every bindings change its screen publishes (each focus
change, each `refresh_bindings`), even when the keys shown stay the same and while another screen covers
it. Opening a study published five changes within 0.2 s, and the covered Studies screen's footer rebuilt
too: ~0.1 s of the UI thread just when a worker thread, which needs the GIL, reads the study's trials (first
paint, benchmarks/bench_tui.py). A covered screen loses nothing by waiting: showing it again publishes a
change (Textual's `Screen.stack_updates`)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
        self._rebuild_pending = False
        self._composed_keys: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True  # Footer.compose shows nothing before the first change
        if not self.is_attached or screen is not self.screen or not screen.app.app_focus:
            return
        if self._shown() and not self._rebuild_pending:
            self._rebuild_pending = True
            self.call_after_refresh(self._rebuild)

    async def _rebuild(self) -> None:
        self._rebuild_pending = False
        if self._shown() and self._keys() != self._composed_keys:  # still shown (not covered meanwhile)
            await self.recompose()

    def compose(self) -> ComposeResult:
        self._composed_keys = self._keys() if self._bindings_ready else None
        yield from super().compose()

    def _keys(self) -> tuple:
        """What Footer.compose shows: each shown binding, whether it is enabled, its tooltip."""
        active = self.screen.active_bindings.values()
        return tuple((binding, enabled, tooltip) for _, binding, enabled, tooltip in active if binding.show)

    def _shown(self) -> bool:
        # not Screen.is_current: Textual counts the screen just beneath the top one as current too
        return self.is_attached and self.app.screen is self.screen
