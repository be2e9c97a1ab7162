"""engine/compare.py: the search-space diff of two specs, and of two studies (recorded specs, else params)."""

from __future__ import annotations

from engine import compare
from engine.store import TrialRow


def row(number: int, **params) -> TrialRow:
    return TrialRow(number=number, trial_id=number + 1, state="COMPLETE", value=1.0, params=params, started=None,
                    finished=None, reason=None, epochs=0, flags=0)  # fmt: skip


SPEC = '[space.lr]\ntype = "float"\nlow = 0.1\nhigh = 1.0\n'


def test_space_diff_is_empty_when_the_space_did_not_change():
    assert compare.space_diff(SPEC, SPEC + "\n[train]\nepochs = 3\n") == []
    assert any(line.startswith("+high = 2.0") for line in compare.space_diff(SPEC, SPEC.replace("1.0", "2.0")))


def test_two_studies_compare_their_recorded_specs():
    diff, source = compare.study_space_diff(("a", "b"), ({"spec_toml": SPEC}, {"spec_toml": SPEC.replace("1.0", "2.0")}),
                                            ([], []))  # fmt: skip
    assert source == "the [space] of the specs the studies recorded"
    assert diff[:2] == ["--- a", "+++ b"] and "-high = 1.0" in diff and "+high = 2.0" in diff


def test_studies_without_a_recorded_spec_compare_the_parameters_their_trials_drew():
    a = [row(0, lr=0.1, opt="sgd"), row(1, lr=0.5, opt="adam")]
    b = [row(0, lr=0.1, opt="sgd", layers=2), row(1, lr=0.9, opt="sgd", layers=3)]
    assert compare.trials_space_lines(a) == ["lr = 0.1..0.5", "opt = one of adam, sgd"]
    diff, source = compare.study_space_diff(("a", "b"), ({"spec_toml": SPEC}, {}), (a, b))  # one spec: params
    assert source == "the parameters the trials drew"
    assert sorted(diff[3:]) == ["+layers = 2..3", "+lr = 0.1..0.9", "+opt = one of sgd", "-lr = 0.1..0.5",
                                "-opt = one of adam, sgd"]  # fmt: skip
