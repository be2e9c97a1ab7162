"""The Study screen's header at 80 columns shows a live run's progress against its target, with an ETA."""

from __future__ import annotations

from tests.tui.builders import build_live_run
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text


async def test_the_header_shows_the_runs_progress_at_80_columns(tmp_path, make_app):
    url = f"sqlite:///{tmp_path}/live.db"
    build_live_run(url)
    app = make_app(url, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        # 4 of 9 counted; 5 left, 2 of them running past the median of 20, 23, 26, 29 s (24.5 s): 3 x 24.5 / 2
        await wait_for(pilot, lambda: "digits_mlp · running 4/9 ETA 36s · best" in screen_text(app),
                       what="the progress in the header")  # fmt: skip
