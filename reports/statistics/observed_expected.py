"""Observed against expected: exact Poisson comparison, funnel limits, flags and between-centre variance.

Indirect standardisation (``shared/domain/STATISTICS.md``, "Case-mix adjustment"): a case-mix
model gives every implantation an expected risk; a centre's expected count ``E`` is the sum
of its risks and its standardised ratio is ``O/E``.  Under the null hypothesis that the centre
performs as the model predicts, ``O ~ Poisson(E)``.

What is here, and whose formula each follows:

* :func:`poisson_ratio_interval` -- the exact interval for O/E of Ulm (*Am J Epidemiol*
  1990;131:373), which is also R's ``poisson.test(O, E)$conf.int``.
* :func:`poisson_funnel_limits`, :func:`poisson_funnel_bands` -- funnel limits for O/E against
  E (Spiegelhalter, *Stat Med* 2005;24:1185): exact Poisson with the Appendix A.1
  interpolation when ``tau2 = 0``; with ``tau2 > 0`` the same construction on the
  Poisson-lognormal random-effects distribution (see below).
  :func:`log_normal_funnel_limits` is the paper's normal approximation on the log scale,
  ``exp(±z·sqrt(1/E + τ²))``, for comparison.
* :func:`poisson_flag`, :func:`binomial_flag` -- flags from the exact one-sided tail
  probability of the observed count (not mid-p, and never the plotted point against the
  interpolated line; see :func:`poisson_flag` for why).
* :func:`dersimonian_laird`, :func:`tau2_log_ratio`, :func:`tau2_logit` -- the between-centre
  variance τ² of DerSimonian & Laird (*Control Clin Trials* 1986;7:177).

Random effects (``tau2 > 0``).  Spiegelhalter (2005, section on over-dispersion: the additive
random-effects model) assumes each centre's true value varies about the target on a
transformed scale with variance τ², so a centre exactly "on target" is one whose true log
ratio ``u`` is drawn from N(0, τ²).  We keep that model and do *not* approximate the Poisson
sampling by a normal one::

    O | u ~ Poisson(E·exp(u)),   u ~ N(0, τ²)          (Poisson-lognormal)

and apply the exact-tail / interpolation rules to this distribution.  Why: (1) at τ² = 0 it
is exactly the Poisson, so the flags and limits do not jump when the DerSimonian-Laird
estimate, which is truncated at 0, moves from 0 to a small positive value; (2) the normal
approximation on the log scale cannot be evaluated at O = 0 (log 0) and is poor at the
small E of single centres; (3) for large E, log(O/E) is approximately N(u, 1/E), so the
limits approach Spiegelhalter's ``exp(±z_p·sqrt(1/E + τ²))`` (checked in the tests).  u is
centred at 0, i.e. the *median* true ratio is the target 1, as on Spiegelhalter's log scale
(the mean true ratio is then exp(τ²/2)).  The mixture probabilities are integrals over u,
computed by the trapezoidal rule on a fine grid (they agree with R's ``integrate`` to about
1e-13).  The Poisson-lognormal is our modelling choice (the paper's own random-effects limits
are the log-normal approximation), so only the ``tau2 = 0`` results are called exact Poisson.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.special import bdtr, bdtrc, gammainc, gammaincc, ndtri, pdtr, pdtrc
from scipy.stats import gamma, poisson

__all__ = [
    "ALARM_P",
    "WARNING_P",
    "FLAG_ALARM_HIGH",
    "FLAG_WARNING_HIGH",
    "FLAG_ALARM_LOW",
    "FLAG_WARNING_LOW",
    "poisson_ratio_interval",
    "poisson_cdf",
    "poisson_sf",
    "poisson_pmf",
    "poisson_quantile",
    "poisson_funnel_limits",
    "log_normal_funnel_limits",
    "poisson_funnel_bands",
    "poisson_flag",
    "binomial_flag",
    "dersimonian_laird",
    "tau2_log_ratio",
    "tau2_logit",
]

#: One-sided tail probabilities for the 99.8 % (alarm) and 95 % (warning) two-sided levels.
ALARM_P = 0.001
WARNING_P = 0.025

FLAG_ALARM_HIGH = "alarm_high"
FLAG_WARNING_HIGH = "warning_high"
FLAG_ALARM_LOW = "alarm_low"
FLAG_WARNING_LOW = "warning_low"

#: Continuity correction added to a zero count before taking logs (metafor's ``escalc`` default,
#: ``add = 1/2, to = "only0"``; the Haldane-Anscombe correction).
CONTINUITY = 0.5

# Trapezoidal grid for the Poisson-lognormal integrals over z = u/τ ~ N(0, 1).
_Z_RANGE = 9.0  # the standard normal mass beyond ±9 is 2e-19
_MAX_STEP = 0.125


# --------------------------------------------------------------------------- validation


def _check_expected(expected) -> float:
    e = float(expected)
    if not e > 0 or math.isinf(e):
        raise ValueError(f"expected must be a positive finite number, got {expected!r}")
    return e


def _check_count(value, name: str = "observed") -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}") from None
    if math.isnan(v) or v < 0 or v != int(v):
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(v)


def _check_tau2(tau2) -> float:
    t = float(tau2)
    if not t >= 0 or math.isinf(t):
        raise ValueError(f"tau2 must be a finite number >= 0, got {tau2!r}")
    return t


def _check_p(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError("p must be strictly between 0 and 1")
    return float(p)


# --------------------------------------------------------------------------- Ulm's interval


def poisson_ratio_interval(observed: int, expected: float, confidence: float = 0.95) -> tuple[float, float]:
    """Exact confidence interval for the standardised ratio O/E (Ulm, *Am J Epidemiol* 1990;131:373).

    With α = 1 − confidence and χ²_q(ν) the q-quantile of chi-square on ν degrees of freedom::

        lower = χ²_{α/2}(2O) / (2E)        (0 when O = 0)
        upper = χ²_{1−α/2}(2O + 2) / (2E)

    Computed as ``gamma.ppf(α/2, O)/E`` and ``gamma.ppf(1 − α/2, O + 1)/E`` (χ²_q(2k)/2 is the
    q-quantile of Gamma(k, 1)), which is how R's ``poisson.test`` computes the same interval.
    """
    o = _check_count(observed)
    e = _check_expected(expected)
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")
    alpha = 1.0 - confidence
    lower = 0.0 if o == 0 else float(gamma.ppf(alpha / 2, o)) / e
    upper = float(gamma.ppf(1 - alpha / 2, o + 1)) / e
    return lower, upper


# --------------------------------------------------------------------------- distribution of O


def _z_grid(tau: float, r_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Trapezoidal nodes and weights (including the N(0,1) density) over [−9, 9].

    The integrand in z changes over a width of about 1/(τ·sqrt(r + 1)) (the Poisson
    distribution function as a function of log λ near λ = r + 1); the step is a fifth of
    that (at most 1/8).  The integrand is analytic, so the trapezoidal rule converges
    geometrically in the step; the tests find agreement with R's ``integrate`` to ~1e-13.
    """
    width = 1.0 / (tau * math.sqrt(r_max + 1.0))
    step = min(_MAX_STEP, width / 5.0)
    n = int(math.ceil(2 * _Z_RANGE / step)) + 1
    z = np.linspace(-_Z_RANGE, _Z_RANGE, n)
    w = np.full(n, z[1] - z[0])
    w[0] = w[-1] = w[0] / 2
    w *= np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z, w


def _mixture(fn, r: int, e: float, tau: float) -> float:
    """∫ fn(E·e^{τz}) φ(z) dz by the trapezoidal rule of :func:`_z_grid`."""
    z, w = _z_grid(tau, max(r, int(e)))
    return float(np.dot(w, fn(e * np.exp(tau * z))))


def poisson_cdf(r: int, expected: float, tau2: float = 0.0) -> float:
    """P(O <= r) for O ~ Poisson(E) (``tau2 = 0``) or the Poisson-lognormal (module docstring).

    For the mixture: ``∫ Q(r + 1, E·e^{τz}) φ(z) dz`` with Q the regularised upper incomplete
    gamma function (= the Poisson distribution function), by the trapezoidal rule; above 1/2 it
    is computed as 1 − :func:`poisson_sf` (r + 1), so that the upper tail keeps its relative
    accuracy.
    """
    e = _check_expected(expected)
    t2 = _check_tau2(tau2)
    r = int(r)
    if r < 0:
        return 0.0
    if t2 == 0:
        return float(pdtr(r, e))
    tau = math.sqrt(t2)
    lower = _mixture(lambda lam: gammaincc(r + 1, lam), r, e, tau)
    if lower <= 0.5:
        return max(0.0, lower)
    return min(1.0, 1.0 - _mixture(lambda lam: gammainc(r + 1, lam), r, e, tau))


def poisson_sf(observed: int, expected: float, tau2: float = 0.0) -> float:
    """P(O >= observed), computed directly (no 1 − cdf cancellation in the far upper tail).

    Poisson: ``P(O >= o) = P(o, E)`` (regularised lower incomplete gamma); for the
    Poisson-lognormal, its integral over u as in :func:`poisson_cdf` (and 1 − that integral
    of Q when the tail is above 1/2).
    """
    e = _check_expected(expected)
    t2 = _check_tau2(tau2)
    o = int(observed)
    if o <= 0:
        return 1.0
    if t2 == 0:
        return float(pdtrc(o - 1, e))
    tau = math.sqrt(t2)
    upper = _mixture(lambda lam: gammainc(o, lam), o, e, tau)
    if upper <= 0.5:
        return max(0.0, upper)
    return min(1.0, 1.0 - _mixture(lambda lam: gammaincc(o, lam), o, e, tau))


def poisson_pmf(r: int, expected: float, tau2: float = 0.0) -> float:
    """P(O = r) for the Poisson (``tau2 = 0``) or the Poisson-lognormal (integral of the Poisson pmf)."""
    e = _check_expected(expected)
    t2 = _check_tau2(tau2)
    r = int(r)
    if r < 0:
        return 0.0
    if t2 == 0:
        return float(poisson.pmf(r, e))
    return _mixture(lambda lam: poisson.pmf(r, lam), r, e, math.sqrt(t2))


def _excess(r: int, p: float, e: float, t2: float) -> float:
    """F(r) − p, from the upper tail when p > 1/2 (so that F(r) near 1 keeps its accuracy)."""
    if p > 0.5:
        return (1.0 - p) - poisson_sf(r + 1, e, t2)
    return poisson_cdf(r, e, t2) - p


def poisson_quantile(p: float, expected: float, tau2: float = 0.0) -> int:
    """Smallest r with P(O <= r) >= p (R's ``qpois`` when ``tau2 = 0``)."""
    p = _check_p(p)
    e = _check_expected(expected)
    t2 = _check_tau2(tau2)
    if t2 == 0:
        r = max(int(poisson.ppf(p, e)), 0)
        while r > 0 and _excess(r - 1, p, e, t2) >= 0:
            r -= 1
        while _excess(r, p, e, t2) < 0:
            r += 1
        return r
    # Bracket around the quantile of Poisson(E·exp(τ z_p)), then bisect on the integers.
    tau = math.sqrt(t2)
    guess = max(int(poisson.ppf(p, e * math.exp(tau * float(ndtri(p))))), 0)
    lo, hi = guess - 1, guess  # invariant: F(lo) < p <= F(hi), F(-1) = 0
    while lo >= 0 and _excess(lo, p, e, t2) >= 0:
        hi = lo
        lo = -1 if lo == 0 else lo // 2
    while _excess(hi, p, e, t2) < 0:
        lo = hi
        hi = 2 * hi + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _excess(mid, p, e, t2) >= 0:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- funnel limits


def _interpolated_limit(expected: float, p: float, tau2: float) -> float:
    # alpha = (F(r_p) - p) / (F(r_p) - F(r_p - 1)); the step is the probability of r_p itself.
    r = poisson_quantile(p, expected, tau2)
    step = poisson_pmf(r, expected, tau2)
    alpha = _excess(r, p, expected, tau2) / step if step > 0 else 0.0
    return max((r - alpha) / expected, 0.0)


def poisson_funnel_limits(expected, p: float, tau2: float = 0.0):
    """Funnel limit for O/E at probability ``p`` for a centre with expected count E.

    Spiegelhalter (*Stat Med* 2005;24:1185), Appendix A.1: the exact-limit construction that
    A.1.1 gives for Binomial(n, θ₀), here with O ~ Poisson(E) in its place and the precision
    ρ = E in place of n (the indirectly standardised ratio y = O/E, target θ₀ = 1).  With F the
    distribution function of O::

        r_p   = smallest r with F(r) >= p
        alpha = (F(r_p) − p) / (F(r_p) − F(r_p − 1))      (F(−1) = 0)
        limit = (r_p − alpha) / E,  floored at 0

    This is the interpolation that ``funnel._exact_limit`` uses for the binomial.  With
    ``tau2 = 0`` F is Poisson(E) (exact).  With ``tau2 > 0`` F is the Poisson-lognormal of the
    module docstring (the additive random-effects model on the log scale); for large E this
    tends to :func:`log_normal_funnel_limits`.

    ``expected`` is a positive number (returns a float) or a sequence of them (list).
    Use the limits for drawing; flag with :func:`poisson_flag`.
    """
    p = _check_p(p)
    t2 = _check_tau2(tau2)
    if isinstance(expected, Iterable) and not isinstance(expected, (str, bytes)):
        return [_interpolated_limit(_check_expected(e), p, t2) for e in expected]
    return _interpolated_limit(_check_expected(expected), p, t2)


def log_normal_funnel_limits(expected, p: float, tau2: float = 0.0):
    """Normal approximation on the log scale: ``exp(z_p·sqrt(1/E + τ²))`` around the target 1.

    Spiegelhalter (2005), additive random-effects limits on a transformed scale, here the log of
    the ratio with null standard error 1/sqrt(E) (delta method at θ₀ = 1).  An approximation,
    for comparison with :func:`poisson_funnel_limits`; not used for flagging.
    """
    p = _check_p(p)
    t2 = _check_tau2(tau2)
    z = float(ndtri(p))

    def one(e) -> float:
        return math.exp(z * math.sqrt(1.0 / _check_expected(e) + t2))

    if isinstance(expected, Iterable) and not isinstance(expected, (str, bytes)):
        return [one(e) for e in expected]
    return one(expected)


def poisson_funnel_bands(expected_values: Iterable[float], tau2: float = 0.0) -> list[dict]:
    """The 95 % and 99.8 % O/E contours for each expected count, for drawing.

    Returns one dict per value of ``expected_values`` (same order)::

        {"expected", "lower_998", "lower_95", "upper_95", "upper_998"}

    from :func:`poisson_funnel_limits` at p = 0.001, 0.025, 0.975, 0.999 (with ``tau2``).
    """
    t2 = _check_tau2(tau2)
    rows = []
    for e in expected_values:
        e = _check_expected(e)
        rows.append(
            {
                "expected": e,
                "lower_998": _interpolated_limit(e, ALARM_P, t2),
                "lower_95": _interpolated_limit(e, WARNING_P, t2),
                "upper_95": _interpolated_limit(e, 1 - WARNING_P, t2),
                "upper_998": _interpolated_limit(e, 1 - ALARM_P, t2),
            }
        )
    return rows


# --------------------------------------------------------------------------- flags


def _flag(p_high: float, p_low: float) -> str | None:
    # p_high + p_low = 1 + P(O = o) >= 1, so at most one side can be below 0.025.
    if p_high < ALARM_P:
        return FLAG_ALARM_HIGH
    if p_high < WARNING_P:
        return FLAG_WARNING_HIGH
    if p_low < ALARM_P:
        return FLAG_ALARM_LOW
    if p_low < WARNING_P:
        return FLAG_WARNING_LOW
    return None


def poisson_flag(observed: int, expected: float, tau2: float = 0.0) -> dict:
    """Flag a centre by the one-sided tail probabilities of its observed count.

    ``p_high = P(X >= O)`` and ``p_low = P(X <= O)`` for X ~ Poisson(E) (exact; ``tau2 = 0``)
    or the Poisson-lognormal with variance τ² on the log scale (``tau2 > 0``, module
    docstring).  Both tails include P(X = O): this is the exact test (R's
    ``poisson.test(O, E, alternative = "greater" / "less")``), not mid-p, so an on-target
    centre is flagged with probability at most the nominal level (the tests enumerate it).

    ``flag``: ``"alarm_high"`` if p_high < 0.001, else ``"warning_high"`` if p_high < 0.025,
    likewise ``"alarm_low"`` / ``"warning_low"`` from p_low, else ``None``; 0.025 and 0.001 are
    the one-sided tails of the 95 % and 99.8 % funnel contours (STATISTICS.md, "Flagging").

    Why not the plotted point against the funnel line: the interpolated upper limit
    (r_p − α)/E of Spiegelhalter (2005) Appendix A.1 lies *below* r_p/E (r_p the smallest count
    with F(r_p) >= p), so a centre with O = r_p is drawn outside although
    P(X >= r_p) = 1 − F(r_p − 1) > 1 − p; an on-target centre is then outside more often than
    the nominal rate (the tests show it for E = 2 here and for the binomial
    ``funnel.funnel_position``; cf. Manktelow & Seaton, *PLoS ONE* 2012;7:e45723).  So a point
    drawn just outside a line (O = r_p) may carry no flag: mark flagged centres by ``flag``.

    Returns ``{"p_high", "p_low", "flag", "method"}`` with method ``"exact_poisson"`` or
    ``"poisson_lognormal"``.
    """
    o = _check_count(observed)
    e = _check_expected(expected)
    t2 = _check_tau2(tau2)
    p_high = poisson_sf(o, e, t2)
    p_low = poisson_cdf(o, e, t2)
    return {
        "p_high": p_high,
        "p_low": p_low,
        "flag": _flag(p_high, p_low),
        "method": "exact_poisson" if t2 == 0 else "poisson_lognormal",
    }


def binomial_flag(events: int, n: int, theta0: float) -> dict:
    """The same exact one-sided flag for a proportion: X ~ Binomial(n, θ₀).

    ``p_high = P(X >= events)``, ``p_low = P(X <= events)`` (exact binomial tails, as R's
    ``binom.test(events, n, theta0, alternative = "greater" / "less")``; not mid-p), and
    ``flag`` by the thresholds of :func:`poisson_flag`.  Use it instead of
    ``funnel.funnel_position`` to decide which centres are flagged; draw with
    ``funnel.funnel_bands``.

    Returns ``{"p_high", "p_low", "flag", "method": "exact_binomial"}``.
    """
    n = _check_count(n, "n")
    if n < 1:
        raise ValueError("n must be at least 1")
    x = _check_count(events, "events")
    if x > n:
        raise ValueError("events must not exceed n")
    theta0 = float(theta0)
    if not 0.0 <= theta0 <= 1.0:
        raise ValueError("theta0 must be a proportion in [0, 1]")
    p_high = 1.0 if x == 0 else float(bdtrc(x - 1, n, theta0))  # P(X > x - 1)
    p_low = float(bdtr(x, n, theta0))
    return {"p_high": p_high, "p_low": p_low, "flag": _flag(p_high, p_low), "method": "exact_binomial"}


# --------------------------------------------------------------------------- τ²


def dersimonian_laird(estimates: Sequence[float], variances: Sequence[float]) -> dict:
    """Between-centre variance by the method of moments of DerSimonian & Laird (1986).

    DerSimonian R, Laird N. Meta-analysis in clinical trials. *Control Clin Trials*
    1986;7:177–188.  With weights w_i = 1/v_i::

        ȳ_F  = Σ w_i y_i / Σ w_i
        Q    = Σ w_i (y_i − ȳ_F)²,  df = k − 1
        τ²   = max(0, (Q − df) / (Σ w_i − Σ w_i² / Σ w_i))
        I²   = max(0, (Q − df) / Q)       (Higgins & Thompson, Stat Med 2002;21:1539; 0 if Q = 0)
        w*_i = 1 / (v_i + τ²),  pooled = Σ w*_i y_i / Σ w*_i,  pooled_se = 1 / sqrt(Σ w*_i)

    ``I²`` is a fraction in [0, 1] (metafor prints it as a percentage).  One estimate gives
    τ² = 0, Q = 0, df = 0.  Matches ``metafor::rma(yi, vi, method = "DL")``.

    Returns ``{"tau2", "q", "df", "i2", "pooled", "pooled_se"}``.
    """
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    if y.ndim != 1 or y.shape != v.shape:
        raise ValueError("estimates and variances must be sequences of the same length")
    if y.size == 0:
        raise ValueError("need at least one estimate")
    if not np.all(np.isfinite(y)) or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise ValueError("estimates must be finite and variances positive and finite")
    w = 1.0 / v
    sw = float(w.sum())
    fixed = float(np.dot(w, y) / sw)
    q = float(np.dot(w, (y - fixed) ** 2))
    df = int(y.size - 1)
    c = sw - float(np.dot(w, w)) / sw
    tau2 = max(0.0, (q - df) / c) if df > 0 and c > 0 else 0.0
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    w_star = 1.0 / (v + tau2)
    sws = float(w_star.sum())
    return {
        "tau2": tau2,
        "q": q,
        "df": df,
        "i2": i2,
        "pooled": float(np.dot(w_star, y) / sws),
        "pooled_se": 1.0 / math.sqrt(sws),
    }


def tau2_log_ratio(observed_list: Sequence[int], expected_list: Sequence[float]) -> dict:
    """DerSimonian-Laird τ² of the centres' log standardised ratios log(O/E).

    Each centre contributes y_i = log(O_i/E_i) with variance 1/O_i (delta method; E treated as
    fixed), and a centre with O = 0 uses O + 0.5 in both (continuity correction; metafor's
    ``escalc(measure = "IRLN", xi = O, ti = E)`` with its default ``add = 1/2, to = "only0"``,
    against which this is tested).  τ² is then the variance of the true log ratios, the
    ``tau2`` that :func:`poisson_funnel_limits` and :func:`poisson_flag` take.

    Note: DL measures spread about the weighted mean of the log ratios, not about the target
    log 1 = 0; with indirect standardisation by a model fitted to the same registry the two
    are close.  Returns the dict of :func:`dersimonian_laird` (``pooled`` on the log scale).
    """
    if len(observed_list) != len(expected_list):
        raise ValueError("observed_list and expected_list must have the same length")
    ys, vs = [], []
    for o, e in zip(observed_list, expected_list, strict=True):
        o = _check_count(o)
        e = _check_expected(e)
        oc = o if o > 0 else CONTINUITY
        ys.append(math.log(oc / e))
        vs.append(1.0 / oc)
    return dersimonian_laird(ys, vs)


def tau2_logit(events_list: Sequence[int], n_list: Sequence[int]) -> dict:
    """DerSimonian-Laird τ² of the centres' logit proportions, for rates without case-mix adjustment.

    y_i = log(x_i / (n_i − x_i)), v_i = 1/x_i + 1/(n_i − x_i); a centre with x_i = 0 or x_i = n_i
    adds 0.5 to both cells (metafor's ``escalc(measure = "PLO")`` default ``add = 1/2,
    to = "only0"``, against which this is tested).  Returns the dict of
    :func:`dersimonian_laird` (``pooled`` on the logit scale).
    """
    if len(events_list) != len(n_list):
        raise ValueError("events_list and n_list must have the same length")
    ys, vs = [], []
    for x, n in zip(events_list, n_list, strict=True):
        x = _check_count(x, "events")
        n = _check_count(n, "n")
        if n < 1 or x > n:
            raise ValueError("need 0 <= events <= n and n >= 1")
        a, b = float(x), float(n - x)
        if a == 0 or b == 0:
            a, b = a + CONTINUITY, b + CONTINUITY
        ys.append(math.log(a / b))
        vs.append(1.0 / a + 1.0 / b)
    return dersimonian_laird(ys, vs)
