"""Funnel plot limits: Spiegelhalter DJ, *Stat Med* 2005;24:1185–1202, Appendix A.1.1.

No published table of limits is asserted here.  Instead:

* worked examples computed by hand from the binomial distribution function
  (arithmetic in the comments, re-derived in the test with exact rational
  arithmetic via ``math.comb`` — independent of scipy);
* ``r_p`` checked against R's ``qbinom`` semantics (smallest r with F(r) >= p),
  using exact rational CDFs, and against ``scipy.stats.binom.ppf`` on a grid;
* properties: lower <= θ₀ <= upper, limits narrow as n grows, exact limits
  approach the normal approximation for large n.
"""

import math
from fractions import Fraction
from itertools import pairwise

import pytest
from scipy.stats import binom

from reports.statistics.funnel import (
    POSITION_ABOVE_95,
    POSITION_ABOVE_998,
    POSITION_BELOW_95,
    POSITION_BELOW_998,
    POSITION_INSIDE,
    binomial_quantile,
    funnel_bands,
    funnel_limits,
    funnel_position,
    funnel_z_scores,
    normal_limits,
    overdispersion_phi,
    winsorise,
)


def exact_cdf(r: int, n: int, theta: Fraction) -> Fraction:
    """Binomial F(r) in exact rational arithmetic (R's pbinom, without rounding)."""
    if r < 0:
        return Fraction(0)
    return sum(math.comb(n, k) * theta**k * (1 - theta) ** (n - k) for k in range(r + 1))


def spiegelhalter_limit_by_hand(theta: Fraction, n: int, p: Fraction) -> float:
    r = 0
    while exact_cdf(r, n, theta) < p:
        r += 1
    f_r, f_below = exact_cdf(r, n, theta), exact_cdf(r - 1, n, theta)
    alpha = (f_r - p) / (f_r - f_below)
    return float(min(max((r - alpha) / n, Fraction(0)), Fraction(1)))


def test_worked_example_n10_theta_0_1_upper_95():
    # Binomial(10, 0.1):
    #   F(0) = 0.9^10                         = 0.3486784401
    #   F(1) = F(0) + 10 * 0.1 * 0.9^9        = 0.3486784401 + 0.3874204890 = 0.7360989291
    #   F(2) = F(1) + 45 * 0.1^2 * 0.9^8      = 0.7360989291 + 0.1937102445 = 0.9298091736
    #   F(3) = F(2) + 120 * 0.1^3 * 0.9^7     = 0.9298091736 + 0.0573956280 = 0.9872048016
    # p = 0.975: r_p = 3 (F(2) < 0.975 <= F(3))
    #   alpha = (0.9872048016 - 0.975) / 0.0573956280 = 0.2126434
    #   limit = (3 - 0.2126434) / 10 = 0.2787357
    assert binomial_quantile(0.975, 10, 0.1) == 3
    assert funnel_limits(0.1, 10, 0.975) == pytest.approx(0.2787357, abs=1e-7)


def test_worked_example_n10_lower_limits_clamp_to_zero():
    # p = 0.025: F(0) = 0.3487 >= 0.025, so r_p = 0, F(-1) = 0,
    #   alpha = (0.3486784401 - 0.025) / 0.3486784401 = 0.9283007, limit = -0.0928 -> clamped to 0.
    assert binomial_quantile(0.025, 10, 0.1) == 0
    assert funnel_limits(0.1, 10, 0.025) == 0.0
    assert funnel_limits(0.1, 10, 0.001) == 0.0


def test_worked_example_n100_theta_0_1():
    # Binomial(100, 0.1), F from the pmf (exact_cdf above, rounded here):
    #   p = 0.975: F(15) = 0.960109, F(16) = 0.979401 -> r_p = 16,
    #     alpha = (0.979401 - 0.975) / (0.979401 - 0.960109) = 0.22814, limit = (16 - 0.22814)/100 = 0.157719
    #   p = 0.025: F(4) = 0.023711, F(5) = 0.057577 -> r_p = 5,
    #     alpha = (0.057577 - 0.025) / 0.033866 = 0.96194, limit = 0.040381
    #   p = 0.999: F(19) = 0.998021, F(20) = 0.999192 -> r_p = 20, alpha = 0.16433, limit = 0.198357
    #   p = 0.001: F(1) = 0.000322, F(2) = 0.001945 -> r_p = 2, alpha = 0.58211, limit = 0.014179
    theta = Fraction(1, 10)
    for r, expected in [
        (15, 0.960109),
        (16, 0.979401),
        (4, 0.023711),
        (5, 0.057577),
        (19, 0.998021),
        (20, 0.999192),
        (1, 0.000322),
        (2, 0.001945),
    ]:
        assert float(exact_cdf(r, 100, theta)) == pytest.approx(expected, abs=5e-7)
    expected = {0.975: 0.157719, 0.025: 0.040381, 0.999: 0.198357, 0.001: 0.014179}
    for p, limit in expected.items():
        assert funnel_limits(0.1, 100, p) == pytest.approx(limit, abs=1e-6)
        assert funnel_limits(0.1, 100, p) == pytest.approx(
            spiegelhalter_limit_by_hand(theta, 100, Fraction(str(p))), abs=1e-12
        )


@pytest.mark.parametrize("theta", ["0.02", "0.1", "0.2", "0.31", "0.5", "0.9"])
@pytest.mark.parametrize("n", [1, 2, 5, 13, 40, 97])
def test_r_p_is_qbinom_and_limits_match_exact_arithmetic(theta, n):
    t = Fraction(theta)
    for p in ("0.001", "0.025", "0.975", "0.999"):
        pf = Fraction(p)
        r = binomial_quantile(float(pf), n, float(t))
        # qbinom definition: F(r-1) < p <= F(r)
        assert exact_cdf(r, n, t) >= pf and exact_cdf(r - 1, n, t) < pf
        assert r == int(binom.ppf(float(pf), n, float(t)))
        assert funnel_limits(float(t), n, float(pf)) == pytest.approx(spiegelhalter_limit_by_hand(t, n, pf), abs=1e-9)


def test_vector_n_returns_a_list_in_order():
    ns = [10, 100, 1000]
    assert funnel_limits(0.1, ns, 0.975) == [funnel_limits(0.1, n, 0.975) for n in ns]


def test_limits_bracket_theta_and_narrow_with_n():
    theta = 0.2
    rows = funnel_bands(theta, range(5, 2001, 5))
    for row in rows:
        assert 0.0 <= row["lower_998"] <= row["lower_95"] <= theta <= row["upper_95"] <= row["upper_998"] <= 1.0
    # Widths shrink (weakly, allowing for the discreteness wiggle) over a decade of n.
    width = {r["n"]: r["upper_95"] - r["lower_95"] for r in rows}
    for n in (10, 50, 100, 200):
        assert width[10 * n] < width[n]
    # Upper contours are monotone decreasing to within the interpolation's small wiggle.
    upper = [r["upper_998"] for r in rows]
    assert all(b <= a + 0.01 for a, b in pairwise(upper))


def test_exact_limits_approach_the_normal_approximation_for_large_n():
    row = funnel_bands(0.1, [20000])[0]
    for key in ("lower_95", "upper_95", "lower_998", "upper_998"):
        assert row[key] == pytest.approx(row["normal_" + key], abs=1e-3)


def test_normal_limits_formula():
    # 0.1 + 1.959964 * sqrt(0.1 * 0.9 / 100) = 0.1 + 1.959964 * 0.03 = 0.1587989
    assert normal_limits(0.1, 100, 0.975) == pytest.approx(0.1587989, abs=1e-6)
    # with phi = 4 the half-width doubles
    assert normal_limits(0.1, 100, 0.975, phi=4) == pytest.approx(0.1 + 2 * 0.0587989, abs=1e-6)
    assert normal_limits(0.1, 10, 0.001) == 0.0  # clamped


def test_position_classification():
    theta = 0.1
    # n = 100 limits: 99.8% [0.014179, 0.198357], 95% [0.040381, 0.157719]
    assert funnel_position(10, 100, theta) == POSITION_INSIDE
    assert funnel_position(16, 100, theta) == POSITION_ABOVE_95  # 0.16 > 0.1577
    assert funnel_position(20, 100, theta) == POSITION_ABOVE_998  # 0.20 > 0.1984
    assert funnel_position(3, 100, theta) == POSITION_BELOW_95  # 0.03 < 0.0404
    assert funnel_position(1, 100, theta) == POSITION_BELOW_998  # 0.01 < 0.0142
    assert funnel_position(0, 10, theta) == POSITION_INSIDE  # lower limit is 0 at n = 10
    assert funnel_position(0, 0, theta) is None
    with pytest.raises(ValueError):
        funnel_position(11, 10, theta)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        funnel_limits(1.2, 10, 0.975)
    with pytest.raises(ValueError):
        funnel_limits(0.1, 0, 0.975)
    with pytest.raises(ValueError):
        funnel_limits(0.1, 10, 1.0)


def test_winsorise_and_phi_by_hand():
    # Ten z-scores 1..10 (numpy/R type-7 percentiles): 10th pct = 1 + 0.9*1 = 1.9, 90th = 9.1.
    z = [float(v) for v in range(1, 11)]
    assert winsorise(z) == pytest.approx([1.9, 2, 3, 4, 5, 6, 7, 8, 9, 9.1])
    # phi = mean of squares = (1.9^2 + 4 + 9 + ... + 81 + 9.1^2) / 10
    #     = (3.61 + 284 + 82.81) / 10 = 37.042   (2^2 + ... + 9^2 = 284)
    assert overdispersion_phi(z) == pytest.approx(37.042)
    assert overdispersion_phi([]) is None


def test_z_scores_by_hand():
    # (0.2 - 0.1) / sqrt(0.1 * 0.9 / 100) = 0.1 / 0.03 = 3.3333
    assert funnel_z_scores([20, 5], [100, 100], 0.1) == pytest.approx([10 / 3, -5 / 3])


def test_bands_with_overdispersion_are_wider():
    row = funnel_bands(0.1, [100], phi=2.0)[0]
    assert row["od_upper_95"] > row["normal_upper_95"]
    assert row["od_upper_95"] - 0.1 == pytest.approx(math.sqrt(2) * (row["normal_upper_95"] - 0.1))
