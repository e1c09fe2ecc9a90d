"""Known answers for the proportion confidence intervals.

Source of every asserted figure: Newcombe RG. Two-sided confidence intervals for
the single proportion: comparison of seven methods. *Stat Med* 1998;17:857–872,
Table I — method 3 (Wilson score, no continuity correction) and method 5
(Clopper–Pearson "exact"), 95 % intervals, printed to 4 decimal places.
scipy's ``binomtest(...).proportion_ci`` is a second, independent implementation
that must agree (it does, to the printed 4 decimals, for all four examples).
"""

import math

import pytest
from scipy.stats import binomtest

from reports.statistics.proportions import (
    clopper_pearson_interval,
    proportion_summary,
    wilson_interval,
    z_for_confidence,
)

# (x, n, Wilson (method 3), exact (method 5)) — Newcombe 1998, Table I.
NEWCOMBE_TABLE_I = [
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize("x,n,wilson,exact", NEWCOMBE_TABLE_I)
def test_wilson_matches_newcombe_table_i(x, n, wilson, exact):
    low, high = wilson_interval(x, n)
    assert (round(low, 4), round(high, 4)) == wilson


@pytest.mark.parametrize("x,n,wilson,exact", NEWCOMBE_TABLE_I)
def test_clopper_pearson_matches_newcombe_table_i(x, n, wilson, exact):
    low, high = clopper_pearson_interval(x, n)
    assert (round(low, 4), round(high, 4)) == exact


@pytest.mark.parametrize("x,n,wilson,exact", NEWCOMBE_TABLE_I)
def test_scipy_agrees_with_the_published_figures_and_with_us(x, n, wilson, exact):
    res = binomtest(x, n)
    w, e = res.proportion_ci(method="wilson"), res.proportion_ci(method="exact")
    assert (round(w.low, 4), round(w.high, 4)) == wilson
    assert (round(e.low, 4), round(e.high, 4)) == exact
    assert wilson_interval(x, n) == pytest.approx((w.low, w.high), abs=1e-12)
    assert clopper_pearson_interval(x, n) == pytest.approx((e.low, e.high), abs=1e-12)


def test_z_is_the_documented_1_959964():
    assert z_for_confidence(0.95) == pytest.approx(1.959964, abs=5e-7)


def test_edges_are_exactly_zero_and_one():
    assert wilson_interval(0, 20)[0] == 0.0
    assert wilson_interval(20, 20)[1] == 1.0
    assert clopper_pearson_interval(0, 20)[0] == 0.0
    assert clopper_pearson_interval(20, 20)[1] == 1.0
    # x = n mirrors x = 0 (Newcombe's 0/20 reflected).
    low, high = clopper_pearson_interval(20, 20)
    assert round(low, 4) == round(1 - 0.1684, 4)


def test_empty_denominator_gives_none():
    assert wilson_interval(0, 0) is None
    assert clopper_pearson_interval(0, 0) is None
    summary = proportion_summary(0, 0)
    assert summary["proportion"] is None and summary["ci_low"] is None and summary["ci_high"] is None


@pytest.mark.parametrize("x,n", [(-1, 5), (6, 5), (1, -1), (1.5, 3)])
def test_invalid_counts_raise(x, n):
    with pytest.raises(ValueError):
        wilson_interval(x, n)
    with pytest.raises(ValueError):
        clopper_pearson_interval(x, n)


def test_other_confidence_levels_agree_with_scipy():
    for conf in (0.8, 0.9, 0.99):
        res = binomtest(15, 148)
        w = res.proportion_ci(confidence_level=conf, method="wilson")
        e = res.proportion_ci(confidence_level=conf, method="exact")
        assert wilson_interval(15, 148, conf) == pytest.approx((w.low, w.high), abs=1e-12)
        assert clopper_pearson_interval(15, 148, conf) == pytest.approx((e.low, e.high), abs=1e-12)


def test_intervals_contain_the_estimate_and_exact_is_wider_here():
    for x, n, *_ in NEWCOMBE_TABLE_I:
        p = x / n
        wl, wh = wilson_interval(x, n)
        el, eh = clopper_pearson_interval(x, n)
        assert wl <= p <= wh and el <= p <= eh
        assert eh - el >= wh - wl


def test_summary_shape():
    s = proportion_summary(81, 263, method="exact")
    assert s["events"] == 81 and s["n"] == 263 and s["method"] == "exact"
    assert math.isclose(s["proportion"], 81 / 263)
    assert (round(s["ci_low"], 4), round(s["ci_high"], 4)) == (0.2527, 0.3676)
    with pytest.raises(ValueError):
        proportion_summary(1, 2, method="jeffreys")
