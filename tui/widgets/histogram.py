"""The gradient histogram of one layer at one epoch (tt_layer.hist_json), with layer and epoch pickers."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from engine.text import markup_safe, safe
from tui.data import layer_order


class HistogramPlot(PlotextPlot):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hist: dict | None = None
        self.caption = "no gradient histograms for this trial"

    def show(self, hist: dict | None, caption: str) -> None:
        self.hist, self.caption = hist, caption
        self.refresh()

    def render(self):
        plt = self.plt
        plt.clear_figure()
        edges = (self.hist or {}).get("edges") or []
        counts = (self.hist or {}).get("counts") or []
        if len(edges) == len(counts) + 1 and counts:
            centers = [(a + b) / 2 for a, b in zip(edges, edges[1:], strict=False)]
            plt.bar(centers, counts, color="cyan", width=1.0)
            ticks = [centers[0], centers[len(centers) // 2], centers[-1]]
            plt.xticks(ticks, [f"{t:.2g}" for t in ticks])
            plt.xlabel("gradient value")
        plt.title(self.caption)
        return super().render()


class GradientPanel(Vertical):
    """Per trial: layers x epochs of histograms; `[`/`]` pick the layer, `,`/`.` the epoch."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.number: int | None = None
        self.rows: list[dict] = []  # tt_layer rows of the trial, hist parsed
        self.layer_index = 0
        self.epoch: int | None = None  # None: follow the latest epoch

    def compose(self) -> ComposeResult:
        yield Static("", id="grad-caption")
        yield HistogramPlot(id="grad-hist")

    def set_rows(self, number: int | None, rows: list[dict]) -> None:
        if number != self.number:
            self.layer_index, self.epoch = 0, None
        self.number, self.rows = number, rows
        self._draw()

    @property
    def layers(self) -> list[str]:
        """Layers from input to output (tt_layer.position where the store has it, else by name)."""
        return layer_order(self.rows)

    @property
    def epochs(self) -> list[int]:
        return sorted({r["epoch"] for r in self.rows})

    def step_layer(self, delta: int) -> None:
        if self.layers:
            self.layer_index = (self.layer_index + delta) % len(self.layers)
            self._draw()

    def step_epoch(self, delta: int) -> None:
        epochs = self.epochs
        if not epochs:
            return
        current = self.epoch if self.epoch in epochs else epochs[-1]
        i = max(0, min(len(epochs) - 1, epochs.index(current) + delta))
        self.epoch = epochs[i]
        self._draw()

    def _draw(self) -> None:
        layers, epochs = self.layers, self.epochs
        caption = self.query_one("#grad-caption", Static)
        plot = self.query_one("#grad-hist", HistogramPlot)
        if not layers:
            caption.update("no per-layer telemetry for this trial")
            plot.show(None, "no gradient histograms")
            return
        layer = layers[self.layer_index % len(layers)]
        shown = markup_safe(layer)  # a layer name comes from the user's model, through the store
        epoch = self.epoch if self.epoch in epochs else epochs[-1]
        row = next((r for r in self.rows if r["layer"] == layer and r["epoch"] == epoch), None)
        norm = row.get("grad_norm") if row else None
        caption.update(
            f"trial #{self.number}  layer {shown} ({self.layer_index % len(layers) + 1}/{len(layers)})  "
            f"epoch {epoch}/{epochs[-1]}  grad norm {norm:.3g}  [ ] layer  , . epoch"
            if norm is not None
            else f"trial #{self.number}  layer {shown}  epoch {epoch}  [ ] layer  , . epoch"
        )
        plot.show(row.get("hist") if row else None, f"gradient histogram: {safe(layer)}, epoch {epoch}")
