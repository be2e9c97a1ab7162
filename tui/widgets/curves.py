"""Training curves: loss, accuracy (or the study's own metric), learning rate, gradient norm (with the clip
line) and per-layer norms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual_plotext import PlotextPlot

from engine.text import safe
from tui.data import downsample, layer_order
from tui.study_model import MAX_OVERLAY

PALETTE = ("cyan", "orange", "green", "magenta", "blue", "yellow", "red", "gray")
# series named in a legend are told apart by these as well as by colour (NO_COLOR, colour blindness): plotext's
# block line, its braille line, then characters
MARKERS = ("hd", "braille", "x", "+", "o", "*", "#", "@")
PLOTS = ("loss", "acc", "lr", "grad", "layers")
CHARTED = ("val_acc", "val_loss", "train_acc", "train_loss")  # a study's metric the loss and accuracy charts show
TITLES = {
    "loss": "loss",
    "acc": "accuracy",
    "lr": "learning rate",
    "grad": "grad norm",
    "layers": "per-layer grad norm",
}


@dataclass
class Series:
    label: str | None
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str | None = None


@dataclass
class Chart:
    title: str
    series: list[Series] = field(default_factory=list)
    xlabel: str = "epoch"
    hline: float | None = None  # e.g. the clip threshold
    log_y: bool = False
    sci_y: bool = False  # y ticks as 1e-3, 3e-4 (learning rates), not plotext's 0.001000
    note: str = ""  # shown when there is nothing to draw


def short_sci(value: float, digits: int = 2) -> str:
    """3e-4, 1.5e-3, 1e0: the shortest scientific form of a tick value, to `digits` significant digits."""
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def sci_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Ticks of a log axis from low to high (both > 0): powers of ten, with 2x and 5x between them when the
    range spans less than two decades; the ends themselves when no such value falls inside."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    steps = (1.0,) if last - first > 2 else (1.0, 2.0, 5.0)
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in steps if low <= m * 10.0**e <= high]
    if len(ticks) < 2:
        ticks = sorted({low, high, *ticks})
    for digits in range(2, 7):  # a narrow range (1.96e-3..2.04e-3) needs more digits than "2e-3" three times
        labels = [short_sci(t, digits) for t in ticks]
        if len(set(labels)) == len(labels):
            break
    return ticks, labels


def whole_ticks(low: float, high: float, most: int = 6) -> list[int]:
    """Whole-number ticks from low to high (trial numbers, epochs, steps), never plotext's 5.8: a step of 1, 2
    or 5 times a power of ten, at most `most` ticks; the one value when low and high are the same."""
    first, last = math.ceil(low), math.floor(high)
    if last <= first:
        return [first]
    step = 1
    while len(ticks := range(math.ceil(first / step) * step, last + 1, step)) > most:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2  # 1, 2, 5, 10, 20, 50, ...
    return list(ticks)


def set_whole_x_ticks(plt, xs: Sequence[float]) -> None:
    """Label the x axis with whole numbers when every x is one (trial numbers, epochs, reported steps)."""
    if xs and all(float(x).is_integer() for x in xs):
        ticks = whole_ticks(min(xs), max(xs))
        plt.xticks(ticks, [str(t) for t in ticks])


def _finite(xs: Sequence[float], ys: Sequence[float | None], positive: bool) -> tuple[list, list]:
    keep = [
        (x, y)
        for x, y in zip(xs, ys, strict=False)
        if y is not None and math.isfinite(y) and (y > 0 or not positive)
    ]
    return [x for x, _ in keep], [y for _, y in keep]


class SeriesPlot(PlotextPlot):
    """A plotext chart that is redrawn only when its Chart changes; series capped at ~1,000 points."""

    def __init__(self, chart: Chart | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.chart = chart or Chart("")
        self.draws = 0  # for tests and the benchmark: how often the plot was built

    def show(self, chart: Chart) -> None:
        self.chart = chart
        self.refresh()

    def render(self):
        self.draws += 1
        chart = self.chart
        if not any(s.xs for s in chart.series):  # nothing to plot: skip plotext's empty frame
            return Text(f"{chart.title}: {chart.note or 'no data yet'}", style="dim", justify="center")
        plt = self.plt
        plt.clear_figure()
        drawn, shown = 0, []
        legend = sum(1 for s in chart.series if s.label) > 1
        for i, s in enumerate(chart.series):
            xs, ys = _finite(s.xs, s.ys, chart.log_y)
            if not xs:
                continue
            xs, ys = downsample(xs, ys, max(200, min(1000, 4 * self.size.width)))  # ~2 points a cell
            color = s.color or PALETTE[i % len(PALETTE)]
            marker = MARKERS[i % len(MARKERS)] if legend else None
            if len(xs) == 1:
                plt.scatter(xs, ys, color=color, label=s.label, marker=marker)
            else:
                plt.plot(xs, ys, color=color, label=s.label, marker=marker)
            drawn += 1
            shown.extend(ys)
        if drawn and chart.hline is not None and math.isfinite(chart.hline):
            plt.hline(chart.hline, color="red")
        if drawn and chart.log_y:
            plt.yscale("log")
        if drawn and chart.sci_y:
            plt.yticks(*sci_ticks(min(shown), max(shown)))
        title = chart.title if drawn else f"{chart.title}: {chart.note or 'no data yet'}"
        plt.title(title)
        if drawn:
            plt.xlabel(chart.xlabel)
            set_whole_x_ticks(plt, [x for s in chart.series for x in _finite(s.xs, s.ys, chart.log_y)[0]])
        return super().render()


class CurvesPanel(Grid):
    """The five curve charts; narrow terminals show one at a time (m cycles), wide ones all of them."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.current = "loss"

    def compose(self) -> ComposeResult:
        for name in PLOTS:
            plot = SeriesPlot(Chart(TITLES[name]), id=f"plot-{name}", classes="curve")
            plot.set_class(name != self.current, "-hidden")
            yield plot

    def cycle(self) -> str:
        self.current = PLOTS[(PLOTS.index(self.current) + 1) % len(PLOTS)]
        for name in PLOTS:
            self.query_one(f"#plot-{name}", SeriesPlot).set_class(name != self.current, "-hidden")
        return self.current

    def show(self, charts: dict[str, Chart]) -> None:
        for name, chart in charts.items():
            self.query_one(f"#plot-{name}", SeriesPlot).show(chart)


# ---------------------------------------------------------------- charts from telemetry rows


def _epoch_series(rows: list[dict], column: str) -> tuple[list, list]:
    return [r["epoch"] for r in rows], [r.get(column) for r in rows]


def _reported_only(numbers: Sequence[int], epochs: dict[int, list[dict]]) -> bool:
    """The shown trials' rows are what `trial.report` wrote (a study run by Optuna alone, no telemetry)."""
    rows = [r for n in numbers for r in epochs.get(n, [])]
    return bool(rows) and all("intermediate" in r for r in rows)


def _intermediate_charts(mode: str, numbers: Sequence[int], epochs: dict[int, list[dict]], who: str) -> dict:
    """Without tunetui telemetry: one chart of the trials' intermediate values, named as such."""
    chart = Chart(f"intermediate values {who}".strip(), xlabel="step (trial.report)",
                  note="nothing reported (trial.report)")  # fmt: skip
    for i, n in enumerate(numbers):
        rows = epochs.get(n, [])
        label = None if mode == "all" else (f"#{n}" if len(numbers) > 1 else "value")
        chart.series.append(Series(label, *_epoch_series(rows, "intermediate"), PALETTE[i % len(PALETTE)]))
    none = "no tunetui telemetry: the study ran with Optuna alone"
    return {"loss": chart, **{name: Chart(TITLES[name], note=none) for name in ("acc", "lr", "grad", "layers")}}


def charts_for(
    mode: str,
    numbers: Sequence[int],
    epochs: dict[int, list[dict]],
    steps: list[dict] | None = None,
    layers: list[dict] | None = None,
    clip: float | None = None,
    metric: str | None = None,
    reported: bool = False,
) -> dict[str, Chart]:
    """The curve charts of one view: one trial (selected/best), two trials (compare), or many (all). A study
    whose `metric` is not charted already (val_rmse, an own loop's val_f1) gets it, and its train_ twin where
    there is one, in the accuracy chart's place. `reported`: the study has no tunetui telemetry, its rows are
    what trial.report wrote (also when a trial reported nothing)."""
    if not numbers:
        return {name: Chart(TITLES[name], note="no trial selected") for name in PLOTS}
    single = len(numbers) == 1
    who = f"#{numbers[0]}" if single else ("#" + " vs #".join(map(str, numbers)) if len(numbers) == 2 else "")
    if mode == "all":
        who = f"last {len(numbers)} trials" if len(numbers) >= MAX_OVERLAY else f"{len(numbers)} trials"
    charts: dict[str, Chart] = {}

    own = metric if isinstance(metric, str) and metric and metric not in CHARTED else None
    # (train, val) columns of the second chart; an own metric not named val_... has no train twin
    train_col, val_col = ("train_acc", "val_acc") if own is None else (
        "train_" + own.removeprefix("val_") if own.startswith("val_") else None, own)  # fmt: skip
    loss, acc = Chart(f"loss {who}"), Chart(f"{safe(own) if own else 'accuracy'} {who}")
    lr = Chart(f"learning rate {who}", log_y=True, sci_y=True)
    grad = Chart(f"grad norm {who}", xlabel="epoch (norm before clipping)", hline=clip)
    for i, n in enumerate(numbers):
        rows = epochs.get(n, [])
        color = PALETTE[i % len(PALETTE)]
        if single:
            loss.series += [Series("train", *_epoch_series(rows, "train_loss"), "cyan"),
                            Series("val", *_epoch_series(rows, "val_loss"), "orange")]  # fmt: skip
            if train_col:
                acc.series.append(Series("train", *_epoch_series(rows, train_col), "cyan"))
            acc.series.append(Series("val" if train_col else None, *_epoch_series(rows, val_col), "orange"))
        elif len(numbers) == 2:
            loss.series += [Series(f"#{n} val", *_epoch_series(rows, "val_loss"), color),
                            Series(f"#{n} train", *_epoch_series(rows, "train_loss"), PALETTE[i + 2])]  # fmt: skip
            acc.series.append(Series(f"#{n} val" if train_col else f"#{n}", *_epoch_series(rows, val_col), color))
            if train_col:
                acc.series.append(Series(f"#{n} train", *_epoch_series(rows, train_col), PALETTE[i + 2]))
        else:
            loss.series.append(Series(None, *_epoch_series(rows, "val_loss"), color))
            acc.series.append(Series(None, *_epoch_series(rows, val_col), color))
        label = None if mode == "all" else (f"#{n}" if not single else None)
        lr.series.append(Series(label, *_epoch_series(rows, "lr"), color))
        grad.series.append(Series(label, *_epoch_series(rows, "grad_norm"), color))
    if single and steps:
        # per-step series show the schedule's shape and the spikes that epoch means hide
        xs = [s["step"] for s in steps]
        lr = Chart(f"learning rate {who}", [Series(None, xs, [s.get("lr") for s in steps], "cyan")],
                   xlabel="step", log_y=True, sci_y=True)  # fmt: skip
        grad = Chart(f"grad norm {who}", [Series(None, xs, [s.get("grad_norm") for s in steps], "cyan")],
                     xlabel="step (norm before clipping)", hline=clip)  # fmt: skip
    if clip is not None:
        grad.title += f", clip {clip:g}"
    charts.update(loss=loss, acc=acc, lr=lr, grad=grad)
    if reported or _reported_only(numbers, epochs):
        return _intermediate_charts(mode, numbers, epochs, who)

    layer_chart = Chart("per-layer grad norm", log_y=True)
    by_layer: dict[str, tuple[list, list]] = {}
    for row in layers or []:
        xs, ys = by_layer.setdefault(row["layer"], ([], []))
        xs.append(row["epoch"])
        ys.append(row.get("grad_norm"))
    for i, name in enumerate(layer_order(layers or [])[: len(PALETTE)]):
        xs, ys = by_layer[name]
        layer_chart.series.append(Series(name, xs, ys, PALETTE[i]))
    charts["layers"] = layer_chart
    return charts
