"""The widgets a Study screen tab mounts when it is first shown (only Curves is mounted at once: a faster
first paint)."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Log, Static

from tui.widgets.histogram import GradientPanel
from tui.widgets.history_plot import HistoryPlot, ImportancePlot


def tab_widgets(tab: str, study_name: str) -> list[Widget]:
    if tab == "history":
        return [HistoryPlot(id="history-plot")]
    if tab == "importance":
        return [ImportancePlot(study_name, id="importance-plot")]
    if tab == "detail":
        return [VerticalScroll(Static("no trial selected", id="detail-view"), id="detail-scroll")]
    if tab == "grads":
        return [GradientPanel(id="grads-panel")]
    if tab == "log":
        return [Log(id="log-view", max_lines=1000)]
    return []
