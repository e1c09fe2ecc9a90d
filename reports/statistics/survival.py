"""Kaplan–Meier survival, median with its confidence interval, and the log-rank test.

Overall survival: implantation → death, censored at the last follow-up contact.
Pump functional survival: implantation → pump lost or unusable, censored at death
or last contact.  (Building the durations/events is the caller's job.)

Methods
-------
* Survival estimate and numbers at risk: ``lifelines.KaplanMeierFitter``.
* Pointwise confidence band: Greenwood variance of log S(t),
  ``σ²(t) = Σ_{t_i<=t} d_i / (n_i (n_i − d_i))``, transformed as R's
  ``survival::survfit`` ``conf.type`` does.  The default is **"log"** (R's
  default): ``S·exp(±z·σ)``, upper capped at 1.  ``"log-log"`` is lifelines'
  default ("exponential Greenwood"); ``"plain"`` is ``S ± z·σ·S``.  Where
  S(t) = 0 the band is undefined (``None``), as in R.
* Median and its CI: where a horizontal line at 0.5 meets the survival curve
  and the lower / upper bands (band inversion, as R's ``quantile.survfit``
  and lifelines' ``median_survival_times(kmf.confidence_interval_)`` do; this
  is the practical form of Brookmeyer & Crowley's interval).  If the curve
  sits exactly on 0.5 over a flat stretch, the midpoint of the stretch is used
  (R's rule).  Not reached → ``None`` (R prints NA).
* Log-rank (Mantel–Haenszel) test, 1 df: ``lifelines.statistics.logrank_test``;
  observed / expected counts are computed here for display.

Known answers: R ``survival``'s ``aml`` data (see tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import ndtri

__all__ = [
    "CONF_TYPES",
    "KaplanMeierResult",
    "kaplan_meier",
    "survival_at",
    "log_rank",
]

CONF_TYPES = ("log", "log-log", "plain")
_TOL = math.sqrt(np.finfo(float).eps)  # R's quantile.survfit tolerance


@dataclass(frozen=True)
class KaplanMeierResult:
    """Result of :func:`kaplan_meier`.

    ``table`` has one dict per distinct observed time (events or censorings), in
    time order: ``{"time", "at_risk", "events", "censored", "survival",
    "std_err", "ci_low", "ci_high"}`` (``std_err`` is the Greenwood standard
    error of S(t), as R's ``summary.survfit`` prints; ``ci_*`` may be ``None``).
    ``median`` and ``median_ci`` entries are ``None`` when not reached.
    """

    n: int
    events: int
    table: list[dict]
    median: float | None
    median_ci: tuple[float | None, float | None]
    confidence: float
    conf_type: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["median_ci"] = list(self.median_ci)
        return d


def _validate(durations: Sequence[float], events: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(list(durations), dtype=float)
    e = np.asarray(list(events))
    if t.shape != e.shape:
        raise ValueError("durations and events must have the same length")
    if t.size and (np.any(np.isnan(t)) or np.any(t < 0)):
        raise ValueError("durations must be non-negative numbers")
    if e.size and not np.all(np.isin(e, (0, 1))):
        raise ValueError("events must be 0 (censored) or 1 (event)")
    return t, e.astype(int)


def _band(s: float, var_log: float, z: float, conf_type: str) -> tuple[float | None, float | None]:
    if s <= 0.0 or math.isinf(var_log):
        return (None, None)
    if var_log == 0.0:
        return (s, s)
    sigma = math.sqrt(var_log)
    if conf_type == "log":
        return (s * math.exp(-z * sigma), min(1.0, s * math.exp(z * sigma)))
    if conf_type == "log-log":
        if s >= 1.0:
            return (s, s)
        log_s = math.log(s)
        v = math.log(-log_s)
        se = sigma / abs(log_s)
        return (math.exp(-math.exp(v + z * se)), math.exp(-math.exp(v - z * se)))
    # plain
    return (max(0.0, s - z * sigma * s), min(1.0, s + z * sigma * s))


def _find_quantile(xs: list[float], curve: list[float | None], p: float, xmax: float) -> float | None:
    """R's quantile.survfit ``findq`` for one probability, on ``y = 1 − curve``.

    ``xs``/``curve`` start with the origin (time 0, survival 1).
    """
    pts = [(x, 1.0 - c) for x, c in zip(xs, curve, strict=True) if c is not None]
    if not pts or max(y for _, y in pts) < p:
        return None
    seen: set[float] = set()
    dedup = []
    for x, y in pts:  # keep the first time each level is reached (drops censor rows)
        if y not in seen:
            seen.add(y)
            dedup.append((x, y))
    ys = [y for _, y in dedup]
    x_ = [x for x, _ in dedup]
    i1 = next((i for i, y in enumerate(ys) if y + _TOL >= p), None)
    i2 = next((i for i, y in enumerate(ys) if y - _TOL >= p), None)
    if i1 is None:
        return None
    if curve[-1] is not None and abs(p - ys[-1]) < _TOL and i1 == len(ys) - 1:
        # the curve ends on a flat stretch exactly at p
        return (x_[i1] + xmax) / 2.0
    if i2 is None:
        return None
    return (x_[i1] + x_[i2]) / 2.0


def kaplan_meier(
    durations: Sequence[float],
    events: Sequence[int],
    confidence: float = 0.95,
    conf_type: str = "log",
) -> KaplanMeierResult:
    """Kaplan–Meier estimate with Greenwood band, median and median CI.

    ``events[i]`` is 1 for an event, 0 for a censored observation.  An empty
    group returns an empty table and ``None`` medians.
    """
    if conf_type not in CONF_TYPES:
        raise ValueError(f"conf_type must be one of {CONF_TYPES}")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")
    t, e = _validate(durations, events)
    if t.size == 0:
        return KaplanMeierResult(0, 0, [], None, (None, None), confidence, conf_type)

    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=1.0 - confidence).fit(t, e)
    et = kmf.event_table
    sf = kmf.survival_function_.iloc[:, 0]
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))

    table: list[dict] = []
    var_log = 0.0
    # Plain arrays: pandas row access per time point would dominate at registry size.
    columns = zip(
        et.index.to_numpy(dtype=float),
        et["at_risk"].to_numpy(),
        et["observed"].to_numpy(),
        et["censored"].to_numpy(),
        sf.reindex(et.index).to_numpy(dtype=float),
        strict=True,
    )
    for time, n_i, d_i, c_i, s in columns:
        n_i, d_i, c_i, s = int(n_i), int(d_i), int(c_i), float(s)
        if d_i == 0 and c_i == 0:
            continue  # lifelines' origin row (time 0, nothing happened)
        if d_i:
            var_log = math.inf if n_i == d_i else var_log + d_i / (n_i * (n_i - d_i))
        low, high = _band(s, var_log, z, conf_type)
        std_err = None if math.isinf(var_log) else s * math.sqrt(var_log)
        table.append(
            {
                "time": float(time),
                "at_risk": n_i,
                "events": d_i,
                "censored": c_i,
                "survival": s,
                "std_err": std_err,
                "ci_low": low,
                "ci_high": high,
            }
        )

    xs = [0.0] + [r["time"] for r in table]
    xmax = xs[-1]
    median = _find_quantile(xs, [1.0] + [r["survival"] for r in table], 0.5, xmax)
    ci_low = _find_quantile(xs, [1.0] + [r["ci_low"] for r in table], 0.5, xmax)
    ci_high = _find_quantile(xs, [1.0] + [r["ci_high"] for r in table], 0.5, xmax)
    return KaplanMeierResult(
        n=int(t.size),
        events=int(e.sum()),
        table=table,
        median=median,
        median_ci=(ci_low, ci_high),
        confidence=confidence,
        conf_type=conf_type,
    )


def survival_at(result: KaplanMeierResult, time: float) -> dict | None:
    """S(time) with its band from a :func:`kaplan_meier` result (step function).

    Returns ``{"time", "survival", "ci_low", "ci_high", "at_risk"}``; before the
    first observed time survival is 1 with the band (1, 1).  ``None`` when
    ``time`` is beyond the last observed time (the curve is not defined there)
    or the group is empty.  ``at_risk`` is the number still at risk just after ``time``.
    """
    if not result.table or time > result.table[-1]["time"]:
        return None
    last = None
    for row in result.table:
        if row["time"] <= time:
            last = row
        else:
            break
    if last is None:
        return {"time": time, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "at_risk": result.n}
    return {
        "time": time,
        "survival": last["survival"],
        "ci_low": last["ci_low"],
        "ci_high": last["ci_high"],
        "at_risk": last["at_risk"] - last["events"] - last["censored"],
    }


def log_rank(
    durations_a: Sequence[float],
    events_a: Sequence[int],
    durations_b: Sequence[float],
    events_b: Sequence[int],
) -> dict | None:
    """Two-group log-rank test (R's ``survdiff`` with rho = 0).

    Returns ``{"chisq", "df", "p_value", "observed_a", "expected_a",
    "observed_b", "expected_b", "variance"}``, or ``None`` when either group
    is empty or there are no events at all (the test is undefined).
    """
    ta, ea = _validate(durations_a, events_a)
    tb, eb = _validate(durations_b, events_b)
    if ta.size == 0 or tb.size == 0 or (ea.sum() + eb.sum()) == 0:
        return None

    from lifelines.statistics import logrank_test

    res = logrank_test(ta, tb, event_observed_A=ea, event_observed_B=eb)

    expected_a = 0.0
    variance = 0.0
    for time in np.unique(np.concatenate([ta[ea == 1], tb[eb == 1]])):
        n_a = int(np.sum(ta >= time))
        n_b = int(np.sum(tb >= time))
        d = int(np.sum((ta == time) & (ea == 1)) + np.sum((tb == time) & (eb == 1)))
        n = n_a + n_b
        expected_a += d * n_a / n
        if n > 1:
            variance += d * (n_a / n) * (n_b / n) * (n - d) / (n - 1)
    total_events = int(ea.sum() + eb.sum())
    return {
        "chisq": float(res.test_statistic),
        "df": 1,
        "p_value": float(res.p_value),
        "observed_a": int(ea.sum()),
        "expected_a": expected_a,
        "observed_b": int(eb.sum()),
        "expected_b": total_events - expected_a,
        "variance": variance,
    }
