"""The trial table: a virtual (line API) table that renders only the rows on screen, sorted by any column,
filtered (tui/trial_filter.py), with the columns the user picked (tui/table_columns.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.store import TrialRow
from tui.formatting import STATE_TEXT, format_duration, format_value, format_values, state_text
from tui.messages import PickColumns
from tui.table_columns import Column, TableColumns
from tui.trial_cells import best_first_descending, cell, sort_key
from tui.trial_filter import Term, matches


class TrialTable(ScrollView, can_focus=True):
    """Every trial of a study; keeps the cursor on the same trial while rows arrive or change."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First", show=False),
        Binding("end", "edge(1)", "Last", show=False),
        Binding("left", "scroll_cols(-8)", "Left", show=False),
        Binding("right", "scroll_cols(8)", "Right", show=False),
        Binding("o", "sort_next", "Sort", show=False, tooltip="Sort by the next column (value: best first)"),
        Binding("r", "sort_reverse", "Reverse", show=False, tooltip="Reverse the sort order"),
        Binding("slash", "filter", "Filter", key_display="/", show=False, tooltip="Filter trials: state=complete lr<1e-3"),
        Binding("C", "columns", "Columns", show=False, tooltip="Pick the columns to show"),
        Binding("escape", "clear_filter", "Clear filter", show=False),  # only while a filter is on
    ]

    COMPONENT_CLASSES = {
        "trial-table--header",
        "trial-table--sorted",
        "trial-table--cursor",
        "trial-table--running",
        "trial-table--complete",
        "trial-table--pruned",
        "trial-table--fail",
        "trial-table--waiting",
        "trial-table--best",
        "trial-table--flag",
    }

    DEFAULT_CSS = """
    TrialTable { background: $surface; }
    TrialTable > .trial-table--header { text-style: bold; background: $panel; }
    TrialTable > .trial-table--sorted { text-style: bold underline; background: $panel; }
    TrialTable > .trial-table--cursor { background: $accent 40%; text-style: bold; }
    TrialTable:focus > .trial-table--cursor { background: $accent; color: $text; text-style: bold; }
    TrialTable > .trial-table--running { color: $warning; }
    TrialTable > .trial-table--complete { color: $success; }
    TrialTable > .trial-table--pruned { color: $text-muted; }
    TrialTable > .trial-table--fail { color: $error; }
    TrialTable > .trial-table--waiting { color: $text-muted; text-style: italic; }
    TrialTable > .trial-table--best { text-style: bold; }
    TrialTable > .trial-table--flag { color: $warning; text-style: bold; }
    """

    class Highlighted(Message):
        """The cursor moved to another trial."""

        def __init__(self, number: int | None) -> None:
            super().__init__()
            self.number = number

    class MovedByHand(Message):
        """The user moved the cursor (keys, a click, the wheel): follow mode ends."""

    class EditFilter(Message):
        """`/`: the user wants to type a filter."""

    class Counted(Message):
        """The filter or the trials changed: `shown` of `total` trials meet `text` ("": no filter)."""

        def __init__(self, text: str, shown: int, total: int) -> None:
            super().__init__()
            self.text, self.shown, self.total = text, shown, total

    sort_key: reactive[str] = reactive("number", init=False)
    sort_reverse: reactive[bool] = reactive(False, init=False)

    def __init__(self, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.rows: dict[int, TrialRow] = {}
        self.order: list[int] = []  # trial numbers in display order
        self.index: dict[int, int] = {}  # trial number -> position in order
        self.cursor = 0
        self.table_columns = TableColumns()  # which columns there are, and how wide
        self.best: int | None = None  # set by the screen (tui/study_model.py decides)
        self.maximizing = True  # the first objective's direction: sorting by value starts with the best
        self.terms: tuple[Term, ...] = ()  # the filter; () shows every trial
        self.filter_text = ""
        self._counted: tuple[str, int, int] | None = None
        self.hidden: set[str] = set()  # column keys the user hid (the app keeps them for the session)
        self.pinned: int | None = None
        self.columns: list[Column] = []
        self._strips: dict[tuple, Strip] = {}  # rendered lines
        self._versions: dict[int, int] = {}  # trial number -> times its row changed
        self._columns_version = 0
        self._layout_columns()

    # ------------------------------------------------------------ data
    @property
    def current(self) -> int | None:
        return self.order[self.cursor] if self.order else None

    @property
    def params(self) -> list[str]:
        return self.table_columns.params

    @property
    def metrics(self) -> list[str]:
        return self.table_columns.metrics

    def set_objectives(self, objectives: int, maximizing: bool = True, metrics: Iterable[str] = ()) -> None:
        """The study's objectives: how many (several: all their values in a wider column), the first one's
        direction, and their metrics (the value column holds them: no column of their own)."""
        self.maximizing = maximizing
        if (objectives, tuple(metrics)) != (self.table_columns.objectives, self.table_columns.objective_metrics):
            self.table_columns.objectives, self.table_columns.objective_metrics = objectives, tuple(metrics)
            self._picked(self.hidden)  # the columns again; a sorted column now left out sorts by number

    def set_filter(self, text: str, terms: tuple[Term, ...]) -> None:
        """Show only the trials meeting every term (tui/trial_filter.py parsed them from `text`)."""
        self.filter_text, self.terms = text, terms
        self._resort()

    def set_hidden(self, hidden: set[str]) -> None:
        self.hidden = set(hidden)
        self._layout_columns()
        self.virtual_size = Size(self._total_width(), len(self.order) + 1)
        self.refresh()

    def _count(self) -> None:
        counted = (self.filter_text, len(self.order), len(self.rows))
        if not self.filter_text and not (self._counted and self._counted[0]):
            return  # no filter now or before: nothing to show while trials stream in
        if counted != self._counted:
            self._counted = counted
            self.post_message(self.Counted(*counted))

    def update_rows(self, rows: Iterable[TrialRow]) -> None:
        """Insert new trials and replace changed ones; the cursor stays on its trial."""
        rows = list(rows)
        if not rows:
            return
        keep = self.current
        appended_only = self.sort_key == "number" and not self.sort_reverse and not self.terms
        # rows that only changed keep their places when sorted by number: no sort, no full repaint
        in_place = self.sort_key == "number" and not self.terms and all(row.number in self.rows for row in rows)
        widths_changed = False
        last = self.order[-1] if self.order else -1
        for row in rows:
            if row.number in self.rows:
                appended_only = False
            elif row.number < last:
                appended_only = False
            else:
                last = row.number
            self.rows[row.number] = row
            self._versions[row.number] = self._versions.get(row.number, 0) + 1
        if self.table_columns.fit(rows):
            widths_changed = True
        if appended_only:
            for row in rows:
                if row.number not in self.index:
                    self.index[row.number] = len(self.order)
                    self.order.append(row.number)
        elif not in_place:
            self._sort()
        if widths_changed:
            self._layout_columns()
        size = Size(self._total_width(), len(self.order) + 1)
        if size != self.virtual_size:
            self.virtual_size = size
        if keep is not None:
            self.cursor = self.index.get(keep, self.cursor)
        if (appended_only or in_place) and not widths_changed:
            self.refresh_trials(row.number for row in rows)  # only the lines that show them
        else:
            self.refresh()
        if (keep is None and self.order) or keep != self.current:  # or the filter left its trial out
            self.post_message(self.Highlighted(self.current))
        self._count()

    def refresh_trials(self, numbers: Iterable[int]) -> None:
        """Repaint the lines of these trials, where they are on screen."""
        top, width = int(self.scroll_y), self.size.width
        for number in numbers:
            position = self.index.get(number)
            if position is not None and top <= position < top + self.visible_rows:
                self.refresh(Region(0, position - top + 1, width, 1))

    def _tick(self) -> None:
        """Running trials' durations move once a second: repaint just their lines."""
        running = [n for n in self.order[int(self.scroll_y) : int(self.scroll_y) + self.visible_rows]
                   if self.rows[n].state == "RUNNING"]  # fmt: skip
        self.refresh_trials(running)

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self.set_hidden(getattr(self.app, "hidden_columns", set()))  # hidden for this app session

    def _sort(self) -> None:
        """Sort by the sort column; trials without a value in it go last in either direction. Only the
        trials the filter lets through."""
        rows, column, now = self.rows, self.sort_key, self.clock()
        shown = [n for n, row in rows.items() if matches(row, self.terms, now)] if self.terms else rows
        keyed = [(sort_key(rows[n], column, now), n) for n in shown]
        present = sorted((k for k in keyed if k[0] is not None), reverse=self.sort_reverse)
        missing = sorted(n for k, n in keyed if k is None)
        self.order = [n for _, n in present] + missing
        self.index = {number: i for i, number in enumerate(self.order)}

    def _duration(self, row: TrialRow) -> float | None:
        if row.started is None:
            return None
        return (row.finished or self.clock()) - row.started

    # ------------------------------------------------------------ columns
    def _layout_columns(self) -> None:
        self._columns_version += 1
        self.columns = [c for c in self.all_columns() if c.key not in self.hidden] or self.all_columns()[:1]

    def all_columns(self) -> list[Column]:
        """Every column, shown or hidden, in table order."""
        return self.table_columns.all()

    def _total_width(self) -> int:
        return 2 + sum(c.width + 1 for c in self.columns)

    def sort_keys(self) -> list[str]:
        return [c.key for c in self.columns]

    def action_sort_next(self) -> None:
        """The next column, in its natural order: the value and metrics best first where their direction is
        known (tui/trial_cells.py), others ascending."""
        keys = self.sort_keys()
        i = keys.index(self.sort_key) if self.sort_key in keys else -1
        key = keys[(i + 1) % len(keys)]
        self.set_reactive(TrialTable.sort_reverse, best_first_descending(key, self.maximizing))
        self.sort_key = key

    def action_sort_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return bool(self.terms) if action == "clear_filter" else True  # else escape goes back

    def action_filter(self) -> None:
        self.post_message(self.EditFilter())

    def action_clear_filter(self) -> None:
        self.set_filter("", ())

    def action_columns(self) -> None:
        self.post_message(PickColumns(self.table_columns.picker(self.all_columns()), set(self.hidden), self._picked))

    def _picked(self, hidden: set[str]) -> None:
        self.set_hidden(hidden)
        if self.sort_key not in self.sort_keys():  # the sorted column was hidden: back to trial number
            self.sort_key = "number"

    def watch_sort_key(self) -> None:
        self._resort()

    def watch_sort_reverse(self) -> None:
        self._resort()

    def _resort(self) -> None:
        keep = self.current
        self._sort()
        self.virtual_size = Size(self._total_width(), len(self.order) + 1)
        self.cursor = self.index.get(keep, 0) if keep is not None else 0
        if self.current != keep:  # the filter left its trial out
            self.post_message(self.Highlighted(self.current))
        self._scroll_to_cursor()
        self.refresh()
        self._count()

    # ------------------------------------------------------------ cursor
    def move_to(self, number: int) -> None:
        if number in self.index:
            self.cursor = self.index[number]
            self._scroll_to_cursor()
            self.refresh()
            self.post_message(self.Highlighted(number))

    def _set_cursor(self, position: int) -> None:
        if not self.order:
            return
        position = max(0, min(len(self.order) - 1, position))
        if position != self.cursor:
            self.cursor = position
            self.post_message(self.Highlighted(self.current))
        self._scroll_to_cursor()
        self.refresh()

    @property
    def visible_rows(self) -> int:
        """Rows on screen below the header (a horizontal scrollbar takes one)."""
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        visible = self.visible_rows
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False, immediate=True)

    def _move_by_hand(self, position: int) -> None:
        self.post_message(self.MovedByHand())  # before Highlighted: the screen stops following first
        self._set_cursor(position)

    def action_cursor(self, delta: int) -> None:
        self._move_by_hand(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_by_hand(self.cursor + direction * max(1, self.visible_rows - 1))

    def action_edge(self, end: int) -> None:
        self._move_by_hand(len(self.order) - 1 if end else 0)

    def on_click(self, event: events.Click) -> None:
        position = int(self.scroll_y) + event.y - 1  # line 0 is the header
        if event.y >= 1 and 0 <= position < len(self.order):
            self._move_by_hand(position)

    def on_mouse_scroll_down(self) -> None:
        self.post_message(self.MovedByHand())  # looking elsewhere: a new trial must not scroll back

    def on_mouse_scroll_up(self) -> None:
        self.post_message(self.MovedByHand())

    def action_scroll_cols(self, delta: int) -> None:
        self.scroll_to(x=max(0, self.scroll_x + delta), animate=False)

    # ------------------------------------------------------------ rendering
    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._sort_marked(self._header(base).crop_extend(scroll_x, scroll_x + width, base), scroll_x)
        else:
            position = scroll_y + y - 1
            if position >= len(self.order):
                return Strip.blank(width, base)
            strip = self._row(position, base)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header(self, base: Style) -> Strip:
        header = base + self.get_component_rich_style("trial-table--header")
        sorted_style = base + self.get_component_rich_style("trial-table--sorted")
        segments = [Segment("  ", header)]
        for col in self.columns:
            label = col.label
            if col.key == self.sort_key:
                label = label[: col.width - 1] + ("▼" if self.sort_reverse else "▲")
            text = label.rjust(col.width) if col.right else label.ljust(col.width)
            segments.append(Segment(text[: col.width], sorted_style if col.key == self.sort_key else header))
            segments.append(Segment(" ", header))
        return Strip(segments)

    def _sort_marked(self, header: Strip, scroll_x: int) -> Strip:
        """The header on screen; when the sorted column is scrolled out of view, its name and arrow at the
        edge it went past (`◂value▼` left, `lr▲▸` right), so the sort stays in sight."""
        width, x = self.scrollable_content_region.width, 2  # without the vertical scrollbar
        for col in self.columns:
            if col.key == self.sort_key and not scroll_x <= x <= x + col.width <= scroll_x + width:
                label = f"{col.label}{'▼' if self.sort_reverse else '▲'}"
                tag = f"◂{label} " if x < scroll_x else f" {label}▸"
                style = self.rich_style + self.get_component_rich_style("trial-table--sorted")
                marked = Strip([Segment(tag, style)])
                if x < scroll_x:
                    return Strip.join([marked, header.crop(len(tag), width)])
                return Strip.join([header.crop(0, width - len(tag)), marked])
            x += col.width + 1
        return header

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    def on_focus(self) -> None:
        self._strips.clear()  # the cursor line looks different with focus

    def on_blur(self) -> None:
        self._strips.clear()

    def _row(self, position: int, base: Style) -> Strip:
        """One trial's line; cached until the row, the cursor, the columns or the styles change."""
        number = self.order[position]
        row = self.rows[number]
        duration = format_duration(self._duration(row))
        key = (number, self._versions.get(number, 0), position == self.cursor, number == self.pinned, number == self.best,
               self._columns_version, duration, self.has_focus)  # fmt: skip
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 4000:
                self._strips.clear()
            strip = self._strips[key] = self._build_row(number, row, position == self.cursor, duration, base)
        return strip

    def _build_row(self, number: int, row: TrialRow, is_cursor: bool, duration: str, base: Style) -> Strip:
        if is_cursor:
            base = base + self.get_component_rich_style("trial-table--cursor")
        state_style = self.get_component_rich_style(f"trial-table--{STATE_TEXT.get(row.state, 'pruned')}")
        if is_cursor:
            state_style = Style(bold=True)
        marker = "›" if is_cursor else ("*" if number == self.pinned else " ")
        if number == self.pinned and is_cursor:
            marker = "*"
        segments = [Segment(marker + " ", base)]
        best = number == self.best
        for col in self.columns:
            style = base
            if col.key == "number":
                text = str(number)
            elif col.key == "state":
                text = state_text(row.state, row.reason)
                style = base + state_style
            elif col.key == "value":
                text = format_values(row)
                if best:
                    text = text + "★" if len(text) < col.width else text
                    style = base + self.get_component_rich_style("trial-table--best")
            elif col.key == "epochs":
                done = row.epochs if row.reported is None else row.reported
                text = str(done) if done else ""
            elif col.key == "duration":
                text = duration
            elif col.key == "flags":
                text = f"!{row.flags}" if row.flags else ""
                if row.flags and not is_cursor:
                    style = base + self.get_component_rich_style("trial-table--flag")
            else:  # a metric's or a parameter's
                text = format_value(cell(row, col.key, 0.0))
            if len(text) > col.width:
                text = text[: col.width - 1] + "…"
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            segments.append(Segment(text, style))
            segments.append(Segment(" ", base))
        return Strip(segments)

    def on_resize(self) -> None:
        self.virtual_size = Size(self._total_width(), len(self.order) + 1)
        self.call_after_refresh(self._scroll_to_cursor)  # fewer rows fit: keep the cursor's row on screen
