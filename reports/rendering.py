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

import base64
import calendar
import copy
import datetime
import json
from collections import Counter

from django.template.loader import render_to_string
from django.utils import timezone

from registry.vocabulary import ComplicationCategory, Indication

from . import benchmarks, casemix, charts, comparisons, concordance, disclosure, outcomes
from .statistics import (
    binomial_flag,
    completeness,
    cusum_chart,
    funnel_bands,
    log_rank,
    suppress_small_counts,
    vlad,
)

SCHEMA_VERSION = 1
TEMPLATE = "reports/centre_report.html"

CUSUM_WINDOW_DAYS = 90
CUSUM_ODDS_RATIO = 2.0
CUSUM_FALSE_ALARM = 0.05
CUSUM_OUTCOME = "technical_90d"
# Fixed by the method version: statistics.fixed_control_limit(0.05, horizon=100, odds_ratio=2,
# baseline_risk=0.15) with its default seed and 100,000 simulations (tests/test_report_learning_curves.py).
CUSUM_HORIZON = 100
CUSUM_REFERENCE_RISK = 0.15
CUSUM_CONTROL_LIMIT = 3.71
CUSUM_MIN_REFERENCE_CASES = 100
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


ALARM, WARNING = "alarm", "warning"
FLAG_POSITION = {
    "alarm_high": "above_99.8",
    "warning_high": "above_95",
    "warning_low": "below_95",
    "alarm_low": "below_99.8",
    None: "inside",
}


def _others_rate(own, pooled):
    others_n = (pooled["n"] or 0) - own["n"]
    return ((pooled["events"] or 0) - own["events"]) / others_n if others_n > 0 else None


def _exact_position(own, pooled):
    """Where the centre stands, by the exact one-sided binomial p-value of its count (never the plotted point).

    The funnel is drawn around the pooled registry rate; the centre's own test is against the registry
    without the centre (STATISTICS.md, "Flagging"), so a large centre is not compared with itself.
    """
    others_n = (pooled["n"] or 0) - own["n"]
    others_events = (pooled["events"] or 0) - own["events"]
    if not own["n"] or others_n <= 0:
        return None
    theta0 = others_events / others_n
    if not 0.0 < theta0 < 1.0:
        return None
    return FLAG_POSITION[binomial_flag(own["events"], own["n"], theta0)["flag"]]


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
    position = _exact_position(centre, pooled)
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
        position = _exact_position(closed_own, closed_all)
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
                "closed_window": {
                    "centre": closed_own,
                    "registry": _pooled_guard(closed_own, closed_all),
                    "theta_others": _others_rate(closed_own, closed_all),
                },
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


def _surgeon_is(surgeon_id):
    def test(row):
        return row.surgeon_id == surgeon_id

    return test


def _cusum(rows, own, complication_types, cut_date, period_start):
    """Each surgeon's risk-adjusted Bernoulli CUSUM and VLAD on 90-day technical complications.

    * Outcome and cases: the case-mix model's ``technical_90d`` on complete-window cases; a death within
      90 days without a complication is left out (neither a success nor a failure: reports.casemix).
    * Risk: the model fitted on experienced surgeons' cases (25 or more pumps placed before), excluding the
      surgeon charted (``casemix.fit_for_surgeons``), so a surgeon is not compared with themselves.
    * h is fixed by the method version (``CUSUM_CONTROL_LIMIT``), found by seeded simulation for a 5%
      false-signal probability over 100 cases at a reference risk of 15%; the chart resets after a signal.
    * A signal is *new* when its case's window closed within the reporting period or later, *past* otherwise.
    """
    surgeon_ids = sorted({r.surgeon_id for r in own})
    models = _registry.memo(
        ("cusum_models", tuple(surgeon_ids), _iso(cut_date)),
        lambda: casemix.fit_for_surgeons(rows, complication_types, cut_date, surgeon_ids, outcomes=[CUSUM_OUTCOME]),
    )
    surgeons = []
    centre_events = centre_cases = 0
    for surgeon_id in surgeon_ids:
        all_cases = sorted((r for r in own if r.surgeon_id == surgeon_id), key=lambda r: (r.surgeon_sequence, r.id))
        model = models.get(surgeon_id, {}).get(CUSUM_OUTCOME)
        risk_source = "experienced surgeons"
        if not model or (model.get("n") or 0) < CUSUM_MIN_REFERENCE_CASES or not model.get("events"):
            # Too few experienced cases to fit on: every other surgeon's cases instead (said on the chart).
            model = _registry.memo(
                ("cusum_model_all_others", surgeon_id, _iso(cut_date)),
                lambda surgeon_id=surgeon_id: casemix.fit_case_mix(
                    rows,
                    complication_types,
                    cut_date,
                    exclude=_surgeon_is(surgeon_id),
                    outcomes=[CUSUM_OUTCOME],
                ).get(CUSUM_OUTCOME),
            )
            risk_source = "all other surgeons"
        outcomes_by_id = casemix.case_outcomes(model, all_cases) if model else {}
        cases = [r for r in all_cases if r.id in outcomes_by_id]
        entry = {
            "code": all_cases[0].surgeon_code,
            "n_cases": len(cases),
            "n_implantations": len(all_cases),
            "latest_sequence": max(r.surgeon_sequence for r in all_cases),
            "events": 0,
            "expected": None,
            "h": CUSUM_CONTROL_LIMIT,
            "points": [],
            "signals": [],
            "current": None,
            "first_sequence": None,
            "last_sequence": None,
            "reached_25": max(r.surgeon_sequence for r in all_cases) >= LEARNING_CURVE_PUMPS,  # the 25th is placed
            "no_chart_reason": None,
            "risk_source": risk_source,
        }
        risks_by_id = casemix.predict(model, cases) if model and cases else {}
        if not cases:
            entry["no_chart_reason"] = f"No implantation with a complete {CUSUM_WINDOW_DAYS}-day window yet."
        elif any(risks_by_id.get(r.id) is None or not 0.0 < risks_by_id[r.id] < 1.0 for r in cases):
            entry["no_chart_reason"] = "No chart: the case-mix model gives no usable risk (too few experienced cases)."
        if cases and not entry["no_chart_reason"]:
            y = [outcomes_by_id[r.id] for r in cases]
            risks = [risks_by_id[r.id] for r in cases]
            chart = cusum_chart(y, risks, CUSUM_ODDS_RATIO, h=CUSUM_CONTROL_LIMIT)
            signal_set = set(chart.signals)
            vlad_values = vlad(y, risks)
            centre_events += sum(y)
            centre_cases += len(y)
            entry.update(
                events=sum(y),
                expected=sum(risks),
                first_sequence=cases[0].surgeon_sequence,
                last_sequence=cases[-1].surgeon_sequence,
                current=chart.values[-1],
                points=[
                    {
                        "sequence": r.surgeon_sequence,
                        "value": v,
                        "vlad": d,
                        "event": bool(outcome),
                        "signal": i in signal_set,
                    }
                    for i, (r, v, d, outcome) in enumerate(zip(cases, chart.values, vlad_values, y, strict=True))
                ],
                signals=[
                    {
                        "sequence": cases[i].surgeon_sequence,
                        "month": f"{cases[i].implanted_on:%Y-%m}",
                        # Before the mark: fewer than 25 pumps placed before this one (reports.outcomes).
                        "before_25": not outcomes.experienced(cases[i], LEARNING_CURVE_PUMPS),
                        "new": cases[i].implanted_on + datetime.timedelta(days=CUSUM_WINDOW_DAYS) >= period_start,
                    }
                    for i in chart.signals
                ],
            )
        surgeons.append(entry)
    surgeons.sort(key=lambda s: s["code"])
    return {
        "window_days": CUSUM_WINDOW_DAYS,
        "odds_ratio": CUSUM_ODDS_RATIO,
        "h": CUSUM_CONTROL_LIMIT,
        "horizon": CUSUM_HORIZON,
        "false_alarm_target": CUSUM_FALSE_ALARM,
        "reference_risk": CUSUM_REFERENCE_RISK,
        "centre": {"events": centre_events, "n": centre_cases},
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


TREND_QUARTERS = 8
SURVIVAL_INDICATIONS = (
    ("adjuvant", "Adjuvant after liver resection", lambda r: r.indication == Indication.ADJUVANT),
    (
        "unresectable_colorectal",
        "Unresectable colorectal liver metastases",
        lambda r: (
            r.primary_tumour == "colorectal"
            and r.indication in (Indication.UNRESECTABLE_FIRST_LINE, Indication.UNRESECTABLE_AFTER_PROGRESSION)
        ),
    ),
    (
        "icca",
        "Unresectable intrahepatic cholangiocarcinoma",
        lambda r: r.indication == Indication.UNRESECTABLE_ICCA,
    ),
)


def _quarter_of(day):
    return (day.year, (day.month - 1) // 3 + 1)


def _quarters_up_to(day, count):
    year, quarter = _quarter_of(day)
    out = []
    for _ in range(count):
        out.append((year, quarter))
        year, quarter = (year, quarter - 1) if quarter > 1 else (year - 1, 4)
    return list(reversed(out))


def _trends(rows, own, period_end, technical):
    """Per quarter of implantation: volume, pump use and the 90-day technical complication risk.

    The last ``TREND_QUARTERS`` quarters up to the reporting period, centre against registry;
    registry figures pass the same rule as everywhere (the other centres' share is checked).
    """
    everyone = benchmarks.Grouping()
    quarters = []
    for year, quarter in _quarters_up_to(period_end, TREND_QUARTERS):

        def keep(r, year=year, quarter=quarter):
            return _quarter_of(r.implanted_on) == (year, quarter)

        own_q = [r for r in own if keep(r)]
        all_q = _registry.part(rows, ("quarter", year, quarter), keep)
        own_use = _proportion(_one(benchmarks.pump_use(own_q, everyone)), "treated")
        all_use = _proportion(_one(_registry.call(benchmarks.pump_use, all_q, everyone)), "treated")
        own_tech = _estimate(own_q, technical)
        all_tech = _estimate(all_q, technical)
        others_n = len(all_q) - len(own_q)
        quarters.append(
            {
                "label": f"{year} Q{quarter}",
                "centre": {"implantations": len(own_q), "pump_use": own_use, "technical_90": own_tech},
                "registry": {
                    "implantations": None if _small(others_n) else len(all_q),
                    "pump_use": _pooled_guard(own_use, all_use),
                    "technical_90": _pooled_guard(own_tech, all_tech),
                },
            }
        )
    return {"quarters": quarters}


def _recent(rows, own, period_start, period_end, definitions):
    """This month, the last 12 months and to date: the centre against the registry (issue 9's summary table)."""
    year_start = _months_before(period_end, 12) + datetime.timedelta(days=1)
    windows = {
        "period": lambda r: period_start <= r.implanted_on <= period_end,
        "last_12_months": lambda r: year_start <= r.implanted_on <= period_end,
        "to_date": lambda r: r.implanted_on <= period_end,
    }
    everyone = benchmarks.Grouping()
    out = {}
    for name, keep in windows.items():
        own_w = [r for r in own if keep(r)]
        all_w = _registry.part(rows, ("recent", name, period_start, period_end), keep)

        def figures(subset):
            mortality = _one(_registry.call(benchmarks.mortality, subset, everyone))
            return {
                "implantations": len(subset),
                "pump_use": _proportion(_one(_registry.call(benchmarks.pump_use, subset, everyone)), "treated"),
                "technical_90": _estimate(subset, definitions["technical_90"]),
                "severe_90": _estimate(subset, definitions[benchmarks.ANY_COMPLICATION]),
                "mortality_90": _proportion(mortality),
            }

        centre, registry = figures(own_w), figures(all_w)
        guarded = {key: _pooled_guard(centre[key], registry[key]) for key in registry if key != "implantations"}
        guarded["implantations"] = None if _small(len(all_w) - len(own_w)) else len(all_w)
        out[name] = {"centre": centre, "registry": guarded}
    return out


def _published(rows, own, definitions, complication_types):
    """The brief's published figures beside the registry's and the centre's own."""
    everyone = benchmarks.Grouping()
    biliary = {
        "kind": "type",
        "outcome": outcomes.event_outcome("biliary_sclerosis", complication_types),
        "window_days": 365,
    }

    def biliary_in(subset, keep):
        return _estimate(_registry.part(subset, ("published", keep.__name__), keep), biliary)

    def adjuvant(r):
        return r.indication == Indication.ADJUVANT

    def unresectable(r):
        return r.indication in UNRESECTABLE

    def first_dose(subset):
        group = _one(_registry.call(benchmarks.pump_use, subset, everyone))
        return group["median_days_to_first_dose"] if group else None

    registry_technical = _estimate(rows, definitions["technical_365"])
    centre_technical = _estimate(own, definitions["technical_365"])
    registry_bs_adj, centre_bs_adj = biliary_in(rows, adjuvant), biliary_in(own, adjuvant)
    registry_bs_unr, centre_bs_unr = biliary_in(rows, unresectable), biliary_in(own, unresectable)
    return [
        {
            "label": "Biliary sclerosis within 1 year of the first dose, adjuvant",
            "published": "5.5% (consensus, 002_…)",
            "registry": _pooled_guard(centre_bs_adj, registry_bs_adj)["rate"],
            "centre": centre_bs_adj["rate"],
        },
        {
            "label": "Biliary sclerosis within 1 year of the first dose, unresectable",
            "published": "2.0% (consensus, 002_…)",
            "registry": _pooled_guard(centre_bs_unr, registry_bs_unr)["rate"],
            "centre": centre_bs_unr["rate"],
        },
        {
            "label": "Median days from implantation to the first dose",
            "published": "16–19 days (000_…)",
            "registry": first_dose(rows),
            "centre": first_dose(own),
            "days": True,
        },
        {
            "label": "Pump (technical) complications within 1 year",
            "published": "about 20% in experienced centres (002_…)",
            "registry": _pooled_guard(centre_technical, registry_technical)["rate"],
            "centre": centre_technical["rate"],
        },
    ]


def _survival_by_indication(rows, own):
    """Overall and hepatic progression-free survival per indication group, centre against registry."""
    everyone = benchmarks.Grouping()
    out = []
    for key, label, keep in SURVIVAL_INDICATIONS:
        own_rows = [r for r in own if keep(r)]
        all_rows = _registry.part(rows, ("indication", key), keep)
        endpoints = []
        for endpoint, endpoint_label in (("overall", "Overall survival"), ("hepatic_progression", "Hepatic PFS")):
            centre = _one(benchmarks.survival(own_rows, endpoint, everyone))
            pooled = _one(_registry.call(benchmarks.survival, all_rows, endpoint, everyone)) if all_rows else None
            others = {
                "group": "others",
                "n": (pooled["n"] if pooled else 0) - (centre["n"] if centre else 0),
                "events": (pooled["events"] if pooled else 0) - (centre["events"] if centre else 0),
                "median_days": None,
                "median_ci": None,
                "table": [],
            }
            [checked] = disclosure.suppress_survival([others])
            hidden = checked["suppressed"] or pooled is None
            endpoints.append(
                {
                    "key": endpoint,
                    "label": endpoint_label,
                    "centre": {
                        "n": centre["n"] if centre else 0,
                        "events": centre["events"] if centre else 0,
                        "median_days": centre["median_days"] if centre else None,
                        "median_ci": centre["median_ci"] if centre else [None, None],
                        "one_year": _survival_at_day(centre, 365),
                    },
                    "registry": {
                        "suppressed": hidden,
                        "n": None if hidden else pooled["n"],
                        "median_days": None if hidden else pooled["median_days"],
                        "median_ci": [None, None] if hidden else pooled["median_ci"],
                        "one_year": None if hidden else _survival_at_day(pooled, 365),
                    },
                }
            )
        out.append({"key": key, "label": label, "endpoints": endpoints})
    return out


def _survival_at_day(fit, day):
    if not fit or not fit["table"] or fit["table"][-1]["day"] < day:
        return None
    before = [r["survival"] for r in fit["table"] if r["day"] <= day]
    return before[-1] if before else 1.0


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
        position = _exact_position(centre, pooled) if compare else None
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
    out = {
        "stale_before": _iso(stale_before),
        "months": STALE_MONTHS,
        "measures": [],
        "clark_c": {"centre": _clark_c(own, cut_date), "registry": _clark_c(rows, cut_date)},
    }
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
        position = _exact_position(centre, pooled)
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


def _clark_c(rows, cut_date):
    """Clark's C (Lancet 2002;359:1309) over implantations, the registry's unit: follow-up from the
    implantation to the last contact or death, against the follow-up possible by the data cut."""
    follow_ups = [
        (r.implanted_on, max(r.died_on or r.last_contact_on or r.implanted_on, r.implanted_on), r.died_on is not None)
        for r in rows
    ]
    return completeness.clark_c(follow_ups, cut_date).c


# --------------------------------------------------------------------------- what stands out


def _pct(value):
    return f"{value:.1%}" if value is not None else "–"


def _highlights(context, previous=None):
    """What stands out, alarms first: each item has a stable key, a level and, against the previous
    report of the same centre, whether it is new or continuing.

    Levels: *alarm* beyond the 99.8% limit (one-sided p < 0.001), *warning* beyond the 95% limit
    (p < 0.025), *favourable* on the better side, *info* otherwise.
    """
    items = []

    def add(key, level, section, text):
        items.append({"key": key, "level": level, "section": section, "text": text})

    for c in context["case_mix"]["comparisons"]:
        f = c["centre"]
        if f["ratio"] is None:
            continue
        figure = f"observed {f['observed']}, expected {f['expected']:.1f}, O/E {f['ratio']:.2f} (95% CI {f['ci'][0]:.2f}–{f['ci'][1]:.2f})"
        widened = "; limits widened for between-centre variation" if c["widened"] else ""
        if c["level"]:
            level = ALARM if c["level"] == "alarm" else WARNING
            add(
                f"case_mix:{c['key']}",
                level,
                "case_mix",
                f"{c['label']}: higher than expected after case-mix adjustment ({figure}, one-sided p = {f['p_high']:.3g}{widened}).",
            )
        elif f["flag"] in ("warning_low", "alarm_low"):
            add(
                f"case_mix:{c['key']}",
                "favourable",
                "case_mix",
                f"{c['label']}: lower than expected after case-mix adjustment ({figure}).",
            )
        for surgeon in c["surgeons"]:
            if surgeon["level"]:
                add(
                    f"case_mix:{c['key']}:{surgeon['group']}",
                    ALARM if surgeon["level"] == "alarm" else WARNING,
                    "case_mix",
                    f"Surgeon {surgeon['group']}, {c['label'].lower()}: observed {surgeon['observed']}, expected "
                    f"{surgeon['expected']:.1f} (one-sided p = {surgeon['p_high']:.3g}).",
                )
    headline_first = {"category": 0, "pump_failure": 1, "mortality": 2, "any": 3, "catheter": 4, "type": 5}
    for m in sorted(context["complications"], key=lambda m: headline_first[m["kind"]]):
        position = m["position"]
        if position in (None, "inside"):
            continue
        c, r = m["closed_window"]["centre"], m["closed_window"]["registry"]
        registry_text = f"registry {_pct(r['rate'])}" if r["rate"] is not None else "registry rate suppressed"
        figure = f"{c['events']}/{c['n']} with the window closed = {_pct(c['rate'])}; {registry_text}"
        if position.startswith("above"):
            level = ALARM if position == "above_99.8" else WARNING
            add(
                f"crude:{m['key']}",
                level,
                "complications",
                f"{m['label']}: higher than the other centres, {POSITION_TEXT[position]} ({figure}; not adjusted for case mix).",
            )
        else:
            add(
                f"crude:{m['key']}",
                "favourable",
                "complications",
                f"{m['label']}: lower than the other centres, {POSITION_TEXT[position]} ({figure}).",
            )
    for s in context["cusum"]["surgeons"]:
        for signal in s["signals"]:
            where = f"pump no. {signal['sequence']} ({signal['month']}{', before the 25th pump' if signal['before_25'] else ''})"
            text = (
                f"Surgeon {s['code']}: risk-adjusted CUSUM signal at {where}, technical complications within 90 days "
                f"more frequent than the case-mix model expects (h = {s['h']:.2f})."
            )
            if signal["new"]:
                add(f"cusum:{s['code']}:{signal['sequence']}", WARNING, "cusum", text)
            else:
                add(
                    f"cusum:{s['code']}:{signal['sequence']}",
                    "info",
                    "cusum",
                    text + " A past signal, shown for the record.",
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
            level = ALARM if position == "below_99.8" else WARNING
            add(
                "crude:pump_use",
                level,
                "pump_use",
                f"{sentence}: lower than the other centres, {POSITION_TEXT[position]}.",
            )
        elif position and position.startswith("above"):
            add(
                "crude:pump_use",
                "favourable",
                "pump_use",
                f"{sentence}: higher than the other centres, {POSITION_TEXT[position]}.",
            )
        else:
            add("crude:pump_use", "info", "pump_use", f"{sentence}: within the funnel limits.")
    incomplete = next(m for m in context["completeness"]["measures"] if m["key"] == "incomplete")
    if incomplete["position"] in ("above_95", "above_99.8"):
        add(
            "crude:incomplete",
            WARNING,
            "completeness",
            f"Follow-up incomplete for {incomplete['centre']['events']} of {incomplete['centre']['n']} "
            f"implantations ({_pct(incomplete['centre']['rate'])}), more than the registry "
            f"({POSITION_TEXT[incomplete['position']]}); please update last contacts.",
        )
    method_changed = bool(previous) and previous.get("method_version") != context["method_version"]
    earlier = {i["key"]: i["level"] for i in (previous or {}).get("highlights", {}).get("items", [])}
    for item in items:
        if item["level"] in (ALARM, WARNING):
            if not previous or method_changed:
                item["status"] = None
            else:
                item["status"] = "continuing" if earlier.get(item["key"]) in (ALARM, WARNING, "alert") else "new"
    order = {ALARM: 0, WARNING: 1, "favourable": 2, "info": 3}
    items.sort(key=lambda i: (order[i["level"]], i["key"]))
    noteworthy = [i for i in items if i["level"] in (ALARM, WARNING, "favourable")]
    return {
        "items": items,
        "nothing_stands_out": not noteworthy,
        "nothing_text": (
            "Nothing stands out this month: no case-mix adjusted or crude comparison is beyond its 95% limit and no "
            "surgeon's CUSUM chart has a new signal."
        ),
        "compared_with": None if not previous else previous.get("period", {}).get("label"),
        "method_changed": method_changed,
        "previous_method_version": (previous or {}).get("method_version"),
        "expected_false_warnings": _expected_false_warnings(context),
    }


def _alarm_implantations(context, own, case_mix, definitions, cut_date):
    """The centre's own implantations behind each alarm or warning, for "Cases to review" (resolved to
    pseudonyms from the live record by ``reports.services``; ids only here, never shown)."""
    out = []
    for c in context["case_mix"]["comparisons"]:
        model = (case_mix or {}).get(c["key"])
        if not model:
            continue
        flagged_surgeons = {s["group"] for s in c["surgeons"] if s["level"]}
        if not c["level"] and not flagged_surgeons:
            continue
        rows = own if c["level"] else [r for r in own if r.surgeon_code in flagged_surgeons]
        outcomes_by_id = casemix.case_outcomes(model, rows)
        out.append(
            {
                "measure": c["key"],
                "label": c["label"],
                "implantations": sorted(i for i, y in outcomes_by_id.items() if y == 1),
            }
        )
    for m in context["complications"]:
        if m["position"] not in ("above_95", "above_99.8"):
            continue
        definition = definitions[m["key"]]
        window = definition["window_days"]
        subjects = definition["outcome"].subjects(own)
        out.append(
            {
                "measure": m["key"],
                "label": m["label"],
                "implantations": sorted(s.row.id for s in subjects if s.status == outcomes.EVENT and s.exit <= window),
            }
        )
    return out


def _expected_false_warnings(context):
    """How many warnings (or alarms) to expect by chance alone if the centre were exactly on target everywhere:
    the sum over the report's tests of each one's exact probability of flagging on the worse side."""
    total = sum(c["false_warning_probability"] for c in context["case_mix"]["comparisons"])
    tests = len(context["case_mix"]["comparisons"])
    crude = [(m["closed_window"]["centre"], m["closed_window"].get("theta_others")) for m in context["complications"]]
    for own, theta in crude:
        if theta is not None:
            total += comparisons.false_warning_probability_binomial(own["n"], theta)
            tests += 1
    return {"tests": tests, "expected": total}


# --------------------------------------------------------------------------- registry-wide figures, once per run
#
# In one run every centre's report is built from the same snapshot rows, and
# half of each report (pooled rates, every centre's funnel point, the registry's
# curves) is the same for all of them. A worker keeps those results for the rows
# it was last given and reuses them for the next centre.


# The same holds for named parts of the registry (a quarter, a window of months, an indication): the
# registry's side of the trends, the summary table and survival by indication was recomputed for every
# centre, 10 to 20 s of each report at 100,000 implantations (issue 16, bench/README.md).


class _RegistryMemo:
    def __init__(self):
        self.source = None
        self.rows = None
        self.results = {}
        self.parts = {}  # id(part's list) -> (key, the list)

    def rows_for(self, rows):
        """The registry's rows in a fixed order; the same list object while the input is the same."""
        if rows is not self.source:
            self.source, self.rows, self.results, self.parts = rows, sorted(rows, key=lambda r: r.id), {}, {}
        return self.rows

    def part(self, rows, key, keep):
        """``[r for r in rows if keep(r)]``; when ``rows`` is the registry, the same list object for the same
        ``key`` (which must say all that ``keep`` tests: it names the part), so ``call`` on it is computed once."""
        if rows is not self.rows:
            return [r for r in rows if keep(r)]
        for known_key, known in self.parts.values():
            if known_key == key:
                return known
        subset = [r for r in rows if keep(r)]
        self.parts[id(subset)] = (key, subset)
        return subset

    def _rows_key(self, rows):
        if rows is self.rows:
            return ()
        part = self.parts.get(id(rows))
        return ("part", part[0]) if part is not None and part[1] is rows else None

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
        """``function(rows, *args)``, computed once when ``rows`` is the whole registry or one of its parts."""
        rows_key = self._rows_key(rows)
        if rows_key is None:
            return function(rows, *args)
        key = (*rows_key, f"{function.__module__}.{function.__qualname__}", *map(self._key, args))
        if key not in self.results:
            self.results[key] = function(rows, *args)
        return copy.deepcopy(self.results[key])


_registry = _RegistryMemo()


# --------------------------------------------------------------------------- public API


def build_report_context(
    rows,
    *,
    centre_code,
    period_start,
    period_end,
    data_cut,
    complication_types,
    method_version,
    case_mix=None,
    previous=None,
    extra=None,
):
    """Every number of one centre's report, from cohort rows of the whole registry (plain JSON).

    ``case_mix``: the run's fitted model (``casemix.fit_case_mix`` on the snapshot, stored with the run);
    fitted here when not given. ``previous``: the same centre's previous report context, to mark each
    signal new or continuing. ``extra``: context read from the live database at render time (the cases to
    review, late entries), merged in as it is.
    """
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
    if case_mix is None:
        case_mix = _registry.memo(
            ("case_mix", _iso(cut_date)), lambda: casemix.fit_case_mix(rows, complication_types, cut_date)
        )
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
        "cusum": _cusum(rows, own, complication_types, cut_date, period_start),
        "methods": outcomes.methods(),
        "case_mix": {
            "models": case_mix,
            "method": casemix.METHOD,
            "comparisons": comparisons.centre_comparison(rows, case_mix, centre_code, memo=_registry.memo),
        },
        "survival": _survival(rows, own, centre_code, cut_date),
        "conversion": _conversion(rows, own),
        "trends": _trends(rows, own, period_end, definitions["technical_90"]),
        "recent": _recent(rows, own, period_start, period_end, definitions),
        "published": _published(rows, own, definitions, complication_types),
        "survival_by_indication": _survival_by_indication(rows, own),
        "completeness": _completeness(rows, own, cut_date),
        "concordance": concordance.centre_section(rows, own, call=_registry.call),
    }
    context["highlights"] = _highlights(context, previous)
    context["alarm_implantations"] = _alarm_implantations(context, own, case_mix, definitions, cut_date)
    context.update(extra or {})
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


def _ratio_texts(figures):
    return {
        "expected_text": f"{figures['expected']:.1f}" if figures.get("expected") is not None else "–",
        "ratio_text": f"{figures['ratio']:.2f}" if figures.get("ratio") is not None else None,
        "ci_text": f"{figures['ci'][0]:.2f}–{figures['ci'][1]:.2f}" if figures.get("ci") else None,
        "p_text": f"{figures['p_high']:.3g}" if figures.get("p_high") is not None else None,
    }


CASE_MIX_FLAG_TEXT = {
    "alarm_high": ("worse-998", "▲ Alarm (99.8%)"),
    "warning_high": ("worse-95", "▲ Warning (95%)"),
    "warning_low": ("better", "▼ below 95%"),
    "alarm_low": ("better", "▼ below 99.8%"),
    None: ("none", "as expected"),
}


def _case_mix_flag(flag):
    code, text = CASE_MIX_FLAG_TEXT[flag]
    return {"code": code, "text": text}


def _case_mix_flag_fields(flag):
    f = _case_mix_flag(flag)
    return {"flag_code": f["code"], "flag_text": f["text"]}


def _recent_rows(recent):
    rows = []
    for key, label, kind in (
        ("implantations", "Implantations", "count"),
        ("pump_use", "Pump use", "rate"),
        ("technical_90", "Technical complication within 90 days", "rate"),
        ("severe_90", "Severe complication within 90 days", "rate"),
        ("mortality_90", "90-day mortality", "rate"),
    ):

        def fmt(value, kind=kind):
            if kind == "count":
                return value
            return _fmt_pct(value["rate"]) if value else None

        rows.append(
            {
                "label": label,
                "centre": [fmt(recent[w]["centre"][key]) for w in ("period", "last_12_months", "to_date")],
                "registry": [fmt(recent[w]["registry"][key]) for w in ("period", "last_12_months", "to_date")],
            }
        )
    return rows


def _published_rows(published):
    return [
        {
            "label": row["label"],
            "published": row["published"],
            "registry": _fmt_days(row["registry"]) if row.get("days") else _fmt_pct(row["registry"]),
            "centre": _fmt_days(row["centre"]) if row.get("days") else _fmt_pct(row["centre"]),
        }
        for row in published
    ]


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
                vlad_svg=charts.vlad_svg(s, prefix=f"vlad{index}") if s["points"] else None,
                expected_text=f"{s['expected']:.1f}" if s["expected"] is not None else None,
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
    case_mix = []
    for index, m in enumerate(context["case_mix"]["comparisons"]):
        flag = _case_mix_flag(m["centre"]["flag"])
        case_mix.append(
            dict(
                m,
                **_ratio_texts(m["centre"]),
                flag_code=flag["code"],
                flag_text=flag["text"],
                tau2_text=f"{m['tau2']:.3f}",
                svg=charts.ratio_funnel_svg(m, code, prefix=f"oe{index}")
                if m["bands"] and m["centre"]["expected"]
                else None,
                surgeons=[dict(s, **_ratio_texts(s), **_case_mix_flag_fields(s["flag"])) for s in m["surgeons"]],
            )
        )
    case_mix_models = []
    for outcome in casemix.OUTCOMES:
        model = (context["case_mix"]["models"] or {}).get(outcome.code)
        if not model:
            continue
        case_mix_models.append(
            {
                "label": outcome.label,
                "n": model.get("n"),
                "events": model.get("events"),
                "c_text": f"{model['c_statistic']:.3f}" if model.get("c_statistic") is not None else None,
                "intercept_text": f"{model['intercept']:.3f}" if model.get("intercept") is not None else "–",
                "terms": [
                    {"name": k, "value": f"{v:+.2f}"} for k, v in sorted((model.get("coefficients") or {}).items())
                ],
                "calibration": [
                    {"observed": t["observed"], "expected": f"{t['expected']:.1f}"}
                    for t in model.get("calibration") or []
                ],
            }
        )
    expected_false = context["highlights"]["expected_false_warnings"]["expected"]
    return {
        "case_mix": case_mix,
        "any_widened": any(m["widened"] for m in case_mix),
        "case_mix_models": case_mix_models,
        "expected_false_warnings": f"{expected_false:.1f}",
        "recent": _recent_rows(context["recent"]),
        "published": _published_rows(context["published"]),
        "cases_to_review": context.get("cases_to_review"),
        "data_items": _data_items_view(context.get("data_items")),
        "concordance": _concordance_view(context.get("concordance")),
        "readmissions": _readmissions_view(context.get("readmissions")),
        "for_email": context.get("for_email", False),
        "stored_report_url": context.get("stored_report_url"),
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
            false_alarm_target_text=_fmt_pct(cusum["false_alarm_target"], 0),
            reference_risk_text=_fmt_pct(cusum["reference_risk"], 0),
        ),
        "surgeons": surgeons,
        "surgeon_rows": [surgeons[i : i + 2] for i in range(0, len(surgeons), 2)],
        "surgeons_with_signal": [s for s in surgeons if s["signals"]],
        "survival": survival,
        "trends": [
            {
                "label": q["label"],
                "centre_n": q["centre"]["implantations"],
                "registry_n": q["registry"]["implantations"],
                "centre_use": _fmt_pct(q["centre"]["pump_use"]["rate"]),
                "registry_use": _fmt_pct(q["registry"]["pump_use"]["rate"]),
                "centre_technical": _fmt_pct(q["centre"]["technical_90"]["rate"]),
                "registry_technical": _fmt_pct(q["registry"]["technical_90"]["rate"]),
            }
            for q in context["trends"]["quarters"]
        ],
        "survival_by_indication": [
            {
                "label": group["label"],
                "endpoints": [
                    {
                        "label": e["label"],
                        "centre_n": e["centre"]["n"],
                        "centre_median": _fmt_median(e["centre"]["median_days"], e["centre"]["median_ci"])
                        if e["centre"]["n"]
                        else "–",
                        "centre_one_year": _fmt_pct(e["centre"]["one_year"]),
                        "registry_n": e["registry"]["n"],
                        "registry_median": None
                        if e["registry"]["suppressed"]
                        else _fmt_median(e["registry"]["median_days"], e["registry"]["median_ci"]),
                        "registry_one_year": _fmt_pct(e["registry"]["one_year"]),
                        "suppressed": e["registry"]["suppressed"],
                    }
                    for e in group["endpoints"]
                ],
            }
            for group in context["survival_by_indication"]
        ],
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
            # Reports stored before Clark's C was added have none.
            clark_c_view={
                side: "–" if value is None else f"{value:.2f}"
                for side, value in context["completeness"].get("clark_c", {}).items()
            },
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


def _shown_proportion(figure):
    """A {"implantations", "events", "rate", "ci"} figure (concordance, readmissions) as _display_proportion shows it."""
    return _display_proportion(dict(figure, n=figure.get("implantations")))


def _concordance_view(section):
    if not section:
        return None  # a report stored before the section was added
    return dict(
        section,
        measures=[
            dict(
                m,
                centre_view=_shown_proportion(m["centre"]),
                registry_view=_shown_proportion(m["registry"]),
            )
            for m in section["measures"]
        ],
    )


def _readmissions_view(measures):
    if measures is None:
        return None  # built without the live record (or stored before the rates were added)
    return [
        dict(m, centre_view=_shown_proportion(m["centre"]), registry_view=_shown_proportion(m["registry"]))
        for m in measures
    ]


def _data_items_view(data_items):
    """The data-items table: the centre's known-missing count with its split by code, e.g. "unknown 2, not done 1"."""
    if not data_items:
        return None  # a report stored before the table was added
    forms = []
    for form in data_items["forms"]:
        items = []
        for item in form["items"]:
            split = ", ".join(f"{b['label'].lower()} {b['n']}" for b in item["centre"]["by_code"] if b["n"])
            items.append(dict(item, by_code_text=split))
        forms.append(dict(form, items=items))
    return dict(data_items, forms=forms)


def render_html(context):
    """The report as one standalone HTML document (inline CSS and SVG)."""
    return render_to_string(TEMPLATE, _view(context))


def render_copies(context, stored_url=None):
    """(stored HTML, emailed HTML) of one report, its charts drawn once for both (issue 16).

    The same two pages as ``reports.services.render_stored_html`` and ``render_email_html``: the emailed
    copy's view has no "Cases to review" rows (and its raw context ``c`` no ``cases_to_review`` key), so
    no pseudonym can reach it, and it says where the stored copy is downloaded.
    """
    view = _view(dict(context, for_email=False))
    stored = render_to_string(TEMPLATE, view)
    without_cases = {key: value for key, value in context.items() if key != "cases_to_review"}
    emailed = dict(
        view,
        c=dict(without_cases, for_email=True, stored_report_url=stored_url),
        cases_to_review=None,
        for_email=True,
        stored_report_url=stored_url,
    )
    return stored, render_to_string(TEMPLATE, emailed)


def refuse_every_url(url):
    """WeasyPrint's URL fetcher: the report is self-contained (inline CSS, its charts as ``data:`` SVG images),
    so it fetches nothing.

    The one URL it opens is a chart's own ``data:image/svg+xml;base64,`` source (``reports.charts``), which
    is the image itself, not a request. Without this a URL in the HTML (file:///etc/..., http://internal-host/...,
    or one inside an SVG image) would be read by the worker.
    """
    from weasyprint.urls import FatalURLFetchingError, URLFetcherResponse

    if url.startswith(charts.CHART_IMAGE_URL):
        try:
            body = base64.b64decode(url[len(charts.CHART_IMAGE_URL) :], validate=True)
        except ValueError:
            raise FatalURLFetchingError("A chart image that is not base64.") from None
        return URLFetcherResponse(url, body, headers={"Content-Type": "image/svg+xml"})
    raise FatalURLFetchingError(f"The report fetches no resources; refused {url[:80]!r}.")


def render_pdf(html):
    """Print the HTML with WeasyPrint; returns the PDF bytes."""
    import os

    from weasyprint import HTML

    # fontTools stamps each embedded font subset with the time it was made unless SOURCE_DATE_EPOCH is set:
    # without it, the same report printed a second later gives other PDF bytes (and another checksum).
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    from weasyprint.urls import FatalURLFetchingError

    try:
        return HTML(string=html, url_fetcher=refuse_every_url).write_pdf()
    except FatalURLFetchingError as error:
        # A BaseException in WeasyPrint; a failed render is an ordinary error to the report run.
        raise ValueError(str(error)) from None


def render_centre_report(rows, **kwargs):
    """(context, html, pdf) for one centre; kwargs as for ``build_report_context``."""
    context = build_report_context(rows, **kwargs)
    html = render_html(context)
    return context, html, render_pdf(html)
