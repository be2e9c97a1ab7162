"""Compare two studies: their optimization histories overlaid (one marker each, a legend with their names)
above the diff of their search spaces. Read once, in a thread, when the screen opens."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from engine import analysis, compare
from engine.store import StoreError
from engine.text import safe
from tui.data import open_store
from tui.widgets import analysis_views as views
from tui.widgets.footer import KeyFooter


class CompareScreen(Screen):
    HELP_TITLE = "Compare"
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, first: str, second: str) -> None:
        super().__init__()
        self.names = (first, second)
        self.loaded = False

    def compose(self) -> ComposeResult:
        first, second = (safe(n) for n in self.names)
        yield Static(Text(f"compare {first} with {second}"), id="compare-title", classes="title")
        yield views.AnalysisPlot(id="compare-plot")
        yield Static("", id="compare-caption")
        with VerticalScroll(id="compare-diff"):
            yield Static("reading both studies...", id="compare-text")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#compare-plot").display = False
        self.read()

    @work(thread=True, exclusive=True, group="compare-read")
    def read(self) -> None:
        studies = []
        try:
            store = open_store(self.app.storage_url)
            if store is None:
                raise StoreError("the store's file does not exist")
            try:
                for name in self.names:
                    study_id = store.study_id(name)
                    if study_id is None:
                        raise StoreError(f"no study named {name} in the store")
                    studies.append((store.trials(study_id), store.directions(study_id), store.study_attrs(study_id)))
            finally:
                store.close()
        except StoreError as err:
            self.app.call_from_thread(self._failed, str(err))
            return
        self.app.call_from_thread(self._show, studies)

    def _failed(self, error: str) -> None:
        self.loaded = True
        self.query_one("#compare-text", Static).update(Text(f"cannot read the studies: {safe(error)}"))

    def _show(self, studies: list) -> None:
        (rows_a, directions_a, attrs_a), (rows_b, directions_b, attrs_b) = studies
        diff, source = compare.study_space_diff(self.names, (attrs_a, attrs_b), (rows_a, rows_b))
        self.query_one("#compare-text", Static).update(views.space_diff_text(diff, source))
        several = [safe(n) for n, d in zip(self.names, (directions_a, directions_b), strict=True) if len(d) > 1]
        histories = [analysis.objective_history(rows, 0, d[0]) for rows, d in ((rows_a, directions_a),
                                                                               (rows_b, directions_b))]  # fmt: skip
        caption = self.query_one("#compare-caption", Static)
        if several:
            caption.update(Text(f"history: {', '.join(several)} has several objectives; the overlay needs one each"))
        elif not any(h.numbers for h in histories):
            caption.update(Text("history: neither study has a complete trial yet"))
        else:
            plot = self.query_one("#compare-plot", views.AnalysisPlot)
            plot.display = True
            plot.show(views.compare_draw(list(zip(self.names, histories, strict=True))))
            words = [f"{safe(n)}: {d[0].lower()}" for n, d in zip(self.names, (directions_a, directions_b), strict=True)]
            differ = "; the directions differ" if directions_a[0] != directions_b[0] else ""
            caption.update(Text(f"value by trial number ({', '.join(words)}{differ})"))
        self.loaded = True

    def action_back(self) -> None:
        self.app.pop_screen()
