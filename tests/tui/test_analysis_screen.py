"""The Analysis screen (`a` on the Study screen): each view at 80x24 for a study with trials of every state,
and a plain "not enough trials" for studies with 0 and 1 complete trials."""

from __future__ import annotations

import optuna
import pytest

from tests.optuna_only import build_three_objective_store
from tests.tui.builders import build_study
from tests.tui.conftest import wait_for
from tests.tui.screen_text import screen_text
from tui.widgets.history_plot import ImportancePlot

VIEW_MARKS = {  # key -> what the view shows (its title, legend, or table heading)
    "1": ("parallel coordinates (8 complete trials)", "best 1", "optimizer: adam < adamw < sgd"),
    "2": ("dropout", "best #3", "page 1/3"),
    "3": ("mean value per cell", "★", "·· no trial"),
    "4": ("empirical distribution of the value", "8 distinct values"),
    "5": ("trials ranked by value", "optimizer"),
    "6": ("legend: █ complete  ▒ pruned  x fail  > running  · waiting", "#12   waiting  │(not started)",
          "#9    fail     │"),
    "7": ("val_acc per epoch", "#11 running", "#9 fail", "#5 pruned", "#4 complete"),
}


@pytest.fixture
def every_state_store(tmp_path) -> str:
    """12 trials (complete, pruned #5, failed #9, running #10 #11) and one waiting (#12)."""
    url = f"sqlite:///{tmp_path}/states.db"
    build_study(url, n_trials=12, running=2, heartbeat=None)
    optuna.load_study(study_name="digits_mlp", storage=url).enqueue_trial({"lr": 1e-3})
    return url


async def _open_analysis(pilot, app, study: str) -> None:
    await wait_for(pilot, lambda: getattr(app.screen, "study_name", None) == study, what="the Study screen")
    await pilot.press("a")
    await wait_for(pilot, lambda: type(app.screen).__name__ == "AnalysisScreen" and app.screen.loaded,
                   what="the Analysis screen")  # fmt: skip


async def test_every_view_renders_a_study_with_trials_of_every_state(every_state_store, make_app):
    app = make_app(every_state_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "digits_mlp")
        for key, marks in VIEW_MARKS.items():
            await pilot.press(key)
            await wait_for(pilot, lambda marks=marks: all(m in screen_text(app) for m in marks), what=f"view {key}")
        await pilot.press("2", "right_square_bracket")  # the next page of parameters
        await wait_for(pilot, lambda: "page 2/3" in screen_text(app), what="slice page 2")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "StudyScreen", what="back on the Study screen")


@pytest.mark.parametrize("complete", [0, 1])
async def test_views_say_not_enough_trials_with_fewer_than_two_complete(tmp_path, make_app, complete):
    url = f"sqlite:///{tmp_path}/few.db"
    study = optuna.create_study(study_name="few", storage=url)
    for value in [1.0] * complete:
        study.add_trial(optuna.trial.create_trial(value=value, params={"x": 0.5},
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 1)}))  # fmt: skip
    study.ask()  # one running trial
    app = make_app(url, open_study="few")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "few")
        for key in "12345":
            await pilot.press(key)
            await wait_for(pilot, lambda: f"not enough trials: {complete} complete with a value" in screen_text(app),
                           what=f"view {key}")  # fmt: skip
        await pilot.press("6")
        await wait_for(pilot, lambda: "running  │" in screen_text(app), what="the timeline")
        await pilot.press("7")
        await wait_for(pilot, lambda: "no trial has reported a value per epoch yet" in screen_text(app),
                       what="no intermediate values")  # fmt: skip


async def test_intermediate_values_of_a_study_run_by_optuna_alone_name_each_trial(optuna_store, make_app):
    app = make_app(optuna_store, open_study="plain")  # SQLite, a journal file and PostgreSQL, made by Optuna
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "plain")
        await pilot.press("7")
        await wait_for(pilot, lambda: "intermediate value per epoch" in screen_text(app), what="the chart")
        text = screen_text(app)
        assert all(label in text for label in ("#4 running", "#2 pruned", "#0 complete")), text
        await pilot.press("1")  # one finite complete trial (#1 is +inf): not enough
        await wait_for(pilot, lambda: "not enough trials: 1 complete with a value" in screen_text(app))


async def test_a_two_objective_study_opens_on_its_pareto_front_with_history_and_hypervolume(optuna_store, make_app):
    # `pareto`, made by Optuna in SQLite, a journal file and PostgreSQL: (0.9, 0.3) (0.8, 0.1) on the front,
    # (0.7, 0.5) behind
    app = make_app(optuna_store, open_study="pareto")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "pareto")
        marks = ("Pareto front of 3 complete trials: ↑ objective 1 (min)", "trial (1)", "Pareto front (2)",
                 "→ objective 0 (max)")
        await wait_for(pilot, lambda: all(m in screen_text(app) for m in marks), what="the front's scatter")
        await pilot.press("9")
        marks = ("objective 0 (max): best 0.9", "objective 1 (min): best 0.1", "best so far")
        await wait_for(pilot, lambda: all(m in screen_text(app) for m in marks), what="history per objective")
        await pilot.press("0")
        # reference: accuracy 0.7 - 0.02, loss 0.5 + 0.04; volume 0.22 x 0.24 + 0.12 x 0.2 = 0.0768
        marks = ("hypervolume history (now 0.0768)", "reference point (0.68, 0.54)")
        await wait_for(pilot, lambda: all(m in screen_text(app) for m in marks), what="the hypervolume")
        await pilot.press("1")
        await wait_for(pilot, lambda: "this view needs one objective; the study has 2" in screen_text(app))
        await pilot.press("6")  # the timeline needs no value
        await wait_for(pilot, lambda: "#2    complete │" in screen_text(app), what="the timeline")


async def test_a_three_objective_study_with_trials_of_every_state_shows_its_front_as_a_table(tmp_path, make_app):
    url = f"sqlite:///{tmp_path}/three.db"
    build_three_objective_store(url)
    app = make_app(url, open_study="three")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "three")
        await wait_for(pilot, lambda: "Pareto front: 3 trials" in screen_text(app), what="the front's table")
        text = screen_text(app)
        assert "obj 2 (min)" in text and "layers" in text and "0.6" not in text, text  # #3 is behind #0
        await pilot.press("9")
        await wait_for(pilot, lambda: "page 1/2" in screen_text(app) and "objective 1 (min)" in screen_text(app))
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: "objective 2 (min): best 1" in screen_text(app), what="objective 2")
        await pilot.press("0")
        await wait_for(pilot, lambda: "hypervolume history" in screen_text(app), what="the hypervolume")
        await pilot.press("6")
        await wait_for(pilot, lambda: all(m in screen_text(app) for m in ("pruned", "fail", "running",
                                                                          "(not started)")))  # fmt: skip


@pytest.mark.parametrize("complete", [0, 1])
async def test_pareto_views_say_not_enough_trials_with_fewer_than_two_complete(tmp_path, make_app, complete):
    url = f"sqlite:///{tmp_path}/few.db"
    study = optuna.create_study(study_name="few", storage=url, directions=["minimize", "minimize"])
    for _ in range(complete):
        study.tell(study.ask(), [1.0, 2.0])
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    app = make_app(url, open_study="few")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "few")
        for key in "890":
            await pilot.press(key)
            await wait_for(pilot, lambda: f"not enough trials: {complete} complete with a value for every "
                           "objective" in screen_text(app), what=f"view {key}")  # fmt: skip


async def test_pareto_views_of_a_one_objective_study_say_they_need_several(small_store, make_app):
    app = make_app(small_store, open_study="digits_mlp")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "digits_mlp")
        await pilot.press("8")
        await wait_for(pilot, lambda: "this view needs several objectives; the study has 1" in screen_text(app))


async def test_a_study_tunetui_ran_names_its_objectives_by_their_metrics(tmp_path, make_app):
    from tests.tui.builders import build_pareto_study

    url = f"sqlite:///{tmp_path}/pareto.db"
    build_pareto_study(url)  # recorded as a run records it: its identity names val_acc and params
    app = make_app(url, open_study="pareto_mlp")
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_analysis(pilot, app, "pareto_mlp")
        await wait_for(pilot, lambda: "Pareto front of 5 complete trials: ↑ params (min)" in screen_text(app)
                       and "→ val_acc (max)" in screen_text(app), what="the front named by metric")  # fmt: skip
        await pilot.press("9")
        await wait_for(pilot, lambda: "val_acc (max): best 0.97" in screen_text(app)
                       and "params (min): best 1200" in screen_text(app), what="each objective by its metric")  # fmt: skip


async def test_a_long_timeline_scrolls_by_keyboard_after_a_chart_view(tmp_path, make_app):
    url = f"sqlite:///{tmp_path}/long.db"
    study = optuna.create_study(study_name="long", storage=url)
    study.add_trials([optuna.trial.create_trial(value=float(i), params={"x": i / 30},
                                                distributions={"x": optuna.distributions.FloatDistribution(0, 1)})
                      for i in range(30)])  # fmt: skip
    app = make_app(url, open_study="long")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "long")
        await pilot.press("1", "6")  # a chart, then a text view longer than the screen
        await wait_for(pilot, lambda: "#0    complete" in screen_text(app), what="the timeline")
        await pilot.press("end")
        await wait_for(pilot, lambda: "#29   complete" in screen_text(app), what="the last trial, scrolled to")
        await pilot.press("home", "j", "j")
        scroll = app.screen.query_one("#analysis-scroll")
        await wait_for(pilot, lambda: scroll.scroll_y == 2, what="j scrolls down a line")
        await pilot.press("k")
        await wait_for(pilot, lambda: scroll.scroll_y == 1, what="k scrolls up a line")


def test_a_categorical_x_axis_of_the_contour_names_every_column():
    from rich.console import Console

    from engine import analysis
    from engine.store import TrialRow
    from tui.widgets.analysis_views import contour_text

    rows = [TrialRow(number=i, trial_id=i + 1, state="COMPLETE", value=v, params={"act": act, "layers": n},
                     started=None, finished=None, reason=None, epochs=0, flags=0)
            for i, (act, n, v) in enumerate([("gelu", 1, 0.5), ("relu", 2, 0.9), ("tanh", 1, 0.7),
                                             ("relu", 1, 0.6)])]  # fmt: skip
    grid = analysis.contour(rows, "act", "layers", nx=30, ny=12)
    console = Console(width=80, record=True, color_system=None)
    console.print(contour_text(grid, True, rows[1]))
    lines = console.export_text().splitlines()
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    labels, cells = lines[axis + 1], lines[axis - 2]  # the names under the axis; the row of layers = 1
    assert labels.split() == ["gelu", "relu", "tanh"], lines
    for name in ("gelu", "relu", "tanh"):  # each name starts under its own column's cells
        assert cells[labels.index(name)] != " ", (name, lines)


JOURNAL_VIEW_MARKS = {  # a study Optuna alone ran into a journal file: the value views with data
    "1": ("parallel coordinates (10 complete trials)", "act: gelu < relu"),
    "2": ("width", "best #"),
    "3": ("mean value per cell",),
    "4": ("empirical distribution of the value", "10 distinct values"),
    "5": ("trials ranked by value", "act"),
}


async def test_the_value_views_and_importance_draw_a_journal_study_optuna_ran(tmp_path, make_app):
    from tests.optuna_only import optuna_storage

    path = str(tmp_path / "optuna.log")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        width = trial.suggest_int("width", 8, 64)
        act = trial.suggest_categorical("act", ["relu", "gelu"])
        return x * x + width / 100 + (0.1 if act == "gelu" else 0.0)

    study = optuna.create_study(study_name="j", storage=optuna_storage(path), sampler=optuna.samplers.RandomSampler(3))
    study.optimize(objective, n_trials=10)
    app = make_app(path, open_study="j")
    async with app.run_test(size=(80, 24)) as pilot:
        await _open_analysis(pilot, app, "j")
        for key, marks in JOURNAL_VIEW_MARKS.items():
            await pilot.press(key)
            await wait_for(pilot, lambda marks=marks: all(m in screen_text(app) for m in marks), what=f"view {key}")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "StudyScreen", what="back on the Study screen")
        await pilot.press("3")  # the Importance tab: Optuna's fANOVA over the journal's trials, numbers on the bars
        await wait_for(pilot, lambda: app.screen.query(ImportancePlot), what="the importance tab")
        plot = app.screen.query_one(ImportancePlot)
        await wait_for(pilot, lambda: plot.importances, timeout=30, what="importances")
        assert set(plot.importances) == {"x", "width", "act"}
        await wait_for(pilot, lambda: all(f"{n} {v:.2f}" in screen_text(app) for n, v in plot.importances.items()),
                       what="the numbers on the bars")  # fmt: skip
