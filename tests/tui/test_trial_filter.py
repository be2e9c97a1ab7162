"""The trial table's filter language (tui/trial_filter.py), pure: parsing, the messages for bad input, matching."""

from __future__ import annotations

import pytest

from engine.store import TrialRow
from tui.trial_filter import FilterError, matches, parse

PARAMS = ("lr", "layers", "activation", "use_bn")


def trial(number: int, state: str = "COMPLETE", value: float | None = 0.9, reason: str | None = None,
          **params) -> TrialRow:  # fmt: skip
    return TrialRow(number=number, trial_id=number + 1, state=state, value=value, params=params,
                    started=100.0, finished=None if state == "RUNNING" else 160.0, reason=reason, epochs=3,
                    flags=1 if number == 2 else 0, values=() if value is None else (value,))  # fmt: skip


TRIALS = [
    trial(0, lr=3e-4, layers=2, activation="relu", use_bn=True),
    trial(1, lr=2e-3, layers=3, activation="tanh", use_bn=False),
    trial(2, "PRUNED", None, lr=5e-4, layers=1, activation="relu"),
    trial(3, "RUNNING", None, lr=1e-4, layers=2, activation="ReLU"),
    trial(4, "FAIL", None, "killed", lr=1e-2, layers=2),
    trial(5, value=0.95, lr=0.00034561, layers=4, activation="relu"),
]


def shown(text: str, now: float = 200.0) -> list[int]:
    terms = parse(text, PARAMS)
    return [t.number for t in TRIALS if matches(t, terms, now)]


def test_terms_are_anded_over_state_params_and_value():
    assert shown("state=complete lr<1e-3 layers>=2 activation=relu") == [0, 5]
    assert shown("state=complete") == [0, 1, 5]
    assert shown("state!=complete") == [2, 3, 4]
    assert shown("value>=0.9 value<0.95") == [0, 1]
    assert shown("") == [0, 1, 2, 3, 4, 5]


def test_every_operator_on_numbers_and_columns():
    assert shown("layers=2") == [0, 3, 4] and shown("layers==2") == [0, 3, 4]
    assert shown("layers!=2") == [1, 2, 5]
    assert shown("layers<2") == [2] and shown("layers<=2") == [0, 2, 3, 4]
    assert shown("layers>3") == [5] and shown("layers>=3") == [1, 5]
    assert shown("number>=4") == [4, 5] and shown("#<1") == [0]
    assert shown("flags>0") == [2] and shown("ep=3") == [0, 1, 2, 3, 4, 5]
    assert shown("time>=60") == [0, 1, 2, 3, 4, 5] and shown("time>60") == [3]  # running: until now (200)


def test_text_compares_without_case_and_what_the_table_shows_is_what_matches():
    assert shown("activation=relu") == [0, 2, 3, 5]  # "ReLU" too
    assert shown("activation!=relu") == [1]  # a trial without the param meets no term on it
    assert shown("use_bn=true") == [0] and shown("use_bn=false") == [1]
    assert shown("lr=0.0003456") == [5]  # 4 significant digits, as the table shows 0.00034561
    assert shown("state=killed") == [4] and shown("state=fail") == []
    assert shown("state=Running") == [3]
    assert shown("'activation=relu'") == [0, 2, 3, 5]  # quotes are the shell's


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("los<1", "unknown column 'los'; columns: number, state, value"),
        ("layer>=2", "unknown column 'layer'; did you mean layers?"),
        ("lr<abc", "'lr<abc': < compares numbers and 'abc' is not a number"),
        ("value=high", "'value=high': value is a number and 'high' is not one"),
        ("state=done", "'state=done': a state is one of complete, running, pruned, fail, waiting, killed"),
        ("state<complete", "'state<complete': state compares with = or != only"),
        ("complete", "'complete' has no operator: write KEY=VALUE"),
        ("lr<", "'lr<': a value goes after <"),
        ("=3", "'=3': a column name goes before ="),
        ("activation='relu", "a quote is not closed"),
        ("state=complete\x1b[31m", "the filter has control characters (an ESC or similar byte)"),
        ("[b]lr[/b]<1", "unknown column '[b]lr[/b]'"),  # markup is text: quoted, never rendered
        ("lr!==3", "'lr!==3': one operator per term"),  # was `lr != "=3"`: every trial matched
        ("optimizer<>adam", "'optimizer<>adam': one operator per term"),
        ("x" * 5000 + "=1", "unknown column '" + "x" * 59 + "…'"),  # a long term is not echoed whole
    ],
)
def test_bad_input_raises_a_message_that_says_what_is_wrong(text, message):
    with pytest.raises(FilterError) as caught:
        parse(text, PARAMS)
    assert message in str(caught.value)
    assert "\x1b" not in str(caught.value)


def test_a_parameter_named_like_a_column_is_reached_with_param_prefix():
    terms = parse("param:state=x state=complete", ("state",))
    assert [t.key for t in terms] == ["param:state", "state"]
    row = trial(0)
    row.params["state"] = "x"
    assert matches(row, terms, 0.0) and not matches(trial(1), terms, 0.0)


METRICS = ("val_f1", "latency_ms", "val_loss")


def test_a_reported_metric_is_a_number_key_and_a_trial_that_never_reported_it_never_matches():
    rows = [trial(0), trial(1), trial(2, "PRUNED", None), trial(3, "RUNNING", None)]
    for row, metrics in zip(rows, ({"val_f1": 0.91, "latency_ms": 1.5}, {"val_f1": 0.7, "latency_ms": 0.4},
                                   {"val_f1": 0.85}, {}), strict=True):  # fmt: skip
        row.metrics.update(metrics)
    terms = parse("val_f1>0.8", PARAMS, METRICS)
    assert [t.key for t in terms] == ["metric:val_f1"] and str(terms[0]) == "val_f1>0.8"
    assert [r.number for r in rows if matches(r, terms, 0.0)] == [0, 2]
    terms = parse("latency_ms<1 state=complete", PARAMS, METRICS)
    assert [r.number for r in rows if matches(r, terms, 0.0)] == [1]
    assert [r.number for r in rows if matches(r, parse("val_f1=0.85", PARAMS, METRICS), 0.0)] == [2]
    with pytest.raises(FilterError, match="'val_f1=high': val_f1 is a number and 'high' is not one"):
        parse("val_f1=high", PARAMS, METRICS)
    with pytest.raises(FilterError, match="unknown column 'val_f2'; did you mean val_f1"):
        parse("val_f2>0.5", PARAMS, METRICS)


def test_a_parameter_and_a_metric_of_one_name_are_told_apart_by_their_prefix():
    terms = parse("lr<1 metric:lr<1 metric:state>0", ("lr",), ("lr", "state"))
    assert [t.key for t in terms] == ["param:lr", "metric:lr", "metric:state"]
