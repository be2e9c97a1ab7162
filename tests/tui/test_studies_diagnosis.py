"""The Studies screen's diagnosis column: each study's most common finding among its ended trials, from one
grouped read of tt_diagnosis; nothing for a store that Optuna alone made."""

from __future__ import annotations

from textual.widgets import DataTable

from engine.store import Store
from tests.tui.builders import build_study
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.formatting import diagnosis_summary


def cell(app, study: str) -> str:
    table = app.screen.query_one(DataTable)
    return str(table.get_cell(study, "diagnosis"))


def test_the_summary_names_the_kind_most_trials_have():
    counts = {"COMPLETE": 10, "PRUNED": 1, "RUNNING": 2}
    assert diagnosis_summary({"overfitting": 3, "vanishing_gradients": 5}, counts) == "5/11 trials: vanishing gradients"
    assert diagnosis_summary({"underfitting": 2, "overfitting": 2}, counts) == "2/11 trials: overfitting"  # by name
    assert diagnosis_summary({}, counts) == ""


async def test_each_study_shows_its_most_common_finding_beside_best(small_store, make_app):
    build_study(small_store, name="second", n_trials=3, seed=4)  # trial 1 overfits: 1 of 3
    store = Store(small_store)
    sid = store.study_id("digits_mlp")  # trials 1, 5 and 9 overfit; 4 and 6 have vanishing gradients
    for number in (4, 6):
        store.write_findings(sid, number, [{"kind": "vanishing_gradients", "severity": "warning",
                                            "evidence": {}, "remedy": "relu, kaiming init"}])  # fmt: skip
    store.close()
    app = make_app(small_store)
    async with app.run_test(size=(120, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2, what="two studies")
        await wait_for(pilot, lambda: cell(app, "digits_mlp") == "3/12 trials: overfitting", what="the summary")
        assert cell(app, "second") == "1/3 trials: overfitting"


async def test_a_store_made_by_optuna_alone_shows_no_diagnosis(optuna_store, make_app):
    app = make_app(optuna_store)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 2, what="two studies")
        table = app.screen.query_one(DataTable)
        assert [str(table.get_cell(key, "diagnosis")) for key in table.rows] == ["", ""]


async def test_at_80_columns_every_header_is_on_screen_and_long_cells_end_in_an_ellipsis(small_store, make_app):
    build_study(small_store, name="a_study_with_a_name_far_too_long_for_80_columns", n_trials=3, seed=4)
    app = make_app(small_store)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2 and cell(app, "digits_mlp"), what="the diagnosis")
        await pilot.pause(0.1)
        assert table.virtual_size.width <= table.scrollable_content_region.width  # nothing to scroll to
        header = screen_text(app).splitlines()[1]
        for label in ("study", "state", "trials", "best", "diagnosis", "device"):
            assert label in header
        assert cell(app, "digits_mlp").startswith("3/12 overf")  # the short form: no " trials:"
        assert "a_study_with_a_name…" in screen_text(app)
        await pilot.resize_terminal(120, 24)  # wide again: every column in full
        await wait_for(pilot, lambda: "started" in screen_text(app), what="the started column")
        assert cell(app, "digits_mlp") == "3/12 trials: overfitting"
        assert "a_study_with_a_name_far_too_long_for_80_columns" in screen_text(app)
