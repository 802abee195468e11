"""Intervals and paired tests: checked against values computed by hand (or by the textbook
formula), on the edge cases that break naive versions."""

from __future__ import annotations

import math

import pytest

from alignlab.evaluate.forgetting import delta_text, forgetting_rows
from alignlab.stats import (format_delta, format_interval, mcnemar_p, mean_interval, paired_delta,
                            significant, wilson)


def test_wilson_matches_the_formula_and_stays_inside_zero_one():
    assert wilson(5, 10) == pytest.approx([0.2366, 0.7634], abs=1e-4)
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)  # the normal approximation gives [0, 0]
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    assert wilson(0, 0) is None
    # Narrower with more questions: 1 question in 123 is under a point.
    assert (wilson(61, 123)[1] - wilson(61, 123)[0]) < (wilson(20, 41)[1] - wilson(20, 41)[0])


def test_mcnemar_exact_counts_only_the_items_that_changed():
    # 10 gained, 2 lost: P(X <= 2 | n=12, p=1/2) * 2
    expected = 2 * sum(math.comb(12, k) for k in range(3)) / 2 ** 12
    assert mcnemar_p(10, 2) == pytest.approx(expected) == pytest.approx(0.0386, abs=1e-4)
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0


def test_paired_delta_on_accuracies_uses_mcnemar():
    before = [0] * 10 + [1] * 2 + [1] * 20 + [0] * 9
    after = [1] * 10 + [0] * 2 + [1] * 20 + [0] * 9
    d = paired_delta(before, after)
    assert d["test"] == "mcnemar" and (d["gained"], d["lost"], d["n"]) == (10, 2, 41)
    assert d["delta"] == pytest.approx(8 / 41) and d["p"] == pytest.approx(mcnemar_p(10, 2))
    assert d["ci"][0] < d["delta"] < d["ci"][1]
    assert paired_delta(before, after) == d  # seeded: the same figures every time


def test_paired_delta_on_scores_bootstraps_the_differences():
    before = [2.0, 2.5, 3.0, 3.5, 2.2, 2.8, 3.1, 2.9]
    shifted = paired_delta(before, [b + 0.5 for b in before])
    assert shifted["test"] == "paired_bootstrap"
    assert shifted["delta"] == pytest.approx(0.5) and shifted["ci"] == pytest.approx([0.5, 0.5])
    assert shifted["p"] == 0.0 and significant(shifted) == 1
    noise = paired_delta(before, [b + (0.3 if k % 2 else -0.3) for k, b in enumerate(before)])
    assert noise["ci"][0] < 0 < noise["ci"][1] and noise["p"] > 0.5 and significant(noise) == 0
    with pytest.raises(ValueError, match="same items"):
        paired_delta([1.0], [1.0, 2.0])
    assert paired_delta([], []) is None


def test_mean_interval_contains_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 2.0, 3.0]
    low, high = mean_interval(values)
    assert low < sum(values) / len(values) < high
    assert mean_interval([]) is None and mean_interval([4.0]) == [4.0, 4.0]


def test_formatting_says_points_and_p():
    d = {"delta": 0.146, "ci": [0.031, 0.260], "p": 0.021}
    assert format_delta(d, points=True) == "+14.6 points [+3.1, +26.0], p = 0.02"
    assert format_delta({"delta": -0.2, "ci": [-0.3, -0.1], "p": 0.0004}) == "-0.200 [-0.300, -0.100], p < 0.001"
    assert format_interval(0.4634, [0.3165, 0.6169]) == "0.463 [0.317, 0.617]"
    assert format_interval(None, None) == "-"


def _result(per_item: dict[str, int]) -> dict:
    n = len(per_item)
    acc = sum(per_item.values()) / n
    stats = {"n": n, "acc": acc, "acc_ci": wilson(sum(per_item.values()), n), "per_item": {"acc": per_item}}
    return {"mcq": {"headline": "acc", "overall": stats, "by_leaf": {"k": stats}}}


def test_forgetting_rows_test_the_same_items_and_colour_only_real_changes():
    items = [f"k/q{i}" for i in range(40)]
    before = _result({i: int(k < 10) for k, i in enumerate(items)})
    learned = _result({i: int(k < 30) for k, i in enumerate(items)})  # 20 gained, none lost
    wobble = _result({i: int(1 <= k < 11) for k, i in enumerate(items)})  # one gained, one lost
    [row] = forgetting_rows(before, learned)
    assert row["paired"]["gained"] == 20 and row["paired"]["lost"] == 0 and row["paired"]["p"] < 1e-5
    assert delta_text(row).startswith("[green]+50.0 points")
    [row] = forgetting_rows(before, wobble)
    assert row["delta"] == 0 and row["paired"]["p"] == 1.0
    assert "[green]" not in delta_text(row) and "[red]" not in delta_text(row)
