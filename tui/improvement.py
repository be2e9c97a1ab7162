"""The Study screen's `T`: Optuna's terminator estimate of the improvement left, asked for now (a child
process that imports torch: seconds, in a worker thread), shown in the header and as a toast."""

from __future__ import annotations

from textual import work

from engine.store import StoreError
from engine.terminator import Estimate, estimate_study
from engine.text import safe
from tui.data import open_store


def estimate_now(url: str, name: str) -> Estimate:
    """The estimate for the study, from its store opened read-only; a store error is the estimate's error."""
    try:
        store = open_store(url)
        if store is None:
            return Estimate(None, 0, "no store yet")
        try:
            return estimate_study(store, name)
        finally:
            store.close()  # a journal's shared reader ignores it
    except StoreError as err:
        return Estimate(None, 0, str(err))
    except KeyError:  # optuna.load_study: no such study (yet)
        return Estimate(None, 0, "the study is not in the store yet")


class EstimateKey:
    """Mixed into the Study screen (a Screen with `model`, `study_name` and `_title`)."""

    @work(thread=True, exclusive=True, group="estimate")
    def action_estimate(self) -> None:
        self.app.call_from_thread(self.notify, "estimating the improvement left (Optuna's terminator)...", timeout=3)
        estimate = estimate_now(self.app.storage_url, self.study_name)
        self.app.call_from_thread(self._estimated, estimate)

    def _estimated(self, estimate: Estimate) -> None:
        self.model.estimate = estimate
        self._title()
        error = f" ({estimate.error})" if estimate.error else ""
        self.notify(safe(estimate.text() + error), severity="warning" if error else "information", markup=False,
                    timeout=6)  # fmt: skip
