"""One centre's monthly benchmark report: numbers, HTML and PDF.

``build_report_context`` computes every figure of the report from cohort rows
(``reports.cohort.CohortRow``, the whole registry as of the data cut) with the
functions of ``reports.benchmarks`` and ``reports.statistics``; nothing here
re-implements a statistic. The context is plain JSON (it is stored with the
run, so a report can be re-drawn and audited). ``render_html`` turns a context
into one standalone HTML page (inline CSS, inline SVG charts from
``reports.charts``) and ``render_pdf`` prints it with WeasyPrint.

What the report shows, and to whom (disclosure)
-----------------------------------------------
The report goes to one centre (its lead and data managers), so:

* **The centre's own figures are shown in full**, small counts included: they
  describe the recipient's own patients, which the recipient already holds.
* **Other centres are never named.** They appear only as grey, unlabelled dots
  on the funnel plots, listed in order of volume (never by code); their codes
  are not in the context, the HTML or the PDF. Surgeons appear by registry
  code, and only the centre's own surgeons.
* **Counts about other centres follow STATISTICS.md (small cells).** A dot of
  another centre is left out of a funnel plot when ``reports.disclosure``
  would suppress its volume, events or non-events (1-4), with complementary
  suppression across the other centres (their total is known to the reader
  as registry minus own). A pooled registry figure is the centre's own count
  plus the other centres' share, so the reader can subtract: a registry figure
  is shown only when the other centres' share (registry − own) passes the same
  rule; otherwise it is printed as "suppressed". The same goes for registry
  counts by indication (one suppression group per column), numbers at risk,
  and data-completeness counts. Registry Kaplan-Meier curves are drawn from
  the coarsened 30-day table of ``disclosure.suppress_survival`` and stop
  where fewer than 5 remain at risk.
* **No patient identifier** is ever read: cohort rows carry no pseudonym and
  the context keeps no row or patient id.

Choices made here (stated in the report's methods section as well)
------------------------------------------------------------------
* Pooled registry figures include the centre itself (the funnel target is the
  whole registry's rate).
* Outcomes follow ``reports.outcomes``: each is a risk by a fixed day
  (Aalen-Johansen with competing events and delayed entry; 90-day mortality
  1 − Kaplan-Meier). "Any severe complication" counts every type at
  Clavien-Dindo >= IIIa where recorded, otherwise grade >= 3.
* Funnel positions and flags need a count out of a denominator: they use the
  implantations whose window had closed by the data cut
  (``benchmarks.closed_window_proportions``), where the Aalen-Johansen estimate
  is that proportion, so a centre's follow-up length does not move them.
* Conversion to resection is shown for all implantations (intention to treat)
  and for unresectable indications, where it is meaningful.
* CUSUM: outcome = any complication within 90 days of implantation; only
  implantations at least 90 days before the data cut are charted (complete
  window), and the baseline p is the registry rate over the same rows. The
  threshold h is chosen per surgeon by simulation so that an in-control
  surgeon has a 5% chance of a false signal over the charted cases.
* Data completeness: no follow-up at all, or last contact more than 6
  calendar months before the data cut for a patient not known to have died.

Helpers not in ``reports.benchmarks`` (small, built on its functions):
``_pooled_guard`` (registry − own checked with ``disclosure``), ``_at_risk``
(numbers at risk from a ``benchmarks.survival`` table) and the funnel and
CUSUM assembly below.
"""

import calendar
import copy
import datetime
import json
from collections import Counter

from django.template.loader import render_to_string
from django.utils import timezone

from registry.vocabulary import ComplicationCategory, Indication

from . import benchmarks, charts, disclosure, outcomes
from .statistics import (
    cusum_chart,
    cusum_threshold_by_simulation,
    funnel_bands,
    funnel_position,
    log_rank,
    suppress_small_counts,
)

SCHEMA_VERSION = 1
TEMPLATE = "reports/centre_report.html"

CUSUM_WINDOW_DAYS = 90
CUSUM_ODDS_RATIO = 2.0
CUSUM_FALSE_ALARM = 0.05
CUSUM_SIMULATIONS = 10_000
LEARNING_CURVE_PUMPS = benchmarks.DEFAULT_EXPERIENCE_THRESHOLD
STALE_MONTHS = 6
AT_RISK_MONTHS = (0, 6, 12, 24, 36, 48, 60)
MONTH_DAYS = 30.4375
UNRESECTABLE = (
    Indication.UNRESECTABLE_FIRST_LINE.value,
    Indication.UNRESECTABLE_AFTER_PROGRESSION.value,
    Indication.UNRESECTABLE_ICCA.value,
)
SHORT_INDICATION = {
    Indication.UNRESECTABLE_FIRST_LINE.value: "Unresectable, first line",
    Indication.UNRESECTABLE_AFTER_PROGRESSION.value: "Unresectable, after progression",
    Indication.ADJUVANT.value: "Adjuvant after resection",
    Indication.UNRESECTABLE_ICCA.value: "Unresectable iCCA",
    Indication.OTHER.value: "Other",
}
POSITION_TEXT = {
    "above_99.8": "above the 99.8% limit",
    "above_95": "above the 95% limit",
    "inside": "within the limits",
    "below_95": "below the 95% limit",
    "below_99.8": "below the 99.8% limit",
}


# --------------------------------------------------------------------------- small helpers


def _iso(value):
    return value.isoformat() if value is not None else None


def _as_date(value):
    if isinstance(value, datetime.datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


def _months_before(day, months):
    month = day.month - months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def period_label(start, end):
    """'October 2026' for a calendar month, else '1 Oct 2026 – 15 Nov 2026'."""
    if start.day == 1 and end == start.replace(day=calendar.monthrange(start.year, start.month)[1]):
        return f"{start:%B} {start.year}"
    return f"{start.day} {start:%b %Y} – {end.day} {end:%b %Y}"


def _one(groups):
    """The single group of a ``Grouping(None)`` result, or ``None`` for no rows."""
    return groups[0] if groups else None


def _proportion(group, numerator="events"):
    if group is None:
        return {"events": 0, "n": 0, "rate": None, "ci": None}
    return {"events": group[numerator], "n": group["implantations"], "rate": group["rate"], "ci": group["ci"]}


def _pooled_guard(own, pooled, numerator="events"):
    """The registry figure as the centre may see it.

    The centre can subtract its own counts from a pooled figure, so the other
    centres' share (registry − own) is put through ``disclosure.suppress_proportions``;
    if it would be suppressed, so is the registry figure, as a unit (n, events,
    rate and interval; the caller drops anything else built on them).
    """
    others = {
        "group": "others",
        "implantations": pooled["n"] - own["n"],
        numerator: pooled["events"] - own["events"],
        "rate": None,
        "ci": None,
    }
    [checked] = disclosure.suppress_proportions([others], numerator)
    shown = dict(pooled, suppressed=checked["suppressed"])
    if checked["suppressed"]:
        shown.update(n=None, events=None, rate=None, ci=None)
    return shown


def _small(count):
    return 0 < count < disclosure.THRESHOLD


def _at_risk(table, day):
    """Number at risk at ``day`` (followed for at least ``day`` days) from a raw ``benchmarks.survival`` table."""
    return next((r["at_risk"] for r in table if r["day"] >= day), 0)


# --------------------------------------------------------------------------- sections


def _volume_and_indications(rows, own, period_start, period_end):
    year_start = _months_before(period_end, 12) + datetime.timedelta(days=1)
    windows = {
        "period": lambda r: period_start <= r.implanted_on <= period_end,
        "last_12_months": lambda r: year_start <= r.implanted_on <= period_end,
        "cumulative": lambda r: r.implanted_on <= period_end,
    }
    known = [choice.value for choice in Indication]
    seen = sorted({r.indication for r in rows} - set(known))
    codes = known + seen
    labels = {choice.value: str(choice.label) for choice in Indication}
    grouping = benchmarks.Grouping("indication")

    columns = {}
    for name, keep in windows.items():
        own_counts = {k: len(v) for k, v in grouping.split([r for r in own if keep(r)]).items()}
        all_counts = {k: len(v) for k, v in grouping.split([r for r in rows if keep(r)]).items()}
        others = [(code, all_counts.get(code, 0) - own_counts.get(code, 0)) for code in codes]
        others_total = sum(c for _, c in others)
        outcome = suppress_small_counts(others, total=others_total, threshold=disclosure.THRESHOLD)
        hidden = {cell["key"] for cell in outcome["cells"] if cell["suppressed"]}
        total_hidden = outcome["total"]["suppressed"]
        own_total = sum(own_counts.values())
        all_total = sum(all_counts.values())
        columns[name] = {
            "own": own_counts,
            "all": all_counts,
            "hidden": hidden,
            "own_total": own_total,
            "all_total": None if total_hidden else all_total,
        }

    table = []
    cumulative = columns["cumulative"]
    for code in codes:
        own_n = cumulative["own"].get(code, 0)
        all_n = cumulative["all"].get(code, 0)
        if not all_n and code not in known:
            continue
        reg_hidden = code in cumulative["hidden"] or cumulative["all_total"] is None
        table.append(
            {
                "code": code,
                "label": labels.get(code, code),
                "short_label": SHORT_INDICATION.get(code, code),
                "centre": {
                    "period": columns["period"]["own"].get(code, 0),
                    "last_12_months": columns["last_12_months"]["own"].get(code, 0),
                    "cumulative": own_n,
                    "share": own_n / cumulative["own_total"] if cumulative["own_total"] else None,
                },
                "registry": {
                    "period": None if code in columns["period"]["hidden"] else columns["period"]["all"].get(code, 0),
                    "last_12_months": (
                        None
                        if code in columns["last_12_months"]["hidden"]
                        else columns["last_12_months"]["all"].get(code, 0)
                    ),
                    "cumulative": None if reg_hidden else all_n,
                    "share": None if reg_hidden or not cumulative["all_total"] else all_n / cumulative["all_total"],
                },
            }
        )
    totals = {
        "centre": {name: col["own_total"] for name, col in columns.items()},
        "registry": {name: col["all_total"] for name, col in columns.items()},
    }
    return {
        "rows": table,
        "totals": totals,
        "last_12_months_from": _iso(year_start),
        "centres_in_registry": len({r.centre_id for r in rows}),
        "implantations_after_period": sum(1 for r in own if r.implanted_on > period_end),
    }


def _pump_use(rows, own):
    everyone = benchmarks.Grouping()
    own_group = _one(benchmarks.pump_use(own, everyone))
    all_group = _one(_registry.call(benchmarks.pump_use, rows, everyone))
    centre = _proportion(own_group, "treated")
    centre["median_days_to_first_dose"] = own_group["median_days_to_first_dose"] if own_group else None
    pooled = _proportion(all_group, "treated")
    registry = _pooled_guard(centre, pooled)
    registry["median_days_to_first_dose"] = (
        all_group["median_days_to_first_dose"] if all_group and registry["n"] is not None else None
    )
    position = funnel_position(centre["events"], centre["n"], pooled["rate"]) if centre["n"] and pooled["n"] else None
    return {"centre": centre, "registry": registry, "position": position}


def _complication_measures(complication_types):
    """The report's outcome measures (``reports.outcomes``), each read at a fixed window.

    Headline measures first (categories, pump failure, 90-day mortality, any severe
    complication, catheter-related), then one row per complication type.
    """
    vocabulary = [dict(t) for t in complication_types]
    vocabulary.sort(key=lambda t: t["code"] == "other")  # stable: keeps the given order, 'other' last

    def measure(key, kind, outcome, window, label=None):
        return {
            "key": key,
            "kind": kind,
            "label": label or f"{outcome.label} within {_window_text(window)}",
            "outcome": outcome,
            "window_days": window,
            "catheter_related": kind == "catheter",
        }

    technical = outcomes.event_outcome(ComplicationCategory.TECHNICAL, vocabulary)
    measures = [measure(f"technical_{days}", "category", technical, days) for days in outcomes.TECHNICAL_WINDOWS_DAYS]
    measures += [
        measure(
            "toxicity",
            "category",
            outcomes.event_outcome(ComplicationCategory.TOXICITY, vocabulary),
            outcomes.TOXICITY_WINDOW_DAYS,
            label=f"Toxicity within {_window_text(outcomes.TOXICITY_WINDOW_DAYS)} of the first dose",
        ),
        measure("pump_failure", "pump_failure", outcomes.PUMP_FAILURE_OUTCOME, 365),
        measure("mortality_90_days", "mortality", outcomes.MORTALITY_90_DAYS, 90, label="90-day mortality"),
        measure(
            outcomes.ANY_COMPLICATION,
            "any",
            outcomes.event_outcome(outcomes.ANY_COMPLICATION, vocabulary, severe_only=True),
            90,
            label="Any severe complication within 90 days",
        ),
        measure(
            outcomes.CATHETER_RELATED,
            "catheter",
            outcomes.event_outcome(outcomes.CATHETER_RELATED, vocabulary),
            365,
        ),
    ]
    measures += [
        measure(t["code"], "type", outcomes.event_outcome(t["code"], vocabulary), 365, label=t["name"])
        for t in vocabulary
    ]
    return measures


def _window_text(days):
    return {30: "30 days", 90: "90 days", 180: "6 months", 365: "1 year", 730: "2 years"}.get(days, f"{days} days")


def _estimate(rows, measure):
    """The measure's estimate over ``rows``: Aalen-Johansen, or 1 − Kaplan-Meier for mortality."""
    everyone = benchmarks.Grouping()
    if measure["kind"] == "mortality":
        group = _one(_registry.call(benchmarks.mortality, rows, everyone, measure["window_days"]))
    else:
        group = _one(
            _registry.call(benchmarks.cumulative_incidence, rows, measure["outcome"], measure["window_days"], everyone)
        )
        if group is not None:
            group = dict(group, rate=group["estimate"])
    return _proportion(group)


def _complications(rows, own, measures, cut_date):
    everyone = benchmarks.Grouping()
    out = []
    for measure in measures:
        centre, pooled = _estimate(own, measure), _estimate(rows, measure)
        args = (measure["outcome"], measure["window_days"], everyone, cut_date)
        closed_own = _proportion(_one(benchmarks.closed_window_proportions(own, *args)))
        closed_all = _proportion(_one(_registry.call(benchmarks.closed_window_proportions, rows, *args)))
        position = (
            funnel_position(closed_own["events"], closed_own["n"], closed_all["rate"])
            if closed_own["n"] and closed_all["n"] and closed_all["rate"] is not None
            else None
        )
        out.append(
            {
                "key": measure["key"],
                "label": measure["label"],
                "kind": measure["kind"],
                "catheter_related": measure["catheter_related"],
                "window_days": measure["window_days"],
                "denominator": measure["outcome"].denominator,
                "origin": measure["outcome"].origin,
                "centre": centre,
                "registry": _pooled_guard(centre, pooled),
                "closed_window": {"centre": closed_own, "registry": _pooled_guard(closed_own, closed_all)},
                "theta0": closed_all["rate"],
                "position": position,
            }
        )
    return out


def _band_grid(max_n):
    """Volumes at which the funnel contours are drawn: every n up to 100, then ~1% steps."""
    grid, n = [], 1
    while n <= max_n:
        grid.append(n)
        n = n + 1 if n < 100 else max(n + 1, int(n * 1.01))
    if grid and grid[-1] != max_n:
        grid.append(max_n)
    return grid


def _funnel(rows, centre_code, definition, measure, title, axis_label, cut_date):
    # Counts over implantations whose window had closed by the cut, so follow-up length does not move a centre.
    by_centre = _registry.call(
        benchmarks.closed_window_proportions,
        rows,
        definition["outcome"],
        definition["window_days"],
        benchmarks.Grouping("centre"),
        cut_date,
    )
    pooled = measure["theta0"]
    own = [g for g in by_centre if g["group"] == centre_code]
    others = [g for g in by_centre if g["group"] != centre_code]
    checked = disclosure.suppress_proportions(others, "events") if others else []
    shown = [g for g in checked if not g["suppressed"]]
    points = [{"n": g["implantations"], "events": g["events"], "rate": g["rate"], "own": False} for g in shown]
    points += [{"n": g["implantations"], "events": g["events"], "rate": g["rate"], "own": True} for g in own]
    points.sort(key=lambda p: (p["n"], p["events"], p["own"]))
    max_n = max([g["implantations"] for g in by_centre] + [10])
    x_min = max(1, min(p["n"] for p in points) // 2) if points else 1
    full_grid = tuple(_band_grid(int(max_n * 1.08) + 1))
    # The limits depend only on the pooled rate and the volumes: the same for every centre of a run.
    all_bands = (
        _registry.memo(
            ("funnel_bands", pooled, full_grid),
            lambda: [
                {k: b[k] for k in ("n", "lower_998", "lower_95", "upper_95", "upper_998")}
                for b in funnel_bands(pooled, list(full_grid))
            ],
        )
        if pooled is not None
        else []
    )
    bands = [b for b in all_bands if b["n"] >= x_min]
    return {
        "key": measure["key"],
        "title": title,
        "axis_label": axis_label,
        "theta0": pooled,
        "shown": measure["closed_window"]["registry"]["rate"] is not None and pooled is not None,
        "points": points,
        "other_centres_shown": len(shown),
        "other_centres_hidden": len(others) - len(shown),
        "position": measure["position"],
        "bands": bands,
    }


def _cusum(rows, own, complication_types, cut_date):
    any_outcome = outcomes.event_outcome(outcomes.ANY_COMPLICATION, complication_types)
    any_codes = sorted(any_outcome.codes | {code for r in rows for code in r.complications})
    complete_before = cut_date - datetime.timedelta(days=CUSUM_WINDOW_DAYS)
    own_eligible = [r for r in own if r.implanted_on <= complete_before]
    everyone = benchmarks.Grouping()
    args = (any_outcome, CUSUM_WINDOW_DAYS, everyone, cut_date)
    pooled = _proportion(_one(_registry.call(benchmarks.closed_window_proportions, rows, *args)))
    own_rate = _proportion(_one(benchmarks.closed_window_proportions(own, *args)))
    baseline = _pooled_guard(own_rate, pooled)
    p = pooled["rate"]
    surgeons = []
    by_surgeon = {}
    for row in own:
        by_surgeon.setdefault(row.surgeon_code, [])
    for row in own_eligible:
        by_surgeon[row.surgeon_code].append(row)
    for code in sorted(by_surgeon):
        cases = sorted(by_surgeon[code], key=lambda r: (r.surgeon_sequence, r.implanted_on))
        all_cases = [r for r in own if r.surgeon_code == code]
        entry = {
            "code": code,
            "n_cases": len(cases),
            "n_implantations": len(all_cases),
            "latest_sequence": max(r.surgeon_sequence for r in all_cases),
            "events": 0,
            "h": None,
            "false_alarm_rate": None,
            "points": [],
            "signals": [],
            "current": None,
            "first_sequence": None,
            "last_sequence": None,
            "reached_25": max(r.surgeon_sequence for r in all_cases) >= LEARNING_CURVE_PUMPS,  # the 25th is placed
            "no_chart_reason": None,
        }
        if not cases:
            entry["no_chart_reason"] = f"No implantation with a complete {CUSUM_WINDOW_DAYS}-day window yet."
        elif p is None or not 0.0 < p < 1.0:
            entry["no_chart_reason"] = "No chart: the registry rate to compare with is 0% or 100%."
        if cases and p is not None and 0.0 < p < 1.0:
            case_outcomes = [int(benchmarks.complication_event(r, any_codes, CUSUM_WINDOW_DAYS)) for r in cases]
            threshold = cusum_threshold_by_simulation(
                p, CUSUM_ODDS_RATIO, false_alarm_rate=CUSUM_FALSE_ALARM, n_cases=len(cases), n_sim=CUSUM_SIMULATIONS
            )
            chart = cusum_chart(case_outcomes, p, CUSUM_ODDS_RATIO, h=threshold["h"])
            signal_set = set(chart.signals)
            entry.update(
                events=sum(case_outcomes),
                h=threshold["h"],
                false_alarm_rate=threshold["false_alarm_rate"],
                first_sequence=cases[0].surgeon_sequence,
                last_sequence=cases[-1].surgeon_sequence,
                current=chart.values[-1],
                points=[
                    {"sequence": r.surgeon_sequence, "value": v, "event": bool(y), "signal": i in signal_set}
                    for i, (r, v, y) in enumerate(zip(cases, chart.values, case_outcomes, strict=True))
                ],
                signals=[
                    {
                        "sequence": cases[i].surgeon_sequence,
                        "month": f"{cases[i].implanted_on:%Y-%m}",
                        # Before the mark: fewer than 25 pumps placed before this one (reports.outcomes).
                        "before_25": not outcomes.experienced(cases[i], LEARNING_CURVE_PUMPS),
                    }
                    for i in chart.signals
                ],
            )
        surgeons.append(entry)
    return {
        "window_days": CUSUM_WINDOW_DAYS,
        "complete_before": _iso(complete_before),
        "odds_ratio": CUSUM_ODDS_RATIO,
        "false_alarm_target": CUSUM_FALSE_ALARM,
        "simulations": CUSUM_SIMULATIONS,
        "baseline": baseline,
        "centre": own_rate,
        "surgeons": surgeons,
        "surgeon_rows": [surgeons[i : i + 2] for i in range(0, len(surgeons), 2)],
    }


def _survival(rows, own, centre_code, cut_date):
    everyone = benchmarks.Grouping()
    others = [r for r in rows if r.centre_code != centre_code]
    out = {}
    specs = {
        "pump_failure": ("Freedom from pump failure", "No pump failure"),
        "overall": ("Overall survival", "Alive"),
    }
    for endpoint, (title, y_label) in specs.items():
        own_fit = _one(benchmarks.survival(own, endpoint, everyone))
        all_fit = _one(_registry.call(benchmarks.survival, rows, endpoint, everyone))
        # Counts of the other centres (registry − own) pass the small-cell rule, or the registry figures go.
        others_stub = {
            "group": "others",
            "n": (all_fit["n"] if all_fit else 0) - (own_fit["n"] if own_fit else 0),
            "events": (all_fit["events"] if all_fit else 0) - (own_fit["events"] if own_fit else 0),
            "median_days": None,
            "median_ci": None,
            "table": [],
        }
        [others_checked] = disclosure.suppress_survival([others_stub])
        registry_public = disclosure.suppress_survival([all_fit])[0] if all_fit else None
        hidden = others_checked["suppressed"] or registry_public is None or registry_public["suppressed"]
        curve = []
        if not hidden:
            # Each coarse row is labelled with the END of its 30-day block and carries the Kaplan-Meier value
            # there, so as a right-continuous step (like the centre's own curve) it is exact at every block end.
            # The curve stops before the first block that starts with fewer than THRESHOLD at risk.
            for r in registry_public["table"]:
                if r["at_risk"] is None or r["at_risk"] < disclosure.THRESHOLD:
                    break
                if r["day"] > 0:  # the origin (day 0, survival 1) is where every curve starts anyway
                    curve.append({"day": r["day"], "survival": r["survival"]})
        own_curve = []
        own_table = own_fit["table"] if own_fit else []
        for index, r in enumerate(own_table):
            still = own_table[index + 1]["at_risk"] if index + 1 < len(own_table) else 0
            own_curve.append(
                {"day": r["day"], "survival": r["survival"], "censored": r["at_risk"] - r["events"] > still}
            )
        at_risk = []
        horizon = max((r["day"] for r in (all_fit["table"] if all_fit else [])), default=0)
        for month in AT_RISK_MONTHS:
            day = round(month * MONTH_DAYS)
            if day > horizon:
                break
            own_n = _at_risk(own_fit["table"], day) if own_fit else 0
            all_n = _at_risk(all_fit["table"], day) if all_fit else 0
            registry_n = None if hidden or _small(all_n - own_n) else all_n
            at_risk.append({"months": month, "centre": own_n, "registry": registry_n})
        test = None
        # Pump failure has competing events: a log-rank test would compare cause-specific hazards,
        # not the risk drawn, so no test is shown for it.
        if own and others and not hidden and endpoint != "pump_failure":
            own_subjects = benchmarks.survival_subjects(own, endpoint)
            other_subjects = benchmarks.survival_subjects(others, endpoint)
            result = log_rank(
                [s.exit for s in own_subjects],
                [int(s.status == outcomes.EVENT) for s in own_subjects],
                [s.exit for s in other_subjects],
                [int(s.status == outcomes.EVENT) for s in other_subjects],
                entries_a=[s.entry for s in own_subjects],
                entries_b=[s.entry for s in other_subjects],
            )
            if result:
                test = {"chisq": result["chisq"], "p_value": result["p_value"]}
        x_max_days = max([r["day"] for r in own_curve] + [r["day"] for r in curve] + [365])
        out[endpoint] = {
            "title": title,
            "y_label": y_label,
            "centre": {
                "n": own_fit["n"] if own_fit else 0,
                "events": own_fit["events"] if own_fit else 0,
                "median_days": own_fit["median_days"] if own_fit else None,
                "median_ci": own_fit["median_ci"] if own_fit else [None, None],
                "curve": own_curve,
            },
            "registry": {
                "n": None if hidden else all_fit["n"],
                "events": None if hidden else all_fit["events"],
                "median_days": None if hidden else all_fit["median_days"],
                "median_ci": [None, None] if hidden else all_fit["median_ci"],
                "curve": curve,
                "suppressed": hidden,
            },
            "log_rank_vs_other_centres": test,
            "at_risk": at_risk,
            "x_max_months": min(x_max_days / MONTH_DAYS, 120) * 1.02,
        }
    return out


def _conversion(rows, own):
    everyone = benchmarks.Grouping()
    out = []
    # Only the unresectable row is compared on the funnel: over all implantations the rate mostly
    # reflects the centre's share of adjuvant (already resected) patients, i.e. case mix.
    for key, label, keep, compare in (
        (
            "unresectable",
            "Unresectable indications (liver metastases or iCCA)",
            lambda r: r.indication in UNRESECTABLE,
            True,
        ),
        ("all", "All implantations (intention to treat)", lambda r: True, False),
    ):
        centre = _proportion(_one(benchmarks.conversion_to_resection([r for r in own if keep(r)], everyone)))
        pooled = _proportion(_one(benchmarks.conversion_to_resection([r for r in rows if keep(r)], everyone)))
        position = (
            funnel_position(centre["events"], centre["n"], pooled["rate"])
            if compare and centre["n"] and pooled["n"]
            else None
        )
        out.append(
            {
                "key": key,
                "label": label,
                "centre": centre,
                "registry": _pooled_guard(centre, pooled),
                "position": position,
            }
        )
    return out


def _completeness(rows, own, cut_date):
    stale_before = _months_before(cut_date, STALE_MONTHS)

    def classify(row):
        if row.follow_up_count == 0:
            return "no_follow_up"
        if row.died_on is None and row.last_contact_on is not None and row.last_contact_on < stale_before:
            return "stale"
        return "complete"

    def counts(members):
        c = Counter(classify(r) for r in members)
        return {"no_follow_up": c["no_follow_up"], "stale": c["stale"], "n": len(members)}

    own_c, all_c = counts(own), counts(rows)
    out = {"stale_before": _iso(stale_before), "months": STALE_MONTHS, "measures": []}
    for key, label, pick in (
        ("no_follow_up", "No follow-up recorded", lambda c: c["no_follow_up"]),
        (
            "stale",
            f"Last contact more than {STALE_MONTHS} months before the cut (not known to have died)",
            lambda c: c["stale"],
        ),
        ("incomplete", "Either (follow-up incomplete)", lambda c: c["no_follow_up"] + c["stale"]),
    ):
        centre_events, all_events = pick(own_c), pick(all_c)
        centre = {"events": centre_events, "n": own_c["n"], **benchmarks.rate(centre_events, own_c["n"])}
        pooled = {"events": all_events, "n": all_c["n"], **benchmarks.rate(all_events, all_c["n"])}
        position = funnel_position(centre_events, own_c["n"], pooled["rate"]) if own_c["n"] and all_c["n"] else None
        out["measures"].append(
            {
                "key": key,
                "label": label,
                "centre": centre,
                "registry": _pooled_guard(centre, pooled),
                "position": position,
            }
        )
    return out


# --------------------------------------------------------------------------- what stands out


def _pct(value):
    return f"{value:.1%}" if value is not None else "–"


def _highlights(context):
    items = []
    headline_first = {"category": 0, "pump_failure": 1, "mortality": 2, "any": 3, "catheter": 4, "type": 5}
    for m in sorted(context["complications"], key=lambda m: headline_first[m["kind"]]):
        position = m["position"]
        if position in (None, "inside"):
            continue
        c, r = m["closed_window"]["centre"], m["closed_window"]["registry"]
        registry_text = f"registry {_pct(r['rate'])}" if r["rate"] is not None else "registry rate suppressed"
        figure = f"{c['events']}/{c['n']} with the window closed = {_pct(c['rate'])}; {registry_text}"
        if position.startswith("above"):
            level = "alarm" if position == "above_99.8" else "alert"
            text = f"{m['label']}: higher than expected, {POSITION_TEXT[position]} of the funnel ({figure})."
        else:
            level = "favourable"
            text = f"{m['label']}: lower than expected, {POSITION_TEXT[position]} of the funnel ({figure})."
        items.append({"level": level, "section": "complications", "text": text})
    for s in context["cusum"]["surgeons"]:
        if s["signals"]:
            where = ", ".join(
                f"pump no. {sig['sequence']} ({sig['month']}{', before the 25th pump' if sig['before_25'] else ''})"
                for sig in s["signals"]
            )
            plural = "s" if len(s["signals"]) > 1 else ""
            items.append(
                {
                    "level": "alert",
                    "section": "cusum",
                    "text": f"Surgeon {s['code']}: CUSUM signal{plural} at {where} — complications within 90 days more "
                    f"frequent than at the registry rate (h = {s['h']:.2f}).",
                }
            )
    pump = context["pump_use"]
    if pump["centre"]["n"]:
        registry_text = (
            f"registry {_pct(pump['registry']['rate'])}"
            if pump["registry"]["rate"] is not None
            else "registry rate suppressed"
        )
        sentence = (
            f"Pump use: {pump['centre']['events']} of {pump['centre']['n']} pumps delivered a dose "
            f"({_pct(pump['centre']['rate'])}; {registry_text})"
        )
        position = pump["position"]
        if position and position.startswith("below"):
            level = "alarm" if position == "below_99.8" else "alert"
            items.append(
                {
                    "level": level,
                    "section": "pump_use",
                    "text": f"{sentence}: lower than expected, {POSITION_TEXT[position]} of the funnel.",
                }
            )
        elif position and position.startswith("above"):
            items.append(
                {
                    "level": "favourable",
                    "section": "pump_use",
                    "text": f"{sentence}: higher than expected, {POSITION_TEXT[position]} of the funnel.",
                }
            )
        else:
            items.append({"level": "info", "section": "pump_use", "text": f"{sentence}: within the funnel limits."})
    incomplete = next(m for m in context["completeness"]["measures"] if m["key"] == "incomplete")
    if incomplete["position"] in ("above_95", "above_99.8"):
        items.append(
            {
                "level": "alert",
                "section": "completeness",
                "text": f"Follow-up incomplete for {incomplete['centre']['events']} of {incomplete['centre']['n']} "
                f"implantations ({_pct(incomplete['centre']['rate'])}), more than the registry "
                f"({POSITION_TEXT[incomplete['position']]}); please update last contacts.",
            }
        )
    order = {"alarm": 0, "alert": 1, "favourable": 2, "info": 3}
    items.sort(key=lambda i: order[i["level"]])
    noteworthy = [i for i in items if i["level"] != "info"]
    return {
        "items": items,
        "nothing_stands_out": not noteworthy,
        "nothing_text": (
            "Nothing stands out this month: every complication rate lies within the funnel limits around the "
            "registry rate and no surgeon's CUSUM chart has signalled."
        ),
    }


# --------------------------------------------------------------------------- registry-wide figures, once per run
#
# In one run every centre's report is built from the same snapshot rows, and
# half of each report (pooled rates, every centre's funnel point, the registry's
# curves) is the same for all of them. A worker keeps those results for the rows
# it was last given and reuses them for the next centre.


class _RegistryMemo:
    def __init__(self):
        self.source = None
        self.rows = None
        self.results = {}

    def rows_for(self, rows):
        """The registry's rows in a fixed order; the same list object while the input is the same."""
        if rows is not self.source:
            self.source, self.rows, self.results = rows, sorted(rows, key=lambda r: r.id), {}
        return self.rows

    @staticmethod
    def _key(value):
        if isinstance(value, benchmarks.Grouping):
            return (
                "grouping",
                value.group_by,
                value.experience_threshold,
                value.surgeon_volume_bands,
                value.centre_volume_bands,
            )
        if isinstance(value, (list, set, frozenset)):
            return tuple(sorted(value))
        return value

    def memo(self, key, compute):
        """A value that depends only on the current registry rows (and ``key``)."""
        if key not in self.results:
            self.results[key] = compute()
        return copy.deepcopy(self.results[key])

    def call(self, function, rows, *args):
        """``function(rows, *args)``, computed once when ``rows`` is the whole registry."""
        if rows is not self.rows:
            return function(rows, *args)
        key = (function.__name__, *map(self._key, args))
        if key not in self.results:
            self.results[key] = function(rows, *args)
        return copy.deepcopy(self.results[key])


_registry = _RegistryMemo()


# --------------------------------------------------------------------------- public API


def build_report_context(rows, *, centre_code, period_start, period_end, data_cut, complication_types, method_version):
    """Every number of one centre's report, from cohort rows of the whole registry (plain JSON)."""
    rows = _registry.rows_for(rows)
    own = [r for r in rows if r.centre_code == centre_code]
    cut_date = _as_date(data_cut)
    if isinstance(data_cut, datetime.datetime) and timezone.is_aware(data_cut):
        cut_text = timezone.localtime(data_cut).isoformat()
    else:
        cut_text = data_cut.isoformat()

    complication_types = [dict(t) for t in complication_types]
    for t in complication_types:
        t.setdefault("category", "technical" if t.get("catheter_related") else "other")
    measures = _complication_measures(complication_types)
    complications = _complications(rows, own, measures, cut_date)
    by_key = {m["key"]: m for m in complications}
    definitions = {m["key"]: m for m in measures}
    context = {
        "schema": SCHEMA_VERSION,
        "centre_code": centre_code,
        "period": {
            "start": _iso(period_start),
            "end": _iso(period_end),
            "label": period_label(period_start, period_end),
        },
        "data_cut": cut_text,
        "data_cut_date": _iso(cut_date),
        "method_version": method_version,
        "disclosure_threshold": disclosure.THRESHOLD,
        "implantations": _volume_and_indications(rows, own, period_start, period_end),
        "pump_use": _pump_use(rows, own),
        "complications": complications,
        "funnels": [
            _funnel(
                rows,
                centre_code,
                definitions[key],
                by_key[key],
                by_key[key]["label"],
                f"Share with {by_key[key]['label'][0].lower()}{by_key[key]['label'][1:]}",
                cut_date,
            )
            for key in ("technical_90", benchmarks.ANY_COMPLICATION)
        ],
        "cusum": _cusum(rows, own, complication_types, cut_date),
        "methods": outcomes.methods(),
        "survival": _survival(rows, own, centre_code, cut_date),
        "conversion": _conversion(rows, own),
        "completeness": _completeness(rows, own, cut_date),
    }
    context["highlights"] = _highlights(context)
    # Exactly what is stored with the run: a JSON round trip (NaN is refused).
    return json.loads(json.dumps(context, allow_nan=False))


# --------------------------------------------------------------------------- HTML and PDF


def _fmt_pct(value, digits=1):
    return f"{value * 100:.{digits}f}%" if value is not None else None


def _fmt_ci(ci, digits=1):
    if not ci or ci[0] is None:
        return None
    return f"{ci[0] * 100:.{digits}f}–{ci[1] * 100:.{digits}f}%"


def _fmt_months(days):
    return f"{days / MONTH_DAYS:.1f}" if days is not None else None


def _fmt_median(median, ci):
    if median is None:
        return "not reached"
    low, high = (ci or [None, None])[:2]
    interval = f" ({_fmt_months(low) or '–'}–{_fmt_months(high) or 'NR'})"
    return f"{_fmt_months(median)}{interval}"


def _fmt_date(iso):
    day = datetime.date.fromisoformat(iso)
    return f"{day.day} {day:%B %Y}"


def _fmt_cut(iso):
    moment = datetime.datetime.fromisoformat(iso)
    if isinstance(moment, datetime.datetime) and "T" in iso:
        zone = moment.tzname() or ""
        return f"{moment.day} {moment:%B %Y, %H:%M} {zone}".strip()
    return _fmt_date(iso)


def _fmt_days(value):
    if value is None:
        return None
    return f"{value:g}"


def _display_proportion(p):
    return {
        "events": p.get("events"),
        "n": p.get("n"),
        "rate": _fmt_pct(p.get("rate")),
        "ci": _fmt_ci(p.get("ci")),
        "suppressed": p.get("suppressed", False),
    }


def _flag(position, higher_is_worse=True):
    """Arrow for the direction (above/below a limit), colour code for its meaning (worse/better)."""
    if position is None:
        return {"code": "", "text": "–"}
    if position == "inside":
        return {"code": "", "text": "within limits"}
    above = position.startswith("above")
    strong = position.endswith("99.8")
    arrow = ("▲▲" if strong else "▲") if above else ("▼▼" if strong else "▼")
    worse = above == higher_is_worse
    code = ("alarm" if strong else "alert") if worse else "favourable"
    return {"code": code, "text": f"{arrow} {'above' if above else 'below'} {'99.8' if strong else '95'}% limit"}


def _view(context):
    """Formatted strings and charts for the template (presentation only; no statistics)."""
    code = context["centre_code"]
    imp = context["implantations"]
    pump = context["pump_use"]
    funnels = []
    for index, f in enumerate(context["funnels"]):
        svg = charts.funnel_svg(f, code, prefix=f"funnel{index}") if f["shown"] and f["bands"] else None
        funnels.append(dict(f, svg=svg, theta0_text=_fmt_pct(f["theta0"]), flag=_flag(f["position"])))
    cusum = context["cusum"]
    surgeons = []
    for index, s in enumerate(cusum["surgeons"]):
        surgeons.append(
            dict(
                s,
                svg=charts.cusum_svg(s, prefix=f"cusum{index}") if s["points"] else None,
                false_alarm_text=_fmt_pct(s["false_alarm_rate"]),
            )
        )
    survival = []
    for index, (key, s) in enumerate(context["survival"].items()):
        survival.append(
            dict(
                s,
                key=key,
                svg=charts.km_svg(s, code, prefix=f"km{index}"),
                centre_median=_fmt_median(s["centre"]["median_days"], s["centre"]["median_ci"])
                if s["centre"]["n"]
                else "–",
                registry_median=(
                    None
                    if s["registry"]["suppressed"]
                    else _fmt_median(s["registry"]["median_days"], s["registry"]["median_ci"])
                ),
                p_value=(
                    None
                    if not s["log_rank_vs_other_centres"]
                    else (
                        "< 0.001"
                        if s["log_rank_vs_other_centres"]["p_value"] < 0.001
                        else f"{s['log_rank_vs_other_centres']['p_value']:.3f}"
                    )
                ),
            )
        )
    at_risk_months = [row["months"] for row in (survival[0]["at_risk"] if survival else [])]
    complications = [
        dict(
            m,
            centre_view=_display_proportion(m["centre"]),
            registry_view=_display_proportion(m["registry"]),
            flag=_flag(m["position"]),
        )
        for m in context["complications"]
    ]
    indication_rows = [
        dict(r, centre_share=_fmt_pct(r["centre"]["share"]), registry_share=_fmt_pct(r["registry"]["share"]))
        for r in imp["rows"]
    ]
    technical_measure = next(m for m in complications if m["key"] == "technical_90")
    failure_measure = next(m for m in complications if m["kind"] == "pump_failure")
    baseline = cusum["baseline"]
    return {
        "c": context,
        "centre_code": code,
        "period_label": context["period"]["label"],
        "period_start": _fmt_date(context["period"]["start"]),
        "period_end": _fmt_date(context["period"]["end"]),
        "data_cut": _fmt_cut(context["data_cut"]),
        "data_cut_date": _fmt_date(context["data_cut_date"]),
        "method_version": context["method_version"],
        "threshold": context["disclosure_threshold"],
        "highlights": context["highlights"],
        "key_figures": [
            {
                "label": f"Implantations in {context['period']['label']}",
                "value": imp["totals"]["centre"]["period"],
                "note": f"{imp['totals']['centre']['cumulative']} since the start",
            },
            {
                "label": "Pump-use rate",
                "value": _fmt_pct(pump["centre"]["rate"]) or "–",
                "note": f"registry {_fmt_pct(pump['registry']['rate']) or 'suppressed'}",
            },
            {
                "label": "Median days to first dose",
                "value": _fmt_days(pump["centre"]["median_days_to_first_dose"]) or "–",
                "note": f"registry {_fmt_days(pump['registry']['median_days_to_first_dose']) or '–'}",
            },
            {
                "label": "Technical complication within 90 days",
                "value": technical_measure["centre_view"]["rate"] or "–",
                "note": f"registry {technical_measure['registry_view']['rate'] or 'suppressed'}",
            },
            {
                "label": "Pump failure within 1 year",
                "value": failure_measure["centre_view"]["rate"] or "–",
                "note": f"registry {failure_measure['registry_view']['rate'] or 'suppressed'}",
            },
        ],
        "indications": indication_rows,
        "indication_short": {r["code"]: r["short_label"] for r in imp["rows"]},
        "indication_totals": imp["totals"],
        "last_12_from": _fmt_date(imp["last_12_months_from"]),
        "centres_in_registry": imp["centres_in_registry"],
        "other_centres": max(imp["centres_in_registry"] - (1 if imp["totals"]["centre"]["cumulative"] else 0), 0),
        "indication_svg": charts.indication_svg(imp, code) if imp["totals"]["centre"]["cumulative"] else None,
        "pump": {
            "centre": _display_proportion(pump["centre"]),
            "registry": _display_proportion(pump["registry"]),
            "centre_median": _fmt_days(pump["centre"]["median_days_to_first_dose"]),
            "registry_median": _fmt_days(pump["registry"]["median_days_to_first_dose"]),
            "flag": _flag(pump["position"], higher_is_worse=False),
        },
        "complications": complications,
        "funnels": funnels,
        "cusum": dict(
            cusum,
            baseline_rate=_fmt_pct(baseline["rate"]),
            centre_rate=_fmt_pct(cusum["centre"]["rate"]),
            complete_before=_fmt_date(cusum["complete_before"]),
            false_alarm_target_text=_fmt_pct(cusum["false_alarm_target"], 0),
        ),
        "surgeons": surgeons,
        "surgeon_rows": [surgeons[i : i + 2] for i in range(0, len(surgeons), 2)],
        "surgeons_with_signal": [s for s in surgeons if s["signals"]],
        "survival": survival,
        "at_risk_months": at_risk_months,
        "conversion": [
            dict(
                m,
                centre_view=_display_proportion(m["centre"]),
                registry_view=_display_proportion(m["registry"]),
                flag=_flag(m["position"], higher_is_worse=False),
            )
            for m in context["conversion"]
        ],
        "completeness": dict(
            context["completeness"],
            stale_before=_fmt_date(context["completeness"]["stale_before"]),
            rows=[
                dict(
                    m,
                    centre_view=_display_proportion(m["centre"]),
                    registry_view=_display_proportion(m["registry"]),
                    flag=_flag(m["position"]),
                )
                for m in context["completeness"]["measures"]
            ],
        ),
    }


def render_html(context):
    """The report as one standalone HTML document (inline CSS and SVG)."""
    return render_to_string(TEMPLATE, _view(context))


def render_pdf(html):
    """Print the HTML with WeasyPrint; returns the PDF bytes."""
    from weasyprint import HTML

    return HTML(string=html).write_pdf()


def render_centre_report(rows, **kwargs):
    """(context, html, pdf) for one centre; kwargs as for ``build_report_context``."""
    context = build_report_context(rows, **kwargs)
    html = render_html(context)
    return context, html, render_pdf(html)
