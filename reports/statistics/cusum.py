"""Bernoulli (risk-adjusted) CUSUM for learning curves.

Steiner SH, Cook RJ, Farewell VT, Treasure T. Monitoring surgical performance
using risk-adjusted cumulative sum charts. *Biostatistics* 2000;1(4):441–452.

For a surgeon's implantations in date order, outcome ``y_t`` (1 = complication
within the chosen window), baseline risk ``p_t`` (the registry rate, or a
case-mix model's prediction) and the odds ratio to detect ``R_A`` (usually 2)::

    y_t = 1:  W_t = ln( R_A / (1 − p_t + R_A·p_t) )
    y_t = 0:  W_t = −ln( 1 − p_t + R_A·p_t )
    X_t = max(0, X_{t−1} + W_t),  X_0 = 0;  signal when X_t >= h

``R_A > 1`` detects deterioration; ``R_A < 1`` (e.g. 1/2) detects improvement
with the same upper chart (survivals then score positive).

Reset policy: by default (``reset=True``) the chart restarts at 0 after each
signal, as is common practice (and as the R package ``vlad`` does with
``reset = TRUE``), so later signals are new evidence.  With ``reset=False`` the
chart keeps accumulating and every case with ``X_t >= h`` is listed.

Threshold ``h``: :func:`cusum_threshold_by_simulation` chooses it for an
acceptable in-control false-alarm probability over a stated number of cases,
or for a target in-control average run length (ARL0).  State ``h`` on the chart.
:func:`fixed_control_limit` is the registry's rule: one h per method version,
for a fixed horizon of cases and a stated reference risk, the same for every
surgeon whatever their case count.

VLAD (:func:`vlad`): the variable life-adjusted display of Lovegrove et al.
(*Lancet* 1997;350:1128), the cumulative sum of expected minus observed
complications, shown beside the risk-adjusted CUSUM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "PARSONNET_INTERCEPT",
    "PARSONNET_SLOPE",
    "parsonnet_risk",
    "logistic_risk",
    "cusum_weight",
    "cusum_scores",
    "cusum_chart",
    "CusumChart",
    "cusum_threshold_by_simulation",
    "cusum_arl_by_simulation",
    "FIXED_LIMIT_HORIZON",
    "FIXED_LIMIT_FALSE_SIGNAL_PROBABILITY",
    "FIXED_LIMIT_SEED",
    "FIXED_LIMIT_N_SIM",
    "fixed_control_limit",
    "vlad",
]

#: Steiner et al. (2000) p. 445: logit(p) = −3.68 + 0.077·Parsonnet score.
PARSONNET_INTERCEPT = -3.68
PARSONNET_SLOPE = 0.077


def logistic_risk(linear_predictor: float) -> float:
    """expit(x) = 1 / (1 + e^(−x))."""
    if linear_predictor >= 0:
        return 1.0 / (1.0 + math.exp(-linear_predictor))
    e = math.exp(linear_predictor)
    return e / (1.0 + e)


def parsonnet_risk(score: float, intercept: float = PARSONNET_INTERCEPT, slope: float = PARSONNET_SLOPE) -> float:
    """Predicted risk from the Parsonnet logistic model of Steiner et al. (2000)."""
    return logistic_risk(intercept + slope * score)


def _check_risk(p: float) -> None:
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"risk must be in [0, 1], got {p!r}")


def _check_or(odds_ratio: float) -> None:
    if not odds_ratio > 0 or math.isinf(odds_ratio):
        raise ValueError("odds_ratio must be a positive finite number")


def cusum_weight(outcome: int, risk: float, odds_ratio: float = 2.0) -> float:
    """Log-likelihood-ratio score W_t for one case (see module docstring)."""
    _check_risk(risk)
    _check_or(odds_ratio)
    if outcome not in (0, 1, True, False):
        raise ValueError(f"outcome must be 0 or 1, got {outcome!r}")
    denom = 1.0 - risk + odds_ratio * risk
    if outcome:
        return math.log(odds_ratio / denom)
    return -math.log(denom)


def _risks_for(outcomes: Sequence[int], risks) -> list[float]:
    if isinstance(risks, (int, float)) and not isinstance(risks, bool):
        return [float(risks)] * len(outcomes)
    risks = [float(r) for r in risks]
    if len(risks) != len(outcomes):
        raise ValueError("outcomes and risks must have the same length")
    return risks


def cusum_scores(outcomes: Sequence[int], risks, odds_ratio: float = 2.0) -> list[float]:
    """W_t for each case.  ``risks`` is one baseline risk for all cases or one per case."""
    return [cusum_weight(y, p, odds_ratio) for y, p in zip(outcomes, _risks_for(outcomes, risks), strict=True)]


@dataclass(frozen=True)
class CusumChart:
    """Result of :func:`cusum_chart`.

    ``scores[t]`` = W_t, ``values[t]`` = X_t (after any reset, i.e. 0 on the
    case after a signal is drawn from 0), ``signals`` = 0-based indices of the
    cases at which X_t >= h.  ``h`` may be ``None`` (no signalling rule).
    """

    scores: list[float]
    values: list[float]
    signals: list[int]
    h: float | None
    odds_ratio: float
    reset: bool

    def to_dict(self) -> dict:
        return asdict(self)


def cusum_chart(
    outcomes: Sequence[int],
    risks,
    odds_ratio: float = 2.0,
    h: float | None = None,
    reset: bool = True,
) -> CusumChart:
    """Upper Bernoulli CUSUM X_t = max(0, X_{t−1} + W_t) with signals at X_t >= h.

    ``values`` holds X_t as plotted: with ``reset=True`` the value at a signal is
    the one that crossed h and the *next* case starts again from 0.
    """
    if h is not None and not h > 0:
        raise ValueError("h must be positive")
    scores = cusum_scores(outcomes, risks, odds_ratio)
    values: list[float] = []
    signals: list[int] = []
    x = 0.0
    for t, w in enumerate(scores):
        x = max(0.0, x + w)
        values.append(x)
        if h is not None and x >= h:
            signals.append(t)
            if reset:
                x = 0.0
    return CusumChart(
        scores=scores,
        values=values,
        signals=signals,
        h=h,
        odds_ratio=odds_ratio,
        reset=reset,
    )


# --------------------------------------------------------------------------- simulation


def _risk_sampler(p, rng: np.random.Generator):
    """Return f(size) drawing baseline risks: constant, or resampled case mix."""
    if isinstance(p, (int, float)) and not isinstance(p, bool):
        _check_risk(float(p))
        value = float(p)
        return lambda size: np.full(size, value)
    arr = np.asarray(list(p), dtype=float)
    if arr.size == 0:
        raise ValueError("need at least one risk")
    if np.any((arr < 0) | (arr > 1)) or np.any(np.isnan(arr)):
        raise ValueError("risks must be in [0, 1]")
    return lambda size: arr[rng.integers(0, arr.size, size=size)]


def _weights(y: np.ndarray, risk: np.ndarray, odds_ratio: float) -> np.ndarray:
    denom = 1.0 - risk + odds_ratio * risk
    return np.where(y, np.log(odds_ratio / denom), -np.log(denom))


def _max_paths(p, odds_ratio: float, n_cases: int, n_sim: int, seed: int) -> np.ndarray:
    """max_{t<=n_cases} X_t over n_sim in-control paths (no reset)."""
    rng = np.random.default_rng(seed)
    draw = _risk_sampler(p, rng)
    x = np.zeros(n_sim)
    best = np.zeros(n_sim)
    for _ in range(n_cases):
        risk = draw(n_sim)
        y = rng.random(n_sim) < risk
        x = np.maximum(0.0, x + _weights(y, risk, odds_ratio))
        np.maximum(best, x, out=best)
    return best


def _run_lengths(
    p,
    odds_ratio: float,
    h: float,
    n_sim: int,
    seed: int,
    max_cases: int,
    true_odds_ratio: float = 1.0,
    stop_when_total: float | None = None,
) -> tuple[np.ndarray, int, bool]:
    """Simulated run lengths (no reset) and how many paths were still running.

    Every path draws its risks and outcomes at every step whether or not it has
    signalled, so path i sees the same outcomes for every h (common random
    numbers: run lengths are then monotone in h).  With ``stop_when_total`` the
    simulation stops as soon as the run lengths are certain to add up to at
    least that much (returns ``stopped_early=True``).
    """
    rng = np.random.default_rng(seed)
    draw = _risk_sampler(p, rng)
    x = np.zeros(n_sim)
    run_length = np.zeros(n_sim, dtype=np.int64)
    running = np.ones(n_sim, dtype=bool)
    finished_total = 0
    t = 0
    while t < max_cases:
        t += 1
        risk = draw(n_sim)
        if true_odds_ratio != 1.0:
            with np.errstate(divide="ignore", invalid="ignore"):
                odds = risk / (1.0 - risk) * true_odds_ratio
                true_risk = np.where(risk >= 1.0, 1.0, odds / (1.0 + odds))
        else:
            true_risk = risk
        y = rng.random(n_sim) < true_risk
        x = np.maximum(0.0, x + _weights(y, risk, odds_ratio))
        hit = running & (x >= h)
        if hit.any():
            run_length[hit] = t
            finished_total += int(hit.sum()) * t
            running &= ~hit
        n_running = int(running.sum())
        if not n_running:
            return run_length, 0, False
        if stop_when_total is not None and finished_total + n_running * t >= stop_when_total:
            run_length[running] = t
            return run_length, n_running, True
    run_length[running] = max_cases
    return run_length, int(running.sum()), False


def cusum_arl_by_simulation(
    p,
    odds_ratio: float,
    h: float,
    n_sim: int = 2000,
    seed: int = 0,
    max_cases: int = 100_000,
    true_odds_ratio: float = 1.0,
) -> dict:
    """Average run length to the first signal, by simulation.

    In control (``true_odds_ratio=1``) outcomes are Bernoulli(p_t); otherwise the
    true odds of a complication are multiplied by ``true_odds_ratio`` (ARL1).
    ``p`` is a constant risk or a sequence of risks resampled with replacement
    (the case mix).  Paths still running after ``max_cases`` are censored there
    (``censored`` counts them; the ARL is then an underestimate).

    Returns ``{"arl", "se", "censored", "n_sim", "seed", "h", "odds_ratio"}``.
    """
    _check_or(odds_ratio)
    _check_or(true_odds_ratio)
    if not h > 0:
        raise ValueError("h must be positive")
    rl, censored, _ = _run_lengths(p, odds_ratio, h, int(n_sim), seed, int(max_cases), true_odds_ratio)
    rl = rl.astype(float)
    return {
        "arl": float(rl.mean()),
        "se": float(rl.std(ddof=1) / math.sqrt(n_sim)) if n_sim > 1 else float("nan"),
        "censored": censored,
        "n_sim": int(n_sim),
        "seed": seed,
        "h": h,
        "odds_ratio": odds_ratio,
    }


def cusum_threshold_by_simulation(
    p,
    odds_ratio: float = 2.0,
    *,
    false_alarm_rate: float | None = None,
    n_cases: int | None = None,
    target_arl0: float | None = None,
    n_sim: int = 10_000,
    seed: int = 20000441,
    decimals: int = 2,
    max_h: float = 20.0,
) -> dict:
    """Choose the CUSUM threshold h by in-control simulation (deterministic per seed).

    Two ways to state the requirement (give exactly one):

    * ``false_alarm_rate`` with ``n_cases``: the smallest h, on a grid of
      ``decimals`` decimal places, such that the simulated probability of any
      signal within the first ``n_cases`` in-control cases is <= the rate.
      Vectorised over ``n_sim`` paths; cost ~ n_sim × n_cases.
    * ``target_arl0``: the smallest grid h whose simulated in-control ARL is
      >= the target (bisection over the grid up to ``max_h`` with common random
      numbers, so the simulated ARL is monotone in h).  Each bisection step
      stops once the target is certain to be reached, so it costs at most about
      n_sim × target_arl0 case draws; consider ``n_sim=1000``–``2000``.  The
      reported ``arl0`` is then re-simulated in full (paths censored at
      100 × target).

    ``p`` is the registry rate (float) or a list of case-mix risks resampled
    with replacement.  Returns ``{"h", "method", "false_alarm_rate"|"arl0",
    "n_cases", "n_sim", "seed", "odds_ratio"}`` where the rate/ARL is the
    simulated value achieved at the returned h.
    """
    _check_or(odds_ratio)
    if (false_alarm_rate is None) == (target_arl0 is None):
        raise ValueError("give exactly one of false_alarm_rate (with n_cases) or target_arl0")
    scale = 10**decimals
    if false_alarm_rate is not None:
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError("false_alarm_rate must be in (0, 1)")
        if not n_cases or n_cases < 1:
            raise ValueError("n_cases is required with false_alarm_rate")
        best = _max_paths(p, odds_ratio, int(n_cases), int(n_sim), seed)
        ordered = np.sort(best)[::-1]
        k = int(math.floor(false_alarm_rate * n_sim))  # alarms allowed
        # h must exceed the (k+1)-th largest path maximum; round up onto the grid.
        h = math.floor(float(ordered[k]) * scale + 1e-9) / scale + 1.0 / scale if k < n_sim else 1.0 / scale
        h = max(round(h, decimals), 1.0 / scale)
        achieved = float(np.mean(best >= h))
        return {
            "h": h,
            "method": "false_alarm_rate",
            "false_alarm_rate": achieved,
            "n_cases": int(n_cases),
            "n_sim": int(n_sim),
            "seed": seed,
            "odds_ratio": odds_ratio,
        }

    if not target_arl0 > 1:
        raise ValueError("target_arl0 must be > 1")
    target_total = float(target_arl0) * n_sim
    max_cases = max(1000, int(100 * target_arl0))

    def reaches(idx: int) -> bool:
        rl, _, stopped_early = _run_lengths(
            p, odds_ratio, idx / scale, int(n_sim), seed, max_cases, stop_when_total=target_total
        )
        return stopped_early or float(rl.sum()) >= target_total

    lo, hi = 1, int(round(max_h * scale))  # indices on the h grid
    if not reaches(hi):
        raise ValueError(f"target ARL0 {target_arl0} not reached with h <= {max_h}")
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid + 1
    h = lo / scale
    res = cusum_arl_by_simulation(p, odds_ratio, h, n_sim=n_sim, seed=seed, max_cases=max_cases)
    return {
        "h": h,
        "method": "target_arl0",
        "arl0": res["arl"],
        "n_cases": None,
        "n_sim": int(n_sim),
        "seed": seed,
        "odds_ratio": odds_ratio,
    }


# --------------------------------------------------------------------------- fixed control limit

#: The fixed control limit's definition (change these only with a new method version).
FIXED_LIMIT_HORIZON = 100
FIXED_LIMIT_FALSE_SIGNAL_PROBABILITY = 0.05
FIXED_LIMIT_SEED = 20000441
FIXED_LIMIT_N_SIM = 100_000


def fixed_control_limit(
    false_signal_probability: float = FIXED_LIMIT_FALSE_SIGNAL_PROBABILITY,
    horizon: int = FIXED_LIMIT_HORIZON,
    odds_ratio: float = 2.0,
    *,
    baseline_risk,
    n_sim: int = FIXED_LIMIT_N_SIM,
    seed: int = FIXED_LIMIT_SEED,
    decimals: int = 2,
) -> dict:
    """The CUSUM control limit h for a fixed horizon, by in-control simulation.

    Steiner et al. (*Biostatistics* 2000;1:441) choose h by simulation so that the chart's
    in-control behaviour is acceptable; this is the "probability of a false signal within a
    stated number of cases" form.  h is the smallest value on a grid of ``decimals`` decimal
    places such that, over ``n_sim`` simulated in-control surgeons, the proportion whose chart
    (weights for ``odds_ratio``, no reset) reaches h within their first ``horizon`` cases is
    at most ``false_signal_probability``.  In control means outcomes Bernoulli(p_t) with
    p_t drawn from ``baseline_risk``: a constant (the registry rate) or a sequence of
    reference risks resampled with replacement (the registry's case mix), stated with the
    method version.  Computed by :func:`cusum_threshold_by_simulation` (numpy's PCG64 seeded
    with ``seed``: identical inputs give the identical h with the same numpy version; numpy
    does not promise its streams across versions, so store h with the method version).

    Why fixed: the horizon and the reference risk belong to the method, not to the surgeon,
    so h does not move as a surgeon's case count grows (a signal once shown stays shown, and
    every surgeon's chart uses the same line).  The probability holds for the first
    ``horizon`` cases; a surgeon with more cases has a larger chance of a false signal over
    their whole series, which is why the chart resets after a signal and reports where it
    signalled.

    Returns ``{"h", "false_signal_probability", "target_false_signal_probability",
    "mc_se", "horizon", "odds_ratio", "reference_risk", "n_sim", "seed"}``:
    ``false_signal_probability`` is the simulated probability achieved at h and ``mc_se``
    its binomial Monte Carlo standard error; ``reference_risk`` is the constant risk or
    ``{"n_risks", "mean"}`` for a case mix.
    """
    if not 0.0 < false_signal_probability < 1.0:
        raise ValueError("false_signal_probability must be in (0, 1)")
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError("horizon must be a positive whole number")
    if isinstance(baseline_risk, (int, float)) and not isinstance(baseline_risk, bool):
        _check_risk(float(baseline_risk))
        reference = float(baseline_risk)
    else:
        baseline_risk = [float(r) for r in baseline_risk]
        if not baseline_risk:
            raise ValueError("need at least one reference risk")
        reference = {"n_risks": len(baseline_risk), "mean": float(np.mean(baseline_risk))}
    res = cusum_threshold_by_simulation(
        baseline_risk,
        odds_ratio,
        false_alarm_rate=false_signal_probability,
        n_cases=int(horizon),
        n_sim=int(n_sim),
        seed=seed,
        decimals=decimals,
    )
    achieved = res["false_alarm_rate"]
    return {
        "h": res["h"],
        "false_signal_probability": achieved,
        "target_false_signal_probability": float(false_signal_probability),
        "mc_se": math.sqrt(achieved * (1 - achieved) / int(n_sim)),
        "horizon": int(horizon),
        "odds_ratio": odds_ratio,
        "reference_risk": reference,
        "n_sim": int(n_sim),
        "seed": seed,
    }


# --------------------------------------------------------------------------- VLAD


def vlad(outcomes: Sequence[int], risks) -> list[float]:
    """Variable life-adjusted display: V_t = Σ_{s<=t} (p_s − y_s), expected minus observed.

    Lovegrove J, Valencia O, Treasure T, Sherlaw-Johnson C, Gallivan S. Monitoring the results
    of cardiac surgery by variable life-adjusted display. *Lancet* 1997;350:1128–1130 (the VLAD
    plot: "the difference between expected and actual cumulative mortality"; STATISTICS.md
    cites Lovegrove et al., *Br J Surg* 1997;84:1576 for it); and Sherlaw-Johnson C. A method
    for detecting runs of good and bad clinical outcomes on VLAD charts. *Health Care Manag
    Sci* 2005;8:61–65.  With y = 1 a complication, the line rises by
    p_t for an uncomplicated case and falls by 1 − p_t for a complication: "complications
    avoided" relative to the case-mix model.

    ``risks`` is one baseline risk for all cases or one per case (as :func:`cusum_scores`).
    Returns V_1 … V_n (a list of floats, one per case; V_0 = 0 is not included).
    """
    total = 0.0
    out: list[float] = []
    for y, p in zip(outcomes, _risks_for(outcomes, risks), strict=True):
        _check_risk(p)
        if y not in (0, 1, True, False):
            raise ValueError(f"outcome must be 0 or 1, got {y!r}")
        total += p - (1.0 if y else 0.0)
        out.append(total)
    return out
