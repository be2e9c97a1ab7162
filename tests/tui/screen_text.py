"""The screen as plain text (for assertions and for reading a test's failure)."""

from __future__ import annotations


def screen_text(app) -> str:
    screen = app.screen
    strips = screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)
