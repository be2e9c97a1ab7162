"""The Studies screen's header shows this host's GPUs' use and memory (NVML: a stand-in module here)."""

from __future__ import annotations

import sys

from textual.widgets import Static

from tests.test_gpus import BUSY, FREE, fake_nvml
from tests.tui.conftest import wait_for


def title(app) -> str:
    return str(app.screen.query_one("#studies-title", Static).render())


async def test_header_shows_each_gpu_and_follows_its_use(small_store, make_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([FREE, BUSY]))
    app = make_app(small_store)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: "gpu1 95% 1.0/80.0 GiB" in title(app), what="the GPU line")
        assert "gpu0 0% 1.0/80.0 GiB" in title(app)
        monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([BUSY, BUSY]))
        await wait_for(pilot, lambda: "gpu0 95%" in title(app), what="the next reading")


async def test_no_gpu_line_without_nvml(small_store, make_app, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    app = make_app(small_store)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one("#studies-table").row_count == 1, what="rows")
        assert "GiB" not in title(app) and "tunetui: studies in" in title(app)
