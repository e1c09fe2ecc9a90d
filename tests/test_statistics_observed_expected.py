"""Observed against expected: Ulm's interval, Poisson funnel limits, exact flags, DerSimonian-Laird τ².

Where each asserted figure comes from:

* ``tests/reference/observed_expected.json``, written by ``tests/reference/observed_expected.R``
  (R 4.2.2, metafor 3.8-1; console output in ``observed_expected.Rout``): R's own
  ``poisson.test`` (Ulm's exact interval and the one-sided exact tails), ``binom.test``,
  ``qpois``/``ppois`` for the Spiegelhalter (2005) Appendix A.1 interpolation, ``integrate`` for
  the Poisson-lognormal, and ``metafor::rma(method = "DL")``.  Asserted to 1e-9.
* The BCG vaccine trials (Colditz et al., *JAMA* 1994;271:698; metafor's ``dat.bcg``): the
  13 trials' counts are written out below; DerSimonian-Laird on the log risk ratio gives
  τ² = 0.3088, Q = 152.23 on 12 df, I² = 92.12 %, pooled log RR −0.7141 (SE 0.1787), as
  printed by metafor's ``rma(yi, vi, method = "DL")`` (see the .Rout).
* Closed forms worked by hand in the comments (Poisson tails at E = 1, the O = 0 and O = 1
  ends of Ulm's interval, a two-study DerSimonian-Laird).
* Exact enumeration over the null distribution for the flagging rates (no simulation).
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom, chi2, poisson

from reports.statistics.funnel import POSITION_ABOVE_95, POSITION_ABOVE_998, funnel_position
from reports.statistics.observed_expected import (
    ALARM_P,
    WARNING_P,
    binomial_flag,
    dersimonian_laird,
    log_normal_funnel_limits,
    poisson_cdf,
    poisson_flag,
    poisson_funnel_bands,
    poisson_funnel_limits,
    poisson_pmf,
    poisson_quantile,
    poisson_ratio_interval,
    poisson_sf,
    tau2_log_ratio,
    tau2_logit,
)

REFERENCE = Path(__file__).parent / "reference"
R = json.loads((REFERENCE / "observed_expected.json").read_text())
TOL = 1e-9

HIGH = {"alarm_high", "warning_high"}
LOW = {"alarm_low", "warning_low"}


def close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


# --------------------------------------------------------------------------- Ulm's interval


@pytest.mark.parametrize("row", R["ulm"], ids=lambda r: f"O{r['observed']}-E{r['expected']}-{r['confidence']}")
def test_ulm_interval_matches_r_poisson_test(row):
    lo, hi = poisson_ratio_interval(row["observed"], row["expected"], row["confidence"])
    assert close(lo, row["lower"]) and close(hi, row["upper"])


def test_ulm_interval_closed_forms_and_chi_square_definition():
    # O = 0: P(X = 0 | mu) = e^-mu = 0.025  ->  upper mu = -ln 0.025 = 3.688879454113936; lower 0.
    assert poisson_ratio_interval(0, 1.0) == (0.0, pytest.approx(-math.log(0.025), abs=1e-12))
    # O = 1: lower solves P(X >= 1 | mu) = 1 - e^-mu = 0.025 -> mu = -ln 0.975 = 0.025317807984290.
    lo, _ = poisson_ratio_interval(1, 1.0)
    assert lo == pytest.approx(-math.log(0.975), abs=1e-12)
    # Ulm's chi-square form, chi2_{a/2}(2O)/(2E), chi2_{1-a/2}(2O+2)/(2E), for a few cases.
    for o, e, conf in [(3, 2.5, 0.95), (17, 10.0, 0.95), (8, 3.3, 0.998)]:
        a = 1 - conf
        lo, hi = poisson_ratio_interval(o, e, conf)
        assert lo == pytest.approx(chi2.ppf(a / 2, 2 * o) / (2 * e), rel=1e-12)
        assert hi == pytest.approx(chi2.ppf(1 - a / 2, 2 * o + 2) / (2 * e), rel=1e-12)


def test_ulm_interval_validation():
    for bad in [(-1, 1.0), (1.5, 1.0), (1, 0.0), (1, -2.0), (True, 1.0)]:
        with pytest.raises(ValueError):
            poisson_ratio_interval(*bad)
    with pytest.raises(ValueError):
        poisson_ratio_interval(1, 1.0, confidence=1.0)


# --------------------------------------------------------------------------- exact tails and flags


@pytest.mark.parametrize("row", R["poisson_tail"], ids=lambda r: f"O{r['observed']}-E{r['expected']}")
def test_poisson_tails_match_r_poisson_test(row):
    f = poisson_flag(row["observed"], row["expected"])
    assert close(f["p_high"], row["p_high"]) and close(f["p_low"], row["p_low"])
    assert f["method"] == "exact_poisson"


@pytest.mark.parametrize("row", R["binom_tail"], ids=lambda r: f"x{r['events']}-n{r['n']}-{r['theta0']}")
def test_binomial_tails_match_r_binom_test(row):
    f = binomial_flag(row["events"], row["n"], row["theta0"])
    assert close(f["p_high"], row["p_high"]) and close(f["p_low"], row["p_low"])
    assert f["method"] == "exact_binomial"


def test_poisson_flags_by_hand_at_e_equal_1():
    # E = 1: P(X >= o) = 1 - e^-1 * sum_{k<o} 1/k!
    #   o = 4: 1 - e^-1 (1 + 1 + 1/2 + 1/6)         = 1 - e^-1 * 8/3    = 0.0189882 -> warning
    #   o = 5: 1 - e^-1 * (8/3 + 1/24)               = 1 - e^-1 * 65/24  = 0.0036599 -> warning
    #   o = 6: 1 - e^-1 * (65/24 + 1/120)            = 1 - e^-1 * 163/60 = 0.0005942 -> alarm
    #   o = 3: 1 - e^-1 * 5/2 = 0.0803014 -> none
    expected = {3: (1 - 2.5 / math.e, None), 4: (1 - (8 / 3) / math.e, "warning_high")}
    expected[5] = (1 - (65 / 24) / math.e, "warning_high")
    expected[6] = (1 - (163 / 60) / math.e, "alarm_high")
    for o, (p_high, flag) in expected.items():
        f = poisson_flag(o, 1.0)
        assert f["p_high"] == pytest.approx(p_high, rel=1e-12)
        assert f["flag"] == flag
    # Low side: P(X <= 0 | E) = e^-E < 0.025 iff E > -ln 0.025 = 3.6889; < 0.001 iff E > 6.9078.
    assert poisson_flag(0, 3.6)["flag"] is None
    assert poisson_flag(0, 3.7)["flag"] == "warning_low"
    assert poisson_flag(0, 6.9)["flag"] == "warning_low"
    assert poisson_flag(0, 6.92)["flag"] == "alarm_low"
    assert poisson_flag(0, 6.92)["p_low"] == pytest.approx(math.exp(-6.92), rel=1e-12)


def test_binomial_flags_by_hand():
    # n = 10, theta0 = 0.1: P(X >= 3) = 1 - (0.9^10 + 10*0.1*0.9^9 + 45*0.01*0.9^8) = 0.0701908 -> none;
    # P(X >= 4) = 0.0701908 - 120*0.001*0.9^7 = 0.0701908 - 0.0573956 = 0.0127952 -> warning_high.
    f3, f4 = binomial_flag(3, 10, 0.1), binomial_flag(4, 10, 0.1)
    assert f3["p_high"] == pytest.approx(1 - (0.9**10 + 0.9**9 + 0.45 * 0.9**8), rel=1e-12) and f3["flag"] is None
    assert f4["p_high"] == pytest.approx(f3["p_high"] - 0.12 * 0.9**7, rel=1e-12) and f4["flag"] == "warning_high"
    # 0 of 60 at 8 %: P(X <= 0) = 0.92^60 = 0.0067185 -> warning_low.
    f0 = binomial_flag(0, 60, 0.08)
    assert f0["p_low"] == pytest.approx(0.92**60, rel=1e-12) and f0["p_high"] == 1.0 and f0["flag"] == "warning_low"
    # Degenerate targets.
    assert binomial_flag(0, 5, 0.0)["flag"] is None and binomial_flag(1, 5, 0.0)["flag"] == "alarm_high"
    assert binomial_flag(5, 5, 1.0)["flag"] is None and binomial_flag(4, 5, 1.0)["flag"] == "alarm_low"


def test_flag_validation():
    with pytest.raises(ValueError):
        binomial_flag(11, 10, 0.1)
    with pytest.raises(ValueError):
        binomial_flag(1, 0, 0.1)
    with pytest.raises(ValueError):
        binomial_flag(1, 10, 1.1)
    with pytest.raises(ValueError):
        poisson_flag(-1, 2.0)
    with pytest.raises(ValueError):
        poisson_flag(1, 0.0)
    with pytest.raises(ValueError):
        poisson_flag(1, 2.0, tau2=-0.1)


# --------------------------------------------------------------------------- nominal rates by enumeration

E_GRID = [round(0.5 * k, 1) for k in range(1, 101)]  # 0.5, 1.0, ..., 50.0


def _flag_probabilities(pmf, flags) -> dict:
    out = {"high": 0.0, "alarm_high": 0.0, "low": 0.0, "alarm_low": 0.0}
    for pr, flag in zip(pmf, flags, strict=True):
        if flag in HIGH:
            out["high"] += pr
        if flag == "alarm_high":
            out["alarm_high"] += pr
        if flag in LOW:
            out["low"] += pr
        if flag == "alarm_low":
            out["alarm_low"] += pr
    return out


def _assert_nominal(rates: dict) -> None:
    assert rates["high"] <= WARNING_P and rates["low"] <= WARNING_P
    assert rates["alarm_high"] <= ALARM_P and rates["alarm_low"] <= ALARM_P


@pytest.mark.parametrize("e", E_GRID)
def test_on_target_centre_is_flagged_at_most_at_nominal_rate_poisson(e):
    # Sum the Poisson(E) probabilities of every count that poisson_flag flags.
    top = int(poisson.ppf(1 - 1e-15, e)) + 5
    counts = range(top + 1)
    pmf = poisson.pmf(np.arange(top + 1), e)
    rates = _flag_probabilities(pmf, [poisson_flag(o, e)["flag"] for o in counts])
    _assert_nominal(rates)
    # and the rule is not needlessly conservative: the first flagged count's tail is the rate.
    first_high = min(o for o in counts if poisson_flag(o, e)["flag"] in HIGH)
    assert rates["high"] == pytest.approx(poisson.sf(first_high - 1, e), abs=1e-12)


@pytest.mark.parametrize("e,tau2", [(0.5, 0.1), (2.0, 0.3), (5.0, 0.05), (20.0, 0.2)])
def test_on_target_centre_is_flagged_at_most_at_nominal_rate_poisson_lognormal(e, tau2):
    # Under the random-effects null O | u ~ Poisson(E e^u), u ~ N(0, tau2), enumerate as above.
    top = poisson_quantile(1 - 1e-12, e, tau2) + 5
    counts = range(top + 1)
    pmf = [poisson_pmf(o, e, tau2) for o in counts]
    assert sum(pmf) == pytest.approx(1.0, abs=1e-10)
    _assert_nominal(_flag_probabilities(pmf, [poisson_flag(o, e, tau2)["flag"] for o in counts]))


@pytest.mark.parametrize("theta0", [0.02, 0.05, 0.1, 0.3, 0.5])
def test_on_target_centre_is_flagged_at_most_at_nominal_rate_binomial(theta0):
    for n in range(1, 201):
        pmf = binom.pmf(np.arange(n + 1), n, theta0)
        _assert_nominal(_flag_probabilities(pmf, [binomial_flag(x, n, theta0)["flag"] for x in range(n + 1)]))


def test_old_rule_plotted_point_against_interpolated_line_exceeds_the_nominal_rate():
    # funnel_position(x, n, theta0) calls a centre "above" when x/n > (r_p - alpha)/n.
    # n = 10, theta0 = 0.1: F(2) = 0.929809, F(3) = 0.987205, so r_0.975 = 3 and
    # alpha = (0.987205 - 0.975)/(0.987205 - 0.929809) = 0.212642, limit = 0.278736 < 3/10:
    # 3 of 10 is drawn above the 95 % line although P(X >= 3) = 0.070191 > 0.025.
    assert funnel_position(3, 10, 0.1) == POSITION_ABOVE_95
    assert binomial_flag(3, 10, 0.1)["flag"] is None
    old = sum(
        binom.pmf(x, 10, 0.1)
        for x in range(11)
        if funnel_position(x, 10, 0.1) in (POSITION_ABOVE_95, POSITION_ABOVE_998)
    )
    assert old == pytest.approx(0.0701908264, abs=1e-9)
    new = sum(binom.pmf(x, 10, 0.1) for x in range(11) if binomial_flag(x, 10, 0.1)["flag"] in HIGH)
    assert new == pytest.approx(0.0127951984, abs=1e-9)
    # Over n = 1..60 at 10 %, the old rule's upper rate exceeds 0.025 at most volumes; the new never does.
    exceed = []
    for n in range(1, 61):
        pmf = binom.pmf(np.arange(n + 1), n, 0.1)
        above = {POSITION_ABOVE_95, POSITION_ABOVE_998}
        rate = sum(pmf[x] for x in range(n + 1) if funnel_position(x, n, 0.1) in above)
        if rate > WARNING_P:
            exceed.append(n)
    assert len(exceed) > 30 and 10 in exceed


def test_old_rule_exceeds_the_nominal_rate_for_poisson_funnel_too():
    # E = 2: F(4) = 0.947347, F(5) = 0.983436 -> r_0.975 = 5, alpha = 0.260806, limit = 2.369597.
    # O = 5 (O/E = 2.5) is drawn above the line, yet P(X >= 5) = 0.052653; only O >= 6 is flagged.
    limit = poisson_funnel_limits(2.0, 0.975)
    f4, f5 = poisson.cdf(4, 2.0), poisson.cdf(5, 2.0)
    assert limit == pytest.approx((5 - (f5 - 0.975) / (f5 - f4)) / 2.0, abs=1e-12)
    assert 5 / 2.0 > limit and poisson_flag(5, 2.0)["flag"] is None
    assert poisson_flag(6, 2.0)["flag"] == "warning_high"
    old = sum(poisson.pmf(o, 2.0) for o in range(60) if o / 2.0 > limit)
    assert old == pytest.approx(1 - f4, abs=1e-12) and old > WARNING_P


# --------------------------------------------------------------------------- funnel limits


@pytest.mark.parametrize("row", R["funnel"], ids=lambda r: f"E{r['expected']}-p{r['p']}")
def test_exact_poisson_funnel_limits_match_r(row):
    assert close(poisson_funnel_limits(row["expected"], row["p"]), row["limit"])


@pytest.mark.parametrize("row", R["pln_funnel"], ids=lambda r: f"E{r['expected']}-t{r['tau2']}-p{r['p']}")
def test_random_effects_funnel_limits_match_r_integrate(row):
    assert close(poisson_funnel_limits(row["expected"], row["p"], tau2=row["tau2"]), row["limit"])


@pytest.mark.parametrize("row", R["pln_tail"], ids=lambda r: f"O{r['observed']}-E{r['expected']}-t{r['tau2']}")
def test_random_effects_tails_match_r_integrate(row):
    f = poisson_flag(row["observed"], row["expected"], tau2=row["tau2"])
    assert close(f["p_high"], row["p_high"]) and close(f["p_low"], row["p_low"])
    assert f["method"] == "poisson_lognormal"


def test_funnel_limits_by_hand_small_e():
    # E = 0.5: F(0) = e^-0.5 = 0.606531, F(1) = 1.5 e^-0.5 = 0.909796, F(2) = 1.625 e^-0.5 = 0.985612.
    # p = 0.975: r = 2, alpha = (0.985612 - 0.975)/(0.985612 - 0.909796) = 0.139972, limit = 3.720056.
    f1, f2 = 1.5 * math.exp(-0.5), 1.625 * math.exp(-0.5)
    assert poisson_funnel_limits(0.5, 0.975) == pytest.approx((2 - (f2 - 0.975) / (f2 - f1)) / 0.5, abs=1e-12)
    # Lower limits: r = 0, alpha = (F(0) - p)/F(0) > 0, so (0 - alpha)/E < 0 is floored at 0.
    assert poisson_funnel_limits(0.5, 0.025) == 0.0
    assert poisson_funnel_limits([0.5, 0.5], 0.975) == [poisson_funnel_limits(0.5, 0.975)] * 2


def test_random_effects_limits_reduce_to_exact_and_approach_log_normal():
    for e in (0.7, 4.0, 30.0):
        for p in (0.001, 0.025, 0.975, 0.999):
            exact = poisson_funnel_limits(e, p)
            assert poisson_funnel_limits(e, p, tau2=1e-10) == pytest.approx(exact, abs=1e-6)
            assert poisson_funnel_limits(e, p, tau2=0.0) == exact
    # Large E: log(O/E) ~ N(u, 1/E) with u ~ N(0, tau2), so the limits tend to exp(z sqrt(1/E + tau2)).
    for p in (0.001, 0.025, 0.975, 0.999):
        assert math.log(poisson_funnel_limits(1e4, p, tau2=0.1)) == pytest.approx(
            math.log(log_normal_funnel_limits(1e4, p, tau2=0.1)), abs=2e-3
        )
        assert math.log(poisson_funnel_limits(1e4, p)) == pytest.approx(
            math.log(log_normal_funnel_limits(1e4, p)), abs=2e-3
        )
    # and random effects widen the funnel.
    assert poisson_funnel_limits(20.0, 0.975, tau2=0.2) > poisson_funnel_limits(20.0, 0.975)
    assert poisson_funnel_limits(20.0, 0.025, tau2=0.2) < poisson_funnel_limits(20.0, 0.025)


def test_log_normal_limits_formula():
    z = 1.959963984540054
    assert log_normal_funnel_limits(10.0, 0.975, tau2=0.04) == pytest.approx(math.exp(z * math.sqrt(0.1 + 0.04)))
    assert log_normal_funnel_limits([10.0], 0.025) == [pytest.approx(math.exp(-z * math.sqrt(0.1)))]


def test_random_effects_distribution_is_a_distribution():
    e, t2 = 6.0, 0.25
    pmf = [poisson_pmf(r, e, t2) for r in range(200)]
    # the lognormal's long right tail: P(O >= 200) is about 2e-12 here
    assert sum(pmf) + poisson_sf(200, e, t2) == pytest.approx(1.0, abs=1e-13)
    assert poisson_cdf(7, e, t2) == pytest.approx(sum(pmf[:8]), abs=1e-12)
    assert poisson_sf(8, e, t2) == pytest.approx(1 - sum(pmf[:8]), abs=1e-12)
    # the quantile is the smallest r with F(r) >= p
    for p in (0.001, 0.025, 0.5, 0.975, 0.999):
        r = poisson_quantile(p, e, t2)
        assert poisson_cdf(r, e, t2) >= p > poisson_cdf(r - 1, e, t2)
        assert poisson_quantile(p, e) == int(poisson.ppf(p, e))


def test_bands_shape_and_order():
    rows = poisson_funnel_bands([0.5, 3, 12.5, 80], tau2=0.0)
    assert [r["expected"] for r in rows] == [0.5, 3.0, 12.5, 80.0]
    for r in rows:
        assert set(r) == {"expected", "lower_998", "lower_95", "upper_95", "upper_998"}
        assert 0.0 <= r["lower_998"] <= r["lower_95"] <= 1.0 <= r["upper_95"] <= r["upper_998"]
        assert r["upper_95"] == poisson_funnel_limits(r["expected"], 0.975)
        assert r["lower_998"] == poisson_funnel_limits(r["expected"], 0.001)
    wide = poisson_funnel_bands([12.5], tau2=0.3)[0]
    assert wide["upper_998"] == poisson_funnel_limits(12.5, 0.999, tau2=0.3)
    with pytest.raises(ValueError):
        poisson_funnel_bands([0.0])
    with pytest.raises(ValueError):
        poisson_funnel_limits(1.0, 1.0)


# --------------------------------------------------------------------------- DerSimonian-Laird

# BCG vaccine trials (Colditz et al., JAMA 1994;271:698; metafor dat.bcg):
# (trial, author, year, vaccinated TB+, vaccinated TB-, control TB+, control TB-).
BCG = [
    (1, "Aronson", 1948, 4, 119, 11, 128),
    (2, "Ferguson & Simes", 1949, 6, 300, 29, 274),
    (3, "Rosenthal et al", 1960, 3, 228, 11, 209),
    (4, "Hart & Sutherland", 1977, 62, 13536, 248, 12619),
    (5, "Frimodt-Moller et al", 1973, 33, 5036, 47, 5761),
    (6, "Stein & Aronson", 1953, 180, 1361, 372, 1079),
    (7, "Vandiviere et al", 1973, 8, 2537, 10, 619),
    (8, "TPT Madras", 1980, 505, 87886, 499, 87892),
    (9, "Coetzee & Berjak", 1968, 29, 7470, 45, 7232),
    (10, "Rosenthal et al", 1961, 17, 1699, 65, 1600),
    (11, "Comstock et al", 1974, 186, 50448, 141, 27197),
    (12, "Comstock & Webster", 1969, 5, 2493, 3, 2338),
    (13, "Comstock et al", 1976, 27, 16886, 29, 17825),
]


def bcg_log_risk_ratios():
    # log RR = log((a/(a+b)) / (c/(c+d))), var = 1/a - 1/(a+b) + 1/c - 1/(c+d) (metafor escalc "RR").
    ys, vs = [], []
    for _, _, _, a, b, c, d in BCG:
        ys.append(math.log((a / (a + b)) / (c / (c + d))))
        vs.append(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    return ys, vs


def test_bcg_counts_are_metafors():
    ref = R["bcg"]
    assert [row[3:] for row in BCG] == [
        tuple(x) for x in zip(ref["tpos"], ref["tneg"], ref["cpos"], ref["cneg"], strict=True)
    ]
    assert [row[2] for row in BCG] == ref["year"]
    ys, vs = bcg_log_risk_ratios()
    assert all(close(a, b) for a, b in zip(ys, ref["yi"], strict=True))
    assert all(close(a, b) for a, b in zip(vs, ref["vi"], strict=True))


def test_dersimonian_laird_bcg_published_values():
    res = dersimonian_laird(*bcg_log_risk_ratios())
    assert set(res) == {"tau2", "q", "df", "i2", "pooled", "pooled_se"}
    assert round(res["tau2"], 4) == 0.3088
    assert round(res["q"], 2) == 152.23 and res["df"] == 12
    assert round(100 * res["i2"], 2) == 92.12
    assert round(res["pooled"], 4) == -0.7141 and round(res["pooled_se"], 4) == 0.1787
    # pooled risk ratio exp(-0.7141) = 0.4896
    assert round(math.exp(res["pooled"]), 4) == 0.4896


def test_dersimonian_laird_bcg_matches_metafor():
    res = dersimonian_laird(*bcg_log_risk_ratios())
    for key in ("tau2", "q", "df", "i2", "pooled", "pooled_se"):
        assert close(res[key], R["bcg"][key]), key


def test_tau2_log_ratio_matches_metafor_irln():
    ref = R["irln"]
    res = tau2_log_ratio(ref["observed"], ref["expected"])
    for key in ("tau2", "q", "df", "i2", "pooled", "pooled_se"):
        assert close(res[key], ref[key]), key
    # the first centre has O = 0: y = log(0.5/1.8), v = 1/0.5 = 2 (continuity 1/2), as metafor.
    assert ref["observed"][0] == 0
    assert close(math.log(0.5 / 1.8), ref["yi"][0]) and close(2.0, ref["vi"][0])


def test_tau2_logit_matches_metafor_plo():
    ref = R["plo"]
    res = tau2_logit(ref["events"], ref["n"])
    for key in ("tau2", "q", "df", "i2", "pooled", "pooled_se"):
        assert close(res[key], ref[key]), key
    # 0/10 -> log(0.5/10.5), var 1/0.5 + 1/10.5; 2/2 -> log(2.5/0.5), var 1/2.5 + 1/0.5 (as metafor)
    assert close(math.log(0.5 / 10.5), ref["yi"][0]) and close(1 / 0.5 + 1 / 10.5, ref["vi"][0])
    assert close(math.log(2.5 / 0.5), ref["yi"][6]) and close(1 / 2.5 + 1 / 0.5, ref["vi"][6])


def test_dersimonian_laird_by_hand():
    # y = (0, 2), v = (1, 1): w = (1, 1), fixed mean 1, Q = 1 + 1 = 2, df = 1,
    # C = 2 - 2/2 = 1, tau2 = (2 - 1)/1 = 1, I2 = (2 - 1)/2 = 0.5; w* = (1/2, 1/2), pooled 1, se 1.
    assert dersimonian_laird([0, 2], [1, 1]) == pytest.approx(
        {"tau2": 1.0, "q": 2.0, "df": 1, "i2": 0.5, "pooled": 1.0, "pooled_se": 1.0}
    )
    # y = (0, 1), v = (1, 1): Q = 0.5 < df = 1, so tau2 = max(0, -0.5) = 0 and I2 = 0 (truncated).
    res = dersimonian_laird([0, 1], [1, 1])
    assert res["tau2"] == 0.0 and res["i2"] == 0.0 and res["q"] == pytest.approx(0.5)
    assert res["pooled_se"] == pytest.approx(math.sqrt(0.5))
    # One estimate: no heterogeneity to estimate.
    one = dersimonian_laird([0.3], [0.04])
    assert one == {"tau2": 0.0, "q": 0.0, "df": 0, "i2": 0.0, "pooled": 0.3, "pooled_se": pytest.approx(0.2)}


def test_dersimonian_laird_validation():
    with pytest.raises(ValueError):
        dersimonian_laird([], [])
    with pytest.raises(ValueError):
        dersimonian_laird([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        dersimonian_laird([1.0], [0.0])
    with pytest.raises(ValueError):
        tau2_log_ratio([1, 2], [1.0])
    with pytest.raises(ValueError):
        tau2_log_ratio([1], [0.0])
    with pytest.raises(ValueError):
        tau2_logit([3], [2])
