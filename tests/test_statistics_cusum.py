"""Bernoulli / risk-adjusted CUSUM (Steiner, Cook, Farewell, Treasure, *Biostatistics* 2000;1:441).

Where each asserted figure comes from:

* Parsonnet risk model logit(p) = −3.68 + 0.077·score and the risks
  p(0) = 0.025, p(50) = 0.542 (3 d.p.): Steiner SH (2014) "Risk-adjusted
  monitoring of outcomes in health care", in *Statistics in Action*, p. 234, and
  p(0) = 0.025, p(71) ≈ 0.86 from Steiner et al. (2000) p. 445 — both as asserted
  in the R package ``vlad``'s ``tests/testthat/test-gettherisk.R``.
* CUSUM weights W for R_A = 2, Parsonnet 0 and 50, survive / die:
  −0.024, 0.669, −0.433, 0.26 (Steiner 2014 p. 234; Steiner et al. 2000 p. 446
  prints −0.024, 0.67, −0.43, 0.26) and for R_A = 1/2: 0.012, −0.681, 0.316,
  −0.377 (Steiner 2014 p. 234) — as asserted in ``vlad``'s
  ``tests/testthat/test-llr_score.R``.  I have not read those book pages
  myself; the citation is the one the vlad tests give.
* Everything else is derived by hand from the formula (arithmetic in comments,
  exact with ``fractions.Fraction`` where stated), or is a property / exact-enumeration
  check of the simulation, not a citation.
* VLAD (Lovegrove et al., *Lancet* 1997;350:1128): V_t = Σ (p_s − y_s), worked by hand
  in exact fractions.
"""

import itertools
import math
from fractions import Fraction

import pytest

from reports.statistics.cusum import (
    FIXED_LIMIT_FALSE_SIGNAL_PROBABILITY,
    FIXED_LIMIT_HORIZON,
    cusum_arl_by_simulation,
    cusum_chart,
    cusum_scores,
    cusum_threshold_by_simulation,
    cusum_weight,
    fixed_control_limit,
    parsonnet_risk,
    vlad,
)


def test_parsonnet_risks_as_published():
    assert round(parsonnet_risk(0), 3) == 0.025  # Steiner et al. 2000 p. 445; Steiner 2014 p. 234
    assert round(parsonnet_risk(50), 3) == 0.542  # Steiner 2014 p. 234
    assert parsonnet_risk(71) == pytest.approx(0.86, abs=0.01)  # Steiner et al. 2000 p. 445 (vlad: tol 0.03)


# (Parsonnet score, died?, W) — Steiner (2014) p. 234, R_A = 2 and R_A = 1/2, rounded to 3 d.p.
STEINER_2014_RA2 = [(0, 0, -0.024), (0, 1, 0.669), (50, 0, -0.433), (50, 1, 0.260)]
STEINER_2014_RA_HALF = [(0, 0, 0.012), (0, 1, -0.681), (50, 0, 0.316), (50, 1, -0.377)]


@pytest.mark.parametrize("score,died,w", STEINER_2014_RA2)
def test_weights_ra2_match_steiner_2014(score, died, w):
    assert round(cusum_weight(died, parsonnet_risk(score), odds_ratio=2.0), 3) == w


@pytest.mark.parametrize("score,died,w", STEINER_2014_RA_HALF)
def test_weights_ra_half_match_steiner_2014(score, died, w):
    assert round(cusum_weight(died, parsonnet_risk(score), odds_ratio=0.5), 3) == w


def test_weights_ra2_match_steiner_2000_to_its_printed_precision():
    # Steiner et al. (2000) p. 446 prints -0.024, 0.67, -0.43, 0.26.
    printed = [(0, 0, -0.024, 3), (0, 1, 0.67, 2), (50, 0, -0.43, 2), (50, 1, 0.26, 2)]
    for score, died, w, dp in printed:
        assert round(cusum_weight(died, parsonnet_risk(score), 2.0), dp) == w


def test_weights_by_hand():
    # p = 0.1, R_A = 2: 1 - p + R_A p = 1.1
    #   death:    ln(2 / 1.1) = ln(1.818182) = 0.597837
    #   survival: -ln(1.1)                   = -0.095310
    assert cusum_weight(1, 0.1, 2.0) == pytest.approx(0.597837, abs=1e-6)
    assert cusum_weight(0, 0.1, 2.0) == pytest.approx(-0.095310, abs=1e-6)
    # R_A = 1 carries no information: both weights are 0.
    assert cusum_weight(1, 0.3, 1.0) == 0.0 and cusum_weight(0, 0.3, 1.0) == 0.0


def test_scores_accept_constant_or_per_case_risk():
    outcomes = [0, 1, 0]
    assert cusum_scores(outcomes, 0.1) == cusum_scores(outcomes, [0.1, 0.1, 0.1])
    with pytest.raises(ValueError):
        cusum_scores(outcomes, [0.1, 0.1])
    with pytest.raises(ValueError):
        cusum_scores([2], 0.1)
    with pytest.raises(ValueError):
        cusum_scores([1], 1.5)
    with pytest.raises(ValueError):
        cusum_scores([1], 0.1, odds_ratio=0)


def test_chart_path_by_hand_with_reset():
    # p = 0.1, R_A = 2, W(death) = 0.597837, W(survival) = -0.095310, h = 1.0
    #   t0 y=1: X = 0.597837
    #   t1 y=0: X = 0.502527
    #   t2 y=1: X = 1.100364  >= 1.0 -> signal at index 2, restart at 0
    #   t3 y=0: X = max(0, -0.095310) = 0
    #   t4 y=1: X = 0.597837
    chart = cusum_chart([1, 0, 1, 0, 1], 0.1, odds_ratio=2.0, h=1.0)
    assert chart.values == pytest.approx([0.597837, 0.502527, 1.100364, 0.0, 0.597837], abs=1e-6)
    assert chart.signals == [2]
    assert chart.reset is True and chart.h == 1.0
    d = chart.to_dict()
    assert set(d) == {"scores", "values", "signals", "h", "odds_ratio", "reset"}


def test_chart_without_reset_keeps_accumulating():
    # Same cases, no reset: t3 = 1.100364 - 0.095310 = 1.005054 (>= 1, signals again), t4 = 1.602891
    chart = cusum_chart([1, 0, 1, 0, 1], 0.1, odds_ratio=2.0, h=1.0, reset=False)
    assert chart.values == pytest.approx([0.597837, 0.502527, 1.100364, 1.005054, 1.602891], abs=1e-6)
    assert chart.signals == [2, 3, 4]


def test_chart_without_h_never_signals_and_floors_at_zero():
    chart = cusum_chart([0] * 10, 0.2)
    assert chart.values == [0.0] * 10 and chart.signals == []


def test_risk_adjusted_chart_uses_per_case_weights():
    risks = [parsonnet_risk(s) for s in (0, 50, 0)]
    chart = cusum_chart([1, 0, 0], risks, odds_ratio=2.0, h=5)
    # With R_A = 2, 1 - p + R_A p = 1 + p.  Unrounded: p(0) = 0.024602, p(50) = 0.542398;
    # death at 0 = ln(2/1.024602) = 0.668843, survival at 50 = -ln(1.542398) = -0.433338,
    # survival at 0 = -ln(1.024602) = -0.024305.  Path: 0.668843, 0.235505, 0.211200.
    w_die_0 = math.log(2 / (1 + parsonnet_risk(0)))
    w_surv_50 = -math.log(1 + parsonnet_risk(50))
    w_surv_0 = -math.log(1 + parsonnet_risk(0))
    assert (round(w_die_0, 3), round(w_surv_50, 3), round(w_surv_0, 3)) == (0.669, -0.433, -0.024)
    expected = [w_die_0, w_die_0 + w_surv_50, w_die_0 + w_surv_50 + w_surv_0]
    assert chart.values == pytest.approx(expected, abs=1e-12)
    assert [round(v, 3) for v in chart.values] == [0.669, 0.236, 0.211]


def test_arl_by_simulation_against_a_geometric_known_answer():
    # With h = 0.5 < W(death) = 0.598 and X staying at 0 through survivals, the chart
    # signals at the first complication: run length ~ Geometric(p), ARL = 1/p.
    res = cusum_arl_by_simulation(0.1, 2.0, 0.5, n_sim=20000, seed=7)
    assert res["arl"] == pytest.approx(10.0, abs=4 * res["se"])
    assert res["censored"] == 0
    # Out of control with true OR 2: p1 = 0.2/1.1... odds 0.1/0.9*2 = 0.2222, p1 = 0.181818, ARL = 5.5
    res1 = cusum_arl_by_simulation(0.1, 2.0, 0.5, n_sim=20000, seed=7, true_odds_ratio=2.0)
    assert res1["arl"] == pytest.approx(5.5, abs=4 * res1["se"])


def exact_false_alarm_probability(p: float, odds_ratio: float, h: float, n_cases: int) -> float:
    """P(max_t X_t >= h within n_cases) by enumerating all 2^n outcome sequences."""
    w1, w0 = cusum_weight(1, p, odds_ratio), cusum_weight(0, p, odds_ratio)
    total = 0.0
    for seq in itertools.product((0, 1), repeat=n_cases):
        x, hit = 0.0, False
        for y in seq:
            x = max(0.0, x + (w1 if y else w0))
            if x >= h:
                hit = True
                break
        if hit:
            k = sum(seq)
            total += p**k * (1 - p) ** (n_cases - k)
    return total


def test_threshold_for_false_alarm_rate_is_right_by_exact_enumeration():
    p, ra, n_cases, alpha = 0.2, 2.0, 12, 0.05
    res = cusum_threshold_by_simulation(p, ra, false_alarm_rate=alpha, n_cases=n_cases, n_sim=40000, seed=3)
    h = res["h"]
    exact_at_h = exact_false_alarm_probability(p, ra, h, n_cases)
    exact_below = exact_false_alarm_probability(p, ra, round(h - 0.01, 2), n_cases)
    se = math.sqrt(alpha * (1 - alpha) / 40000)
    assert exact_at_h <= alpha + 4 * se
    assert exact_below >= alpha - 4 * se  # one grid step lower would alarm too often
    assert res["false_alarm_rate"] == pytest.approx(exact_at_h, abs=4 * se)


def test_threshold_simulation_is_deterministic_and_monotone():
    kw = {"n_cases": 60, "n_sim": 5000, "seed": 11}
    a = cusum_threshold_by_simulation(0.1, 2.0, false_alarm_rate=0.05, **kw)
    b = cusum_threshold_by_simulation(0.1, 2.0, false_alarm_rate=0.05, **kw)
    assert a == b
    looser = cusum_threshold_by_simulation(0.1, 2.0, false_alarm_rate=0.2, **kw)
    assert looser["h"] < a["h"]
    assert a["false_alarm_rate"] <= 0.05
    # a case-mix list of risks works too
    mix = [parsonnet_risk(s) for s in (0, 5, 10, 20, 40)]
    c = cusum_threshold_by_simulation(mix, 2.0, false_alarm_rate=0.05, **kw)
    assert c["h"] > 0


def test_threshold_for_target_arl0_is_smallest_grid_value():
    res = cusum_threshold_by_simulation(0.1, 2.0, target_arl0=200, n_sim=500, seed=5)
    h = res["h"]
    assert res["arl0"] >= 200
    below = cusum_arl_by_simulation(0.1, 2.0, round(h - 0.01, 2), n_sim=500, seed=5, max_cases=20000)
    assert below["arl"] < 200


def test_threshold_argument_validation():
    with pytest.raises(ValueError):
        cusum_threshold_by_simulation(0.1, 2.0)
    with pytest.raises(ValueError):
        cusum_threshold_by_simulation(0.1, 2.0, false_alarm_rate=0.05, target_arl0=100, n_cases=10)
    with pytest.raises(ValueError):
        cusum_threshold_by_simulation(0.1, 2.0, false_alarm_rate=0.05)


# --------------------------------------------------------------------------- risk-adjusted weights, exact


# (y, p, R_A, exact argument of the log).  Steiner et al. (2000): with d = 1 − p + R_A·p,
# W = ln(R_A / d) for y = 1 and ln(1 / d) for y = 0.  d in exact fractions:
#   p = 1/4, R_A = 2:   d = 3/4 + 2/4 = 5/4    -> death ln(8/5),  survival ln(4/5)
#   p = 1/2, R_A = 3:   d = 1/2 + 3/2 = 2      -> death ln(3/2),  survival ln(1/2)
#   p = 1/3, R_A = 1/2: d = 2/3 + 1/6 = 5/6    -> death ln(3/5),  survival ln(6/5)
#   p = 1/10, R_A = 2:  d = 9/10 + 2/10 = 11/10 -> death ln(20/11), survival ln(10/11)
#   p = 0, R_A = 2:     d = 1                  -> death ln 2,     survival 0
#   p = 1, R_A = 2:     d = 2                  -> death 0,        survival ln(1/2)
EXACT_WEIGHTS = [
    (1, Fraction(1, 4), Fraction(2), Fraction(8, 5)),
    (0, Fraction(1, 4), Fraction(2), Fraction(4, 5)),
    (1, Fraction(1, 2), Fraction(3), Fraction(3, 2)),
    (0, Fraction(1, 2), Fraction(3), Fraction(1, 2)),
    (1, Fraction(1, 3), Fraction(1, 2), Fraction(3, 5)),
    (0, Fraction(1, 3), Fraction(1, 2), Fraction(6, 5)),
    (1, Fraction(1, 10), Fraction(2), Fraction(20, 11)),
    (0, Fraction(1, 10), Fraction(2), Fraction(10, 11)),
    (1, Fraction(0), Fraction(2), Fraction(2)),
    (0, Fraction(0), Fraction(2), Fraction(1)),
    (1, Fraction(1), Fraction(2), Fraction(1)),
    (0, Fraction(1), Fraction(2), Fraction(1, 2)),
]


@pytest.mark.parametrize("y,p,ra,arg", EXACT_WEIGHTS)
def test_risk_adjusted_weights_exact(y, p, ra, arg):
    d = 1 - p + ra * p
    assert (ra / d if y else 1 / d) == arg  # the hand arithmetic above, checked exactly
    assert cusum_weight(y, float(p), float(ra)) == pytest.approx(math.log(arg), rel=1e-14, abs=1e-15)


def test_risk_adjusted_chart_resets_after_a_signal_and_returns_indices():
    # risks 1/4, 1/2, 1/4, 1/4, 1/2 with R_A = 2: W(death | 1/4) = ln(8/5) = 0.470004,
    # W(death | 1/2) = ln(4/3) = 0.287682, W(survival | 1/4) = ln(4/5) = -0.223144.
    # Path with h = 0.7: 0.470004, 0.757686 (signal at 1, reset), then 0 (survival floors at 0),
    # 0.470004, 0.757686 (signal at 4).
    risks = [0.25, 0.5, 0.25, 0.25, 0.5]
    chart = cusum_chart([1, 1, 0, 1, 1], risks, odds_ratio=2.0, h=0.7)
    a, b = math.log(8 / 5), math.log(4 / 3)
    assert chart.values == pytest.approx([a, a + b, 0.0, a, a + b], abs=1e-12)
    assert chart.signals == [1, 4] and chart.reset is True


def test_signals_with_a_fixed_h_do_not_change_as_cases_accrue():
    # With h fixed, the chart on the first k cases signals exactly where the full chart does.
    outcomes = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1]
    risks = [0.1, 0.2, 0.05, 0.3, 0.1, 0.15, 0.2, 0.1, 0.05, 0.25, 0.1, 0.1, 0.2, 0.3, 0.1, 0.1, 0.05, 0.2]
    full = cusum_chart(outcomes, risks, odds_ratio=2.0, h=1.5)
    assert full.signals  # the example does signal
    for k in range(1, len(outcomes) + 1):
        part = cusum_chart(outcomes[:k], risks[:k], odds_ratio=2.0, h=1.5)
        assert part.signals == [t for t in full.signals if t < k]
        assert part.values == full.values[:k]


# --------------------------------------------------------------------------- VLAD


def test_vlad_by_hand():
    # y = 0, 1, 0, 0, 1 with p = 1/10, 1/5, 3/10, 1/10, 1/2:
    # increments p - y = 1/10, -4/5, 3/10, 1/10, -1/2; running sums 1/10, -7/10, -2/5, -3/10, -4/5.
    outcomes = [0, 1, 0, 0, 1]
    risks = [Fraction(1, 10), Fraction(1, 5), Fraction(3, 10), Fraction(1, 10), Fraction(1, 2)]
    exact = list(itertools.accumulate(p - y for p, y in zip(risks, outcomes, strict=True)))
    assert exact == [Fraction(1, 10), Fraction(-7, 10), Fraction(-2, 5), Fraction(-3, 10), Fraction(-4, 5)]
    assert vlad(outcomes, [float(p) for p in risks]) == pytest.approx([float(v) for v in exact], abs=1e-12)


def test_vlad_constant_risk_and_final_value_is_expected_minus_observed():
    # constant p = 0.2 over 10 cases with 3 complications: E - O = 2 - 3 = -1.
    outcomes = [0, 0, 1, 0, 0, 1, 0, 0, 1, 0]
    v = vlad(outcomes, 0.2)
    assert len(v) == 10 and v[-1] == pytest.approx(-1.0, abs=1e-12)
    assert v[0] == pytest.approx(0.2) and v[2] == pytest.approx(0.6 - 1.0)
    assert vlad([], 0.2) == []
    with pytest.raises(ValueError):
        vlad([0, 2], 0.1)
    with pytest.raises(ValueError):
        vlad([0, 1], [0.1])
    with pytest.raises(ValueError):
        vlad([0], [1.2])


# --------------------------------------------------------------------------- fixed control limit


def exact_false_signal_probability_markov(p: float, odds_ratio: float, h: float, n_cases: int) -> float:
    """P(X_t >= h for some t <= n_cases), constant risk, by exact dynamic programming.

    Since its last visit to 0 the chart equals k1·W1 + k0·W0 for the counts (k1, k0) of
    complications and uncomplicated cases since then, so the pair is an exact state; a path
    is absorbed when it reaches h.  (This is 2^n enumeration with equal states merged.)
    """
    w1, w0 = cusum_weight(1, p, odds_ratio), cusum_weight(0, p, odds_ratio)
    states = {(0, 0): 1.0}
    signalled = 0.0
    for _ in range(n_cases):
        nxt: dict = {}
        for (k1, k0), pr in states.items():
            for key, q in (((k1 + 1, k0), p), ((k1, k0 + 1), 1 - p)):
                x = key[0] * w1 + key[1] * w0
                if x >= h:
                    signalled += pr * q
                    continue
                if x <= 0:
                    key = (0, 0)
                nxt[key] = nxt.get(key, 0.0) + pr * q
        states = nxt
    return signalled


def test_exact_markov_enumeration_agrees_with_brute_force():
    for h in (0.9, 1.3, 2.0):
        assert exact_false_signal_probability_markov(0.2, 2.0, h, 12) == pytest.approx(
            exact_false_alarm_probability(0.2, 2.0, h, 12), abs=1e-12
        )


def test_fixed_control_limit_is_right_by_exact_enumeration_over_100_cases():
    res = fixed_control_limit(0.05, 100, 2.0, baseline_risk=0.1)
    h = res["h"]
    # Exact, for p = 0.1, R_A = 2 over 100 cases: P(signal | h = 3.38) = 0.049277,
    # P(signal | h = 3.37) = 0.050492, so 3.38 is the smallest 2-d.p. h with probability <= 0.05.
    assert h == 3.38
    at_h = exact_false_signal_probability_markov(0.1, 2.0, h, 100)
    below = exact_false_signal_probability_markov(0.1, 2.0, round(h - 0.01, 2), 100)
    assert at_h <= 0.05 < below
    assert res["false_signal_probability"] == pytest.approx(at_h, abs=4 * res["mc_se"])
    assert res["target_false_signal_probability"] == 0.05
    assert res["horizon"] == FIXED_LIMIT_HORIZON == 100
    assert FIXED_LIMIT_FALSE_SIGNAL_PROBABILITY == 0.05
    assert set(res) == {
        "h",
        "false_signal_probability",
        "target_false_signal_probability",
        "mc_se",
        "horizon",
        "odds_ratio",
        "reference_risk",
        "n_sim",
        "seed",
    }


def test_fixed_control_limit_is_deterministic_and_takes_no_surgeon_count():
    mix = [parsonnet_risk(s) for s in (0, 5, 10, 20, 40)]
    a = fixed_control_limit(baseline_risk=mix, n_sim=20000)
    b = fixed_control_limit(baseline_risk=mix, n_sim=20000)
    assert a == b
    assert a["reference_risk"] == {"n_risks": 5, "mean": pytest.approx(sum(mix) / 5)}
    assert a["false_signal_probability"] <= 0.05
    # A longer horizon needs a higher line for the same false-signal probability.
    longer = fixed_control_limit(0.05, 300, baseline_risk=mix, n_sim=20000)
    assert longer["h"] > a["h"]
    with pytest.raises(TypeError):
        fixed_control_limit()  # the reference risk must be stated
    with pytest.raises(ValueError):
        fixed_control_limit(0.0, baseline_risk=0.1)
    with pytest.raises(ValueError):
        fixed_control_limit(0.05, 0, baseline_risk=0.1)
    with pytest.raises(ValueError):
        fixed_control_limit(baseline_risk=1.5)
    with pytest.raises(ValueError):
        fixed_control_limit(baseline_risk=[])
