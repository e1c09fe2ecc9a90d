"""Aalen–Johansen cumulative incidence for competing risks, with delayed entry.

When another event ends the chance of the one of interest (death before a pump
complication, elective end of pump use before pump failure), the risk of the event by
day t is the cumulative incidence F1(t), not 1 − KM: 1 − KM treats the competing
event as censoring and overstates the risk (``shared/domain/STATISTICS.md``).

Statuses: 0 = censored, 1 = event of interest, 2 = competing event.

Methods
-------
* Estimate (Aalen & Johansen, *Scand J Stat* 1978;5:141; Putter, Fiocco & Geskus,
  *Stat Med* 2007;26:2389):  ``F1(t) = Σ_{t_j<=t} S(t_j−) · d1_j / n_j``, with S the
  all-cause Kaplan–Meier (any event ends follow-up), ``d1_j`` the events of interest
  at t_j and ``n_j`` the number at risk just before t_j.  An event of interest and a
  competing event at the same time are both counted at that time against the same
  risk set (R's convention); censorings at t_j are at risk at t_j.
* Delayed entry (left truncation): at risk at t iff ``entry < t <= exit``, R's
  ``Surv(entry, exit, status)`` convention, exactly as in
  :func:`reports.statistics.survival.kaplan_meier` (``entry > exit`` raises,
  ``entry == exit`` rows are dropped with a warning, as R's ``Surv()`` makes them NA).
* Standard error: the **infinitesimal jackknife** (IJ), as R ``survival``'s
  multi-state ``survfit`` computes it (Therneau, *survival* vignettes "Multi-state
  models and competing risks" and "The survival package: methods"): with case
  weights w_i, ``U_i(t) = ∂F1(t)/∂w_i`` at w = 1 and ``se(t) = sqrt(Σ_i U_i(t)²)``
  (R's ``sqrt(colSums(fit$influence.pstate[, , k]^2))``).  The influence of one
  subject has a closed form in cumulative sums over the distinct times
  (``S``, ``F1``, the Greenwood sums ``G``, and ``Q = Σ S(t_j−)·(d1_j/n_j)·(G(t_j−) − 1/n_j)``):
  before entry U = 0; while at risk ``U = Q(t) − Q(f) − G(f)·(F1(t) − F1(f))`` (f the
  last time at or before entry); after exit ``U = c_i − A_i·F1(t)``.  Summing the
  squares over the risk set and the exited set with running sums gives every row's
  se in O(n log n); no O(n × times) matrix is built.
* Interval: R's default for multi-state ``survfit``, ``conf.type = "log"`` applied to
  the probability itself: ``F1·exp(±z·se/F1)``, upper capped at 1.  Where F1 = 0 the
  interval is undefined (``None``), as R gives NA.
* Matches R 4.2.2 / survival 3.5.3 ``survfit(Surv(time, factor(status)) ~ 1)`` and
  ``survfit(Surv(entry, time, factor(status)) ~ 1, id = id)`` on ``mgus2`` (estimate,
  std.err, lower, upper, n.risk) to ~1e-15 (``tests/reference/``).

Fixed windows: "within 90 days" is :func:`cumulative_incidence_at` at day 90.  Beyond
the last observed time the estimate is undefined (``None``) unless nobody is left
to have an event, i.e. the all-cause survival has reached 0 (every subject's
follow-up ended in an event), in which case F1 can no longer change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from .survival import _at_risk_after, _distinct_times, _none_if_nan, _validate_entries

__all__ = ["CumulativeIncidenceResult", "INTERVAL_METHOD", "aalen_johansen", "cumulative_incidence_at"]

INTERVAL_METHOD = "log (F·exp(±z·se/F)), infinitesimal-jackknife se; R survfit multi-state default"


@dataclass(frozen=True)
class CumulativeIncidenceResult:
    """Result of :func:`aalen_johansen`.

    ``table`` has one dict per distinct exit time (an event of either kind or a
    censoring), in time order: ``{"time", "at_risk", "events", "competing_events",
    "censored", "estimate", "std_err", "ci_low", "ci_high"}``; ``estimate`` is F1(t),
    ``std_err`` its IJ standard error, ``ci_*`` ``None`` where F1 = 0.
    """

    n: int
    events: int
    competing_events: int
    table: list[dict]
    confidence: float
    interval_method: str = INTERVAL_METHOD
    # Sorted entry times (delayed entry only), for the numbers at risk between table rows.
    _entries: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "events": self.events,
            "competing_events": self.competing_events,
            "table": [dict(row) for row in self.table],
            "confidence": self.confidence,
            "interval_method": self.interval_method,
        }


def _validate(exits: Sequence[float], statuses: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(list(exits), dtype=float)
    s = np.asarray(list(statuses))
    if t.shape != s.shape or t.ndim != 1:
        raise ValueError("exits and statuses must be sequences of the same length")
    if t.size and (np.any(np.isnan(t)) or np.any(t < 0)):
        raise ValueError("exit times must be non-negative numbers")
    if s.size and (s.dtype.kind not in "biuf" or not np.all(np.isin(s, (0, 1, 2)))):
        raise ValueError("statuses must be 0 (censored), 1 (event of interest) or 2 (competing event)")
    return t, s.astype(int)


def _ij_variance(
    at_risk: np.ndarray,
    d1: np.ndarray,
    d: np.ndarray,
    exit_index: np.ndarray,
    entry_index: np.ndarray,
    status: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """F1 at each distinct time and its infinitesimal-jackknife variance.

    ``exit_index[i]`` is subject i's exit time index k_i; ``entry_index[i]`` the
    number of distinct times at or before its entry (f_i: at risk from time index
    f_i to k_i).  Derivation, with case weights w and everything at w = 1:

    ``∂λ1_j/∂w_i = (dN1_i(j) − Y_i(j)·λ1_j)/n_j``,
    ``∂S_j/∂w_i = −S_j·A_i(j)`` with ``A_i(j) = Σ_{l<=j} (dN_i(l) − Y_i(l)·λ_l)/(n_l − d_l)``,
    ``∂F1_j/∂w_i = Σ_{l<=j} [∂S_{l−1}·λ1_l + S_{l−1}·∂λ1_l]``.
    """
    size = at_risk.size
    n = at_risk.astype(float)
    lam, lam1 = d / n, d1 / n
    s = np.cumprod(1.0 - lam)
    s_prev = np.concatenate(([1.0], s[:-1]))
    f1 = np.cumsum(s_prev * lam1)
    # Once every subject at risk has an event (S = 0), nothing can change any more:
    # compute up to that index (j0) and carry the variance forward.
    zero = np.flatnonzero((d > 0) & (d == at_risk))
    j0 = int(zero[0]) if zero.size else size
    live = np.arange(size) < j0
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(live & (d > 0), d / (n * (n - d)), 0.0)
    big_g = np.cumsum(g)
    g_prev = np.concatenate(([0.0], big_g[:-1]))
    q = np.cumsum(s_prev * lam1 * (g_prev - 1.0 / n))
    # Values "just before time index f" (index f − 1, or the origin when f = 0).
    gp, qp, fp = (np.concatenate(([0.0], x)) for x in (big_g, q, f1))

    k, f = exit_index, entry_index
    alpha = gp[f]
    beta = qp[f] - alpha * fp[f]
    u_exit = (q[k] - qp[f]) - alpha * (f1[k] - fp[f]) + (status == 1) * s_prev[k] / n[k]
    with np.errstate(divide="ignore", invalid="ignore"):
        a_exit = np.where(status != 0, 1.0 / (n[k] - d[k]), 0.0) - (big_g[k] - alpha)
    a_exit = np.where(k >= j0, 0.0, a_exit)  # multiplies F1(t) − F1(t_k) = 0 from then on
    c_exit = u_exit + a_exit * f1[k]

    def at_risk_sum(w: np.ndarray) -> np.ndarray:  # Σ w_i over subjects with f_i <= j < k_i
        delta = np.bincount(f, weights=w, minlength=size + 1) - np.bincount(k, weights=w, minlength=size + 1)
        return np.cumsum(delta)[:size]

    def exited_sum(w: np.ndarray) -> np.ndarray:  # Σ w_i over subjects with k_i <= j
        return np.cumsum(np.bincount(k, weights=w, minlength=size))

    ones = np.ones(k.size)
    var = (
        at_risk_sum(ones) * q**2
        + at_risk_sum(beta**2)
        + f1**2 * at_risk_sum(alpha**2)
        - 2.0 * q * at_risk_sum(beta)
        - 2.0 * q * f1 * at_risk_sum(alpha)
        + 2.0 * f1 * at_risk_sum(alpha * beta)
        + exited_sum(c_exit**2)
        - 2.0 * f1 * exited_sum(c_exit * a_exit)
        + f1**2 * exited_sum(a_exit**2)
    )
    if j0 < size:
        var[j0 + 1 :] = var[j0]
    return f1, np.maximum(var, 0.0)


def aalen_johansen(
    exits: Sequence[float],
    statuses: Sequence[int],
    entries: Sequence[float] | None = None,
    confidence: float = 0.95,
) -> CumulativeIncidenceResult:
    """Aalen–Johansen cumulative incidence of status 1 with status 2 competing.

    ``exits[i]`` is the time of the subject's event or censoring, ``statuses[i]``
    0 (censored), 1 (event of interest) or 2 (competing event); ``entries[i]``, if
    given, the time it entered the risk set (delayed entry; 0 for all when ``None``).
    For the competing event's own incidence, swap statuses 1 and 2.  An empty
    input gives an empty table.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")
    t, s = _validate(exits, statuses)
    t, s, a = _validate_entries(t, s, entries)
    if t.size == 0:
        return CumulativeIncidenceResult(0, 0, 0, [], confidence)

    times, index, at_risk = _distinct_times(t, a)
    size = times.size
    d1 = np.bincount(index, weights=s == 1, minlength=size)
    d2 = np.bincount(index, weights=s == 2, minlength=size)
    c = np.bincount(index, minlength=size) - d1 - d2
    entry_index = np.zeros(t.size, dtype=int) if a is None else np.searchsorted(times, a, side="right")
    estimate, var = _ij_variance(at_risk, d1, d1 + d2, index, entry_index, s)
    estimate = np.minimum(estimate, 1.0)
    std_err = np.sqrt(var)

    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        width = z * std_err / estimate
        low = np.where(estimate > 0, estimate * np.exp(-width), np.nan)
        high = np.where(estimate > 0, np.minimum(1.0, estimate * np.exp(width)), np.nan)

    table = [
        {
            "time": time,
            "at_risk": n_j,
            "events": d1_j,
            "competing_events": d2_j,
            "censored": c_j,
            "estimate": f_j,
            "std_err": se_j,
            "ci_low": lo_j,
            "ci_high": hi_j,
        }
        for time, n_j, d1_j, d2_j, c_j, f_j, se_j, lo_j, hi_j in zip(
            times.tolist(),
            at_risk.tolist(),
            d1.astype(int).tolist(),
            d2.astype(int).tolist(),
            c.astype(int).tolist(),
            estimate.tolist(),
            std_err.tolist(),
            _none_if_nan(low),
            _none_if_nan(high),
            strict=True,
        )
    ]
    return CumulativeIncidenceResult(
        n=int(t.size),
        events=int(d1.sum()),
        competing_events=int(d2.sum()),
        table=table,
        confidence=confidence,
        _entries=None if a is None else np.sort(a),
    )


def cumulative_incidence_at(result: CumulativeIncidenceResult, time: float) -> dict | None:
    """F1(time) with its interval from an :func:`aalen_johansen` result (step function).

    Returns ``{"time", "estimate", "ci_low", "ci_high", "at_risk"}``.  Before the
    first observed time the estimate is 0 with an undefined interval (``None``, as
    R).  Beyond the last observed time: ``None`` (follow-up ended before ``time``,
    so "within ``time``" is not estimable), except when the all-cause survival has
    reached 0 (no one left who could have an event), where the last value is final.
    ``None`` for an empty result.  ``at_risk`` is the number still at risk just after
    ``time`` (entered at or before it, exiting after it).
    """
    if not result.table or math.isnan(time):
        return None
    if time > result.table[-1]["time"]:
        finished = any(r["at_risk"] == r["events"] + r["competing_events"] for r in result.table)
        if not finished:
            return None
    last = None
    exited = 0
    for row in result.table:
        if row["time"] <= time:
            last = row
            exited += row["events"] + row["competing_events"] + row["censored"]
        else:
            break
    at_risk = _at_risk_after(result.n, exited, result._entries, time)
    if last is None:
        return {"time": time, "estimate": 0.0, "ci_low": None, "ci_high": None, "at_risk": at_risk}
    return {
        "time": time,
        "estimate": last["estimate"],
        "ci_low": last["ci_low"],
        "ci_high": last["ci_high"],
        "at_risk": at_risk,
    }
