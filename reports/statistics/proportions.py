"""Confidence intervals for a single proportion (events / n).

Definitions follow ``shared/domain/STATISTICS.md``:

* Wilson score interval (Newcombe 1998, method 3)::

      (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n),   p = x/n

* Clopper–Pearson "exact" interval (Newcombe 1998, method 5)::

      [Beta⁻¹(α/2; x, n−x+1), Beta⁻¹(1−α/2; x+1, n−x)],  0 at x = 0, 1 at x = n

Known answers: Newcombe RG, *Stat Med* 1998;17:857–872, Table I.

Empty denominators
------------------
For ``n == 0`` there is no estimate: every function here returns ``None``
(never ``(0.0, 1.0)``), so the REST API shows ``null`` and a PDF shows a dash.
Invalid input (negative counts, ``events > n``, confidence outside (0, 1))
raises ``ValueError``.
"""

from __future__ import annotations

import math

from scipy.special import betaincinv, ndtri

__all__ = [
    "z_for_confidence",
    "wilson_interval",
    "clopper_pearson_interval",
    "proportion_summary",
]


def _check(events: int, n: int, confidence: float) -> None:
    if isinstance(events, bool) or isinstance(n, bool):
        raise ValueError("events and n must be integers, not booleans")
    if int(events) != events or int(n) != n:
        raise ValueError("events and n must be whole numbers")
    if n < 0 or events < 0:
        raise ValueError("events and n must be non-negative")
    if events > n:
        raise ValueError(f"events ({events}) cannot exceed n ({n})")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")


def z_for_confidence(confidence: float = 0.95) -> float:
    """Two-sided standard normal quantile: 0.95 -> 1.959964..."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")
    return float(ndtri(1.0 - (1.0 - confidence) / 2.0))


def wilson_interval(events: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval (no continuity correction) for ``events / n``.

    Returns ``(low, high)`` as floats in [0, 1], or ``None`` when ``n == 0``.
    """
    _check(events, n, confidence)
    if n == 0:
        return None
    z = z_for_confidence(confidence)
    p = events / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    low = (centre - half) / denom
    high = (centre + half) / denom
    # The formula gives exactly 0 / 1 at the edges in exact arithmetic; remove float noise.
    if events == 0:
        low = 0.0
    if events == n:
        high = 1.0
    return (min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0))


def clopper_pearson_interval(events: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Clopper–Pearson exact interval for ``events / n`` via beta quantiles.

    Returns ``(low, high)`` as floats in [0, 1], or ``None`` when ``n == 0``.
    """
    _check(events, n, confidence)
    if n == 0:
        return None
    alpha = 1.0 - confidence
    low = 0.0 if events == 0 else float(betaincinv(events, n - events + 1, alpha / 2))
    high = 1.0 if events == n else float(betaincinv(events + 1, n - events, 1 - alpha / 2))
    return (low, high)


def proportion_summary(events: int, n: int, confidence: float = 0.95, method: str = "wilson") -> dict:
    """A JSON-friendly summary of one rate, as the API and the PDF reports show it.

    ``{"events", "n", "proportion", "ci_low", "ci_high", "confidence", "method"}``;
    ``proportion``, ``ci_low`` and ``ci_high`` are ``None`` when ``n == 0``.
    ``method`` is ``"wilson"`` (default) or ``"exact"`` (Clopper–Pearson).
    """
    if method == "wilson":
        ci = wilson_interval(events, n, confidence)
    elif method in ("exact", "clopper-pearson"):
        ci = clopper_pearson_interval(events, n, confidence)
        method = "exact"
    else:
        raise ValueError(f"unknown method {method!r}; use 'wilson' or 'exact'")
    return {
        "events": int(events),
        "n": int(n),
        "proportion": (events / n) if n else None,
        "ci_low": ci[0] if ci else None,
        "ci_high": ci[1] if ci else None,
        "confidence": confidence,
        "method": method,
    }
