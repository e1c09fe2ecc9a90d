"""Funnel plot limits for a proportion (Spiegelhalter, *Stat Med* 2005;24:1185–1202).

Each centre's rate ``y = r/n`` is plotted against its volume ``n``; the target
``theta0`` is the pooled registry rate.  Limits are drawn at 95 % (p = 0.025,
0.975) and 99.8 % (p = 0.001, 0.999).

Exact binomial limit with interpolation (Appendix A.1.1), for Binomial(n, θ₀)
with distribution function F::

    r_p   = smallest r with F(r) >= p            (R's qbinom(p, n, θ₀))
    alpha = (F(r_p) − p) / (F(r_p) − F(r_p − 1))  (F(−1) = 0)
    limit = (r_p − alpha) / n, clamped to [0, 1]

The normal approximation ``θ₀ ± z_p·sqrt(φ·θ₀(1−θ₀)/n)`` is provided for
comparison, and with a multiplicative over-dispersion factor φ (section 3.2
of the paper: φ̂ = mean of the squared z-scores after winsorising them at the
10th and 90th percentiles).

The interpolation smooths the binomial steps but the exact upper limits are
still not strictly monotone in n at small volumes (e.g. θ₀ = 0.05: the 95 %
upper limit rises by 0.0115 from n = 5 to 6); lower limits were monotone in
every case checked.

Position of a centre (``funnel_position``): one of the ``POSITION_*`` strings.
A rate exactly on a limit counts as inside that limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy.special import ndtri
from scipy.stats import binom

__all__ = [
    "P_95",
    "P_998",
    "POSITION_ABOVE_998",
    "POSITION_ABOVE_95",
    "POSITION_INSIDE",
    "POSITION_BELOW_95",
    "POSITION_BELOW_998",
    "binomial_quantile",
    "funnel_limits",
    "normal_limits",
    "funnel_bands",
    "funnel_position",
    "funnel_z_scores",
    "winsorise",
    "overdispersion_phi",
]

#: (lower p, upper p) for the two standard funnel contours.
P_95 = (0.025, 0.975)
P_998 = (0.001, 0.999)

POSITION_ABOVE_998 = "above_99.8"
POSITION_ABOVE_95 = "above_95"
POSITION_INSIDE = "inside"
POSITION_BELOW_95 = "below_95"
POSITION_BELOW_998 = "below_99.8"


def _check_theta(theta0: float) -> None:
    if not 0.0 <= theta0 <= 1.0 or math.isnan(theta0):
        raise ValueError("theta0 must be a proportion in [0, 1]")


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError("p must be strictly between 0 and 1")


def _check_n(n) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    return int(n)


def binomial_quantile(p: float, n: int, theta0: float) -> int:
    """Smallest ``r`` with ``F(r) >= p`` for Binomial(n, θ₀) (R's ``qbinom``).

    Uses scipy's ``binom.ppf`` and then corrects any floating-point slip so the
    defining inequality ``F(r−1) < p <= F(r)`` holds for the returned ``r``.
    """
    _check_p(p)
    _check_theta(theta0)
    n = _check_n(n)
    r = int(binom.ppf(p, n, theta0))
    r = min(max(r, 0), n)
    while r > 0 and binom.cdf(r - 1, n, theta0) >= p:
        r -= 1
    while r < n and binom.cdf(r, n, theta0) < p:
        r += 1
    return r


def _exact_limit(theta0: float, n: int, p: float) -> float:
    r = binomial_quantile(p, n, theta0)
    f_r = float(binom.cdf(r, n, theta0))
    f_below = float(binom.cdf(r - 1, n, theta0)) if r > 0 else 0.0
    step = f_r - f_below
    alpha = (f_r - p) / step if step > 0 else 0.0
    return min(max((r - alpha) / n, 0.0), 1.0)


def funnel_limits(theta0: float, n, p: float):
    """Exact interpolated binomial limit at probability ``p`` (Appendix A.1.1).

    ``n`` is a positive integer (returns a float) or a sequence of them
    (returns a list of floats, same order).
    """
    _check_theta(theta0)
    _check_p(p)
    if isinstance(n, Iterable) and not isinstance(n, (str, bytes)):
        return [_exact_limit(theta0, _check_n(v), p) for v in n]
    return _exact_limit(theta0, _check_n(n), p)


def normal_limits(theta0: float, n, p: float, phi: float = 1.0):
    """Normal approximation ``θ₀ + z_p·sqrt(φ·θ₀(1−θ₀)/n)``, clamped to [0, 1].

    ``z_p`` is the standard normal quantile at ``p`` (negative for p < 0.5, so
    ``p = 0.025`` gives the lower limit).  ``phi`` is the multiplicative
    over-dispersion factor (1 = none).  Scalar or sequence ``n`` as in
    :func:`funnel_limits`.
    """
    _check_theta(theta0)
    _check_p(p)
    if phi <= 0:
        raise ValueError("phi must be positive")
    z = float(ndtri(p))

    def one(v) -> float:
        v = _check_n(v)
        return min(max(theta0 + z * math.sqrt(phi * theta0 * (1 - theta0) / v), 0.0), 1.0)

    if isinstance(n, Iterable) and not isinstance(n, (str, bytes)):
        return [one(v) for v in n]
    return one(n)


def funnel_bands(theta0: float, ns: Iterable[int], phi: float | None = None) -> list[dict]:
    """The 95 % and 99.8 % funnel contours for each volume in ``ns``.

    Returns one dict per ``n`` (in the given order)::

        {"n", "lower_998", "lower_95", "upper_95", "upper_998",          # exact binomial
         "normal_lower_998", "normal_lower_95", "normal_upper_95", "normal_upper_998"}

    If ``phi`` is given, the over-dispersed normal limits are added as
    ``od_lower_998`` … ``od_upper_998`` (φ from :func:`overdispersion_phi`).
    To draw smooth contours pass e.g. ``range(1, max_n + 1)``.
    """
    rows = []
    for n in ns:
        n = _check_n(n)
        row = {
            "n": n,
            "lower_998": _exact_limit(theta0, n, P_998[0]),
            "lower_95": _exact_limit(theta0, n, P_95[0]),
            "upper_95": _exact_limit(theta0, n, P_95[1]),
            "upper_998": _exact_limit(theta0, n, P_998[1]),
            "normal_lower_998": normal_limits(theta0, n, P_998[0]),
            "normal_lower_95": normal_limits(theta0, n, P_95[0]),
            "normal_upper_95": normal_limits(theta0, n, P_95[1]),
            "normal_upper_998": normal_limits(theta0, n, P_998[1]),
        }
        if phi is not None:
            row.update(
                od_lower_998=normal_limits(theta0, n, P_998[0], phi),
                od_lower_95=normal_limits(theta0, n, P_95[0], phi),
                od_upper_95=normal_limits(theta0, n, P_95[1], phi),
                od_upper_998=normal_limits(theta0, n, P_998[1], phi),
            )
        rows.append(row)
    return rows


def funnel_position(events: int, n: int, theta0: float) -> str | None:
    """Where a centre with ``events`` out of ``n`` sits against the exact limits.

    Returns ``"above_99.8"``, ``"above_95"``, ``"inside"``, ``"below_95"`` or
    ``"below_99.8"`` (the ``POSITION_*`` constants), or ``None`` when ``n == 0``.
    A rate exactly on a limit is inside it.  "Above" means a *higher* rate than
    the target; for complications that is the worse side.
    """
    if n == 0:
        return None
    n = _check_n(n)
    if int(events) != events or not 0 <= events <= n:
        raise ValueError("events must be a whole number in [0, n]")
    y = events / n
    if y > _exact_limit(theta0, n, P_998[1]):
        return POSITION_ABOVE_998
    if y > _exact_limit(theta0, n, P_95[1]):
        return POSITION_ABOVE_95
    if y < _exact_limit(theta0, n, P_998[0]):
        return POSITION_BELOW_998
    if y < _exact_limit(theta0, n, P_95[0]):
        return POSITION_BELOW_95
    return POSITION_INSIDE


def funnel_z_scores(events: Sequence[int], ns: Sequence[int], theta0: float) -> list[float]:
    """Naive z-scores ``(y_i − θ₀) / sqrt(θ₀(1−θ₀)/n_i)`` (Spiegelhalter 2005, §3)."""
    _check_theta(theta0)
    if not 0.0 < theta0 < 1.0:
        raise ValueError("z-scores need 0 < theta0 < 1")
    if len(events) != len(ns):
        raise ValueError("events and ns must have the same length")
    out = []
    for r, n in zip(events, ns, strict=True):
        n = _check_n(n)
        out.append((r / n - theta0) / math.sqrt(theta0 * (1 - theta0) / n))
    return out


def winsorise(values: Sequence[float], fraction: float = 0.1) -> list[float]:
    """Pull values below the ``fraction`` and above the ``1 − fraction`` percentiles
    in to those percentiles (numpy's default linear percentile, as R's type 7)."""
    if not 0.0 <= fraction < 0.5:
        raise ValueError("fraction must be in [0, 0.5)")
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return []
    lo, hi = np.percentile(arr, [100 * fraction, 100 * (1 - fraction)])
    return np.clip(arr, lo, hi).tolist()


def overdispersion_phi(z_scores: Sequence[float], winsor_fraction: float = 0.1) -> float | None:
    """Multiplicative over-dispersion φ̂ = (1/I)·Σ z_w² over winsorised z-scores.

    Spiegelhalter 2005 §3.2 (10 % / 90 % winsorising by default).  ``None`` for
    no centres.  The caller decides whether to apply it (typically only when
    φ̂ > 1 and many centres sit outside the limits); it is returned as
    estimated, not floored at 1.
    """
    zw = winsorise(z_scores, winsor_fraction)
    if not zw:
        return None
    return float(sum(z * z for z in zw) / len(zw))
