"""engine/analysis.py: the analysis views' numbers, exact on tiny hand-made trial lists."""

from __future__ import annotations

import math

import pytest

from engine import analysis, objectives
from engine.store import TrialRow


def row(number: int, state: str = "COMPLETE", value: float | None = None, started: float | None = None,
        finished: float | None = None, **params) -> TrialRow:  # fmt: skip
    return TrialRow(number=number, trial_id=number + 1, state=state, value=value, params=params, started=started,
                    finished=finished, reason=None, epochs=0, flags=0)  # fmt: skip


MIXED = [
    row(0, value=0.5, lr=1e-4, opt="sgd", layers=1),
    row(1, value=0.9, lr=1e-2, opt="adam", layers=3),
    row(2, "PRUNED", value=None, lr=1e-3, opt="adam", layers=2),
    row(3, "FAIL", lr=1e-3, opt="sgd", layers=2),
    row(4, value=math.inf, lr=1e-3, opt="sgd", layers=2),  # not finite: never scored
    row(5, value=0.7, lr=1e-3, opt="adam", layers=2),
    row(6, "RUNNING", lr=1e-3),
]


def test_scored_keeps_complete_trials_with_a_finite_value_by_number():
    assert [r.number for r in analysis.scored(reversed(MIXED))] == [0, 1, 5]


def test_axes_are_log_for_wide_positive_ranges_categorical_for_text_and_linear_otherwise():
    done = analysis.scored(MIXED)
    lr, opt, layers = (analysis.axis_of(n, done) for n in ("lr", "opt", "layers"))
    assert lr.log and lr.position(1e-2) == pytest.approx(-2.0) and lr.label(-3.0) == "0.001"
    assert opt.categories == ("adam", "sgd") and opt.position("sgd") == 1.0 and opt.label(0.0) == "adam"
    assert not layers.log and not layers.categories and layers.position(3) == 3.0
    assert layers.position(None) is None and opt.position("rmsprop") is None


def test_slice_points_place_each_scored_trial_on_the_parameter_axis():
    axis, points = analysis.slice_points(MIXED, "opt")
    assert axis.categories == ("adam", "sgd")
    assert [(p.x, p.value, p.number) for p in points] == [(1.0, 0.5, 0), (0.0, 0.9, 1), (0.0, 0.7, 5)]


def test_ranked_puts_the_best_first_and_ties_share_a_rank():
    rows = [row(0, value=0.5), row(1, value=0.9), row(2, value=0.5), row(3, value=0.1), row(4, "PRUNED")]
    assert [(rank, r.number) for rank, r in analysis.ranked(rows, maximize=True)] == [(1, 1), (2, 0), (2, 2), (4, 3)]
    assert [(rank, r.number) for rank, r in analysis.ranked(rows, maximize=False)] == [(1, 3), (2, 0), (2, 2), (4, 1)]


def test_edf_steps_once_per_distinct_value():
    rows = [row(0, value=3.0), row(1, value=1.0), row(2, value=2.0), row(3, value=2.0), row(4, "FAIL")]
    assert analysis.edf(rows) == [(1.0, 0.25), (2.0, 0.75), (3.0, 1.0)]
    assert analysis.edf([row(0, "RUNNING")]) == []


def test_parallel_scales_each_axis_to_unit_range_and_marks_the_best_share():
    par = analysis.parallel(MIXED, ["layers", "opt", "lr"], maximize=True, best_share=0.34)
    assert [a.name for a in par.axes] == ["value", "layers", "opt", "lr"]
    assert par.lows[0] == 0.5 and par.highs[0] == 0.9 and par.highs[3] == pytest.approx(-2.0)
    lines = {line.number: line for line in par.lines}
    assert [line.number for line in par.lines] == [0, 1, 5]
    assert lines[1].ys == pytest.approx((1.0, 1.0, 0.0, 1.0)) and lines[1].best
    assert lines[0].ys == pytest.approx((0.0, 0.0, 1.0, 0.0)) and not lines[0].best
    assert lines[5].ys == pytest.approx((0.5, 0.5, 0.0, 0.5)) and not lines[5].best


def test_parallel_leaves_a_missing_parameter_empty_and_a_flat_axis_in_the_middle():
    rows = [row(0, value=1.0, a=2.0), row(1, value=2.0, a=2.0, b=1.0)]
    par = analysis.parallel(rows, ["a", "b"], maximize=False)
    assert [line.ys for line in par.lines] == [(0.0, 0.5, None), (1.0, 0.5, 0.5)]
    assert [line.best for line in par.lines] == [True, False]


def test_contour_is_the_binned_mean_and_leaves_empty_cells_empty():
    rows = [
        row(0, value=1.0, x=0.0, y=0.0),
        row(1, value=3.0, x=0.1, y=0.1),  # same cell as #0: mean 2
        row(2, value=5.0, x=1.0, y=1.0),  # the top edge belongs to the last cell
        row(3, value=7.0, x=1.0, y=0.0),
        row(4, "PRUNED", x=0.0, y=1.0),  # not scored: its cell stays empty
    ]
    grid = analysis.contour(rows, "x", "y", nx=2, ny=2)
    assert grid is not None and grid.count == 4
    assert grid.x_edges == (0.0, 0.5, 1.0) and grid.y_edges == (0.0, 0.5, 1.0)
    assert grid.x_centers == (0.25, 0.75)
    assert grid.cells == ((2.0, 7.0), (None, 5.0))


def test_contour_gives_each_distinct_value_its_own_bin_when_they_fit():
    rows = [row(0, value=1.0, x=0.0, n=1), row(1, value=2.0, x=1.0, n=2), row(2, value=4.0, x=1.0, n=4)]
    grid = analysis.contour(rows, "x", "n", nx=5, ny=5)
    assert grid is not None and grid.y_centers == (1.0, 2.0, 4.0) and grid.y_edges == (0.5, 1.5, 3.0, 5.0)
    assert grid.x_centers == (0.0, 1.0) and grid.cells == ((1.0, None), (None, 2.0), (None, 4.0))


def test_contour_gives_a_categorical_axis_one_bin_per_category_and_none_without_shared_trials():
    rows = [row(0, value=1.0, x=0.0, opt="b"), row(1, value=2.0, x=1.0, opt="a"), row(2, value=4.0, x=1.0, opt="a")]
    grid = analysis.contour(rows, "x", "opt", nx=2, ny=9)
    assert grid is not None and grid.y.categories == ("a", "b") and len(grid.y_edges) == 3
    assert grid.cells == ((None, 3.0), (1.0, None))
    assert analysis.contour([row(0, value=1.0, x=0.0), row(1, value=1.0, y=0.0)], "x", "y", 2, 2) is None


def test_timeline_measures_spans_from_the_first_start_and_running_trials_end_now():
    rows = [
        row(1, "PRUNED", started=105.0, finished=108.0),
        row(0, "COMPLETE", value=1.0, started=100.0, finished=110.0),
        row(2, "RUNNING", started=112.0),
        row(3, "WAITING"),
    ]
    spans = analysis.timeline(rows, now=120.0)
    assert [(s.number, s.state, s.start, s.end) for s in spans] == [
        (0, "COMPLETE", 0.0, 10.0),
        (1, "PRUNED", 5.0, 8.0),
        (2, "RUNNING", 12.0, 20.0),
        (3, "WAITING", None, None),
    ]
    assert [s.start for s in analysis.timeline([row(0, "WAITING")], now=1.0)] == [None]


# ------------------------------------------------------------ several objectives
def multi(number: int, *values: float | None, state: str = "COMPLETE") -> TrialRow:
    return TrialRow(number=number, trial_id=number + 1, state=state, value=None, params={"x": number},
                    started=None, finished=None, reason=None, epochs=0, flags=0, values=tuple(values))  # fmt: skip


def test_hypervolume_of_known_fronts_is_exact():
    staircase = [(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]  # strips 3x1 + 2x1 + 1x1
    assert objectives.hypervolume(staircase, (4.0, 4.0)) == 6.0
    assert objectives.hypervolume([*staircase, (3.0, 3.0), (5.0, 0.0)], (4.0, 4.0)) == 6.0  # dominated, outside
    assert objectives.hypervolume([(0.0, 0.0, 0.0)], (1.0, 2.0, 3.0)) == 6.0
    # boxes of 4 and 2 overlapping in a unit cube
    assert objectives.hypervolume([(0.0, 0.0, 1.0), (1.0, 1.0, 0.0)], (2.0, 2.0, 2.0)) == 5.0
    assert objectives.hypervolume([], (1.0, 1.0)) == 0.0


def test_front_and_hypervolume_history_of_a_two_objective_study():
    directions = ["MAXIMIZE", "MINIMIZE"]
    rows = [multi(0, 0.7, 0.5), multi(1, 0.9, 0.3), multi(2, None, None, state="FAIL"), multi(3, 0.8, 0.1),
            multi(4, 0.6, 0.6), multi(5, 0.95, math.nan), multi(6, state="RUNNING")]  # fmt: skip
    assert [r.number for r in analysis.front(rows, directions)] == [1, 3]
    history = analysis.hypervolume_history(rows, directions)
    # worst: accuracy 0.6 (range 0.3), loss 0.6 (range 0.5) -> reference (0.57, 0.65)
    assert history.reference == pytest.approx((0.57, 0.65))
    assert history.numbers == (0, 1, 3, 4)
    first = (0.7 - 0.57) * (0.65 - 0.5)
    second = (0.9 - 0.57) * (0.65 - 0.3)  # #1 dominates #0
    third = second + (0.8 - 0.57) * (0.3 - 0.1)
    assert history.volumes == pytest.approx((first, second, third, third))
    assert analysis.hypervolume_history([multi(0, state="RUNNING")], directions) is None


def test_history_per_objective_keeps_the_best_so_far_in_its_direction():
    rows = [multi(0, 0.7, 0.5), multi(1, 0.9, 0.6), multi(2, state="PRUNED"), multi(3, 0.8, 0.1)]
    accuracy = analysis.objective_history(rows, 0, "MAXIMIZE")
    loss = analysis.objective_history(rows, 1, "MINIMIZE")
    assert (accuracy.numbers, accuracy.values, accuracy.best) == ((0, 1, 3), (0.7, 0.9, 0.8), (0.7, 0.9, 0.9))
    assert (loss.values, loss.best) == ((0.5, 0.6, 0.1), (0.5, 0.5, 0.1))


def test_reference_point_moves_a_constant_objective_too():
    assert objectives.reference_point([(1.0, 2.0), (1.0, 4.0)]) == pytest.approx((1.1, 4.2))
    assert objectives.reference_point([(0.0,), (0.0,)]) == pytest.approx((0.1,))
