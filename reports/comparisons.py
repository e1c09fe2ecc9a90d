"""What the case-mix adjusted comparison shows: observed against expected, per centre and per surgeon.

The model is ``reports.casemix`` (fitted once per run on its snapshot); the formulas are in
``reports.statistics.observed_expected``; drawing is ``reports.charts``. Every outcome here is one
where a higher ratio is worse.

* Ratio O/E with Ulm's exact 95% interval (Am J Epidemiol 1990;131:373).
* Between-centre variance τ² by DerSimonian-Laird on log(O/E) (Spiegelhalter, Stat Med
  2005;24:1185): where τ² > 0 the funnel is widened (Poisson-lognormal) and the flag is read on
  that widened scale; the report says so.
* Flags by the exact one-sided p-value of the observed count, never by the plotted point:
  p < 0.001 an alarm, p < 0.025 a warning (the 99.8% and 95% limits).
* Surgeons are compared with tau² = 0 (too few cases per surgeon to estimate it) against the
  registry model, so their flags are the exact Poisson ones.
"""

from __future__ import annotations

import threading

from scipy.stats import binom

from . import casemix, disclosure
from .statistics import poisson_flag, poisson_funnel_bands, poisson_ratio_interval, tau2_log_ratio
from .statistics.observed_expected import WARNING_P, poisson_sf

ALARM, WARNING = "alarm", "warning"
MIN_CENTRES_FOR_TAU2 = 3


def level(flag):
    """'alarm' or 'warning' for a worse-than-expected flag; None otherwise (a better-than-expected flag is not an alarm)."""
    if flag == "alarm_high":
        return ALARM
    if flag == "warning_high":
        return WARNING
    return None


def ratio_figures(observed, expected, tau2=0.0):
    if not expected:
        return {"observed": observed, "expected": expected, "ratio": None, "ci": None, "flag": None, "p_high": None}
    low, high = poisson_ratio_interval(observed, expected)
    flag = poisson_flag(observed, expected, tau2)
    return {
        "observed": observed,
        "expected": expected,
        "ratio": observed / expected,
        "ci": [low, high],
        "flag": flag["flag"],
        "p_high": flag["p_high"],
        "p_low": flag["p_low"],
    }


def false_warning_probability(expected, tau2=0.0):
    """P(a warning or an alarm on the worse side | the centre is exactly on target), exactly.

    The smallest flagged count o has P(X >= o) < WARNING_P; the probability is P(X >= o).
    """
    if not expected:
        return 0.0
    count = 0
    while poisson_sf(count, expected, tau2) >= WARNING_P:
        count += 1
    return poisson_sf(count, expected, tau2)


def false_warning_probability_binomial(n, theta0, higher_is_worse=True):
    """The same for a crude proportion against theta0 (exact binomial tails, not mid-p)."""
    if not n or not 0.0 < theta0 < 1.0:
        return 0.0
    if higher_is_worse:
        count = 0
        while binom.sf(count - 1, n, theta0) >= WARNING_P:
            count += 1
        return float(binom.sf(count - 1, n, theta0)) if count <= n else 0.0
    count = n
    while binom.cdf(count, n, theta0) >= WARNING_P:
        count -= 1
    return float(binom.cdf(count, n, theta0)) if count >= 0 else 0.0


def between_centre_tau2(groups):
    usable = [g for g in groups if g["expected"] > 0]
    if len(usable) < MIN_CENTRES_FOR_TAU2:
        return 0.0
    return tau2_log_ratio([g["observed"] for g in usable], [g["expected"] for g in usable])["tau2"]


def _grid(max_expected):
    grid, value = [], 0.25
    while value <= max_expected:
        grid.append(round(value, 4))
        value = value + 0.25 if value < 10 else value * 1.04
    return grid + [max_expected]


def _centre_of(row):
    return row.centre_code


def _surgeon_of(row):
    return row.surgeon_code


def _no_memo(key, compute):
    return compute()


def centre_comparison(rows, models, centre_code, memo=_no_memo):
    """Per outcome of the case-mix model: the centre's O, E, ratio, interval and flag; the funnel's points and bands;
    the centre's surgeons. Other centres appear only as anonymous points that pass the small-cell rule.

    ``memo(key, compute)`` keeps what is the same for every centre of a run (reports.rendering passes its own)."""
    out = []
    for outcome in casemix.OUTCOMES:
        code = outcome.code
        model = models.get(code)
        if not model:
            continue
        by_centre = memo(
            ("observed_expected_by_centre", code),
            lambda model=model: casemix.observed_expected(model, rows, key=_centre_of),
        )
        tau2 = memo(("tau2", code), lambda by_centre=by_centre: between_centre_tau2(by_centre))
        own = next((g for g in by_centre if g["group"] == centre_code), None)
        others = [g for g in by_centre if g["group"] != centre_code]
        checked = (
            disclosure.suppress_proportions(
                [
                    {"group": g["group"], "implantations": g["n"], "events": g["observed"], "rate": None, "ci": None}
                    for g in others
                ],
                "events",
            )
            if others
            else []
        )
        shown = {c["group"] for c in checked if not c["suppressed"]}
        points = [
            {"expected": g["expected"], "ratio": g["observed"] / g["expected"], "own": False}
            for g in others
            if g["group"] in shown and g["expected"] > 0
        ]
        figures = ratio_figures(own["observed"], own["expected"], tau2) if own else ratio_figures(0, 0.0)
        if own and own["expected"] > 0:
            points.append({"expected": own["expected"], "ratio": own["observed"] / own["expected"], "own": True})
        points.sort(key=lambda p: (p["expected"], p["own"]))
        max_expected = max([g["expected"] for g in by_centre] + [5.0]) * 1.1
        own_rows = [r for r in rows if r.centre_code == centre_code]
        surgeons = [
            dict(group, **ratio_figures(group["observed"], group["expected"]))
            for group in casemix.observed_expected(model, own_rows, key=_surgeon_of)
        ]
        out.append(
            {
                "key": code,
                "label": outcome.label,
                "n": own["n"] if own else 0,
                "centre": figures,
                "level": level(figures["flag"]),
                "tau2": tau2,
                "widened": tau2 > 0,
                "false_warning_probability": false_warning_probability(figures["expected"], tau2),
                "points": points,
                "other_centres_shown": len(points) - (1 if own and own["expected"] > 0 else 0),
                "other_centres_hidden": len(others) - len(shown),
                "bands": memo(
                    ("poisson_bands", code), lambda m=max_expected, t=tau2: poisson_funnel_bands(_grid(m), t)
                ),
                "surgeons": [dict(s, level=level(s["flag"])) for s in surgeons],
            }
        )
    return out


# --- The live model, refitted only when the registry changes (the statistics API) --------------

_live = {"version": None, "models": None}
_live_lock = threading.Lock()


def live_case_mix():
    """The case-mix model fitted on the whole registry this connection reads (live: cut today; a data release:
    its cut), per data version."""
    from registry import rules
    from registry.models import ComplicationType

    from .cohort import cohort_version, current_cohort
    from .releases import cut_date_or_today

    version = cohort_version()
    with _live_lock:
        if _live["version"] != version:
            types = list(ComplicationType.objects.values("code", "name", "category", "catheter_related"))
            rows = list(current_cohort().values())
            _live["models"] = casemix.fit_case_mix(rows, types, cut_date_or_today(rules.today())) if rows else {}
            _live["version"] = version
        return _live["models"]


def observed_expected_groups(rows, model, key):
    """O, E, ratio, Ulm interval and exact flag per group (tau2 over the groups when they are centres)."""
    groups = casemix.observed_expected(model, rows, key=key)
    tau2 = between_centre_tau2(groups) if key is _centre_of else 0.0
    return [
        {"group": g["group"], "n": g["n"], **ratio_figures(g["observed"], g["expected"], tau2), "tau2": tau2}
        for g in groups
    ]


def group_key(name):
    return {"centre": _centre_of, "surgeon": _surgeon_of}[name]
