"""Which columns the trial table has and how wide: the fixed ones, one per reported metric, one per parameter,
each grown to fit the trials it has seen. Pure: no Textual (tui/widgets/trial_table.py draws them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.store import TrialRow
from engine.text import safe
from tui.formatting import format_value

PARAM_WIDTH = 9  # 4 significant digits: 0.0003456, 1.234e-05
METRIC_WIDTH = 10  # the header is the name the filter takes: train_loss, latency_ms fit whole
FIXED_LABELS = {"number": "#: trial number", "state": "state", "value": "value", "epochs": "ep: epochs done",
                "duration": "time: duration", "flags": "!: diagnosis findings"}  # fmt: skip
REPORTED_LABEL = "rep: steps reported (trial.report)"  # a study run by Optuna alone has no epochs to count


@dataclass
class Column:
    key: str
    label: str
    width: int
    right: bool = True


def metric_order(name: str) -> tuple[int, str]:
    """Validation metrics first, then the others (latency_ms, params), then training metrics; by name."""
    return (0 if name.startswith("val_") else 2 if name.startswith("train_") else 1, name)


class TableColumns:
    """The trial table's columns; `fit` learns the names and widths from the rows as they arrive."""

    def __init__(self) -> None:
        self.params: list[str] = []
        self.metrics: list[str] = []  # every metric a trial reported, the objectives' included
        self.widths: dict[str, int] = {}  # "param:NAME" / "metric:NAME" -> width
        self.number_width = 3
        self.objectives = 1
        self.objective_metrics: tuple[str, ...] = ()  # shown as the value column: no column of their own
        self.reported_steps = False  # rows count reported steps, not epochs (a study run by Optuna alone)

    def fit(self, rows: list[TrialRow]) -> bool:
        """Learn new parameters and metrics and widen columns to the new values; True when any changed."""
        changed = self._fit("param", self.params, PARAM_WIDTH, rows, lambda row: row.params)
        changed = self._fit("metric", self.metrics, METRIC_WIDTH, rows, lambda row: row.metrics) or changed
        if not self.reported_steps and any(row.reported is not None for row in rows):
            self.reported_steps = changed = True
        if rows and len(str(max(row.number for row in rows))) > self.number_width:
            self.number_width = len(str(max(row.number for row in rows)))
            changed = True
        return changed

    def _fit(self, kind: str, names: list[str], most: int, rows: list[TrialRow], values_of) -> bool:
        seen = {name for row in rows for name in values_of(row)}
        new = seen.difference(names)
        for name in new:
            names.append(name)
            self.widths[f"{kind}:{name}"] = min(most, max(len(name), 4))
        names.sort(key=metric_order if kind == "metric" else None)
        changed = bool(new)
        for name in seen:
            key = f"{kind}:{name}"
            if self.widths[key] >= most:
                continue  # already as wide as a column gets
            width = self.widths[key]
            for row in rows:
                value = values_of(row).get(name)
                if value is not None and len(format_value(value)) > width:
                    width = min(most, len(format_value(value)))
                    if width == most:
                        break
            if width > self.widths[key]:
                self.widths[key] = width
                changed = True
        return changed

    def all(self) -> list[Column]:
        """Every column, shown or hidden, in table order: the fixed ones, the metrics but the objectives'
        (the value column holds them), the parameters."""
        metrics = [name for name in self.metrics if name not in self.objective_metrics]
        return [
            Column("number", "#", max(self.number_width, 1)),
            Column("state", "state", 8, right=False),
            Column("value", "value" if self.objectives == 1 else "values", 10 * self.objectives - 2),
            Column("epochs", "rep" if self.reported_steps else "ep", 3),
            Column("duration", "time", 6),
            Column("flags", "!", 2),
            *(self._named("metric", name) for name in metrics),
            *(self._named("param", name) for name in self.params),
        ]

    def _named(self, kind: str, name: str) -> Column:
        width = self.widths[f"{kind}:{name}"]
        return Column(f"{kind}:{name}", safe(name)[:width], width)

    def picker(self, columns: Iterable[Column]) -> list[tuple[str, str]]:
        """(key, label) of each column for the `C` picker: what each holds, in words."""
        labels = {**FIXED_LABELS, "epochs": REPORTED_LABEL} if self.reported_steps else FIXED_LABELS
        return [(c.key, labels.get(c.key) or self._kind_label(c.key)) for c in columns]

    @staticmethod
    def _kind_label(key: str) -> str:
        kind, name = key.split(":", 1)
        return f"{name} ({'last epoch' if kind == 'metric' else 'parameter'})"
