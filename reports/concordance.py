"""Concordance with the expert consensus on HAI pump chemotherapy, per centre against the registry.

Source: Karanicolas et al., "Hepatic arterial infusion pump chemotherapy in the management of colorectal
liver metastases: expert consensus statement", Curr Oncol 2014;21:e129 (doi:10.3747/co.21.1577;
shared/domain/seeds/004). Two of its statements can be read from the record:

``systemic_with_hai``: "HAIP chemotherapy should be given in combination with systemic chemotherapy."
    Among treated implantations (at least one HAI dose given, held cycles excluded: ``CohortRow.treated``,
    the cohort's own definition), the share with systemic therapy during the HAI period.

    The **HAI period** of an implantation runs from its first to its last HAI dose given by the data cut,
    both days included (``first_dose_on`` and ``last_dose_on`` of the cohort row: the dates ``given_on`` of
    its refills that were not held). A systemic therapy line of the patient overlaps it when it started on
    or before the last dose and had not ended before the first (``started_on <= last dose`` and ``ended_on``
    empty or ``>= first dose``): "in combination" means the two treatments were given over the same
    period, not necessarily on the same days, so a line that ended the day before the first HAI dose is
    not a combination, and one still running at the cut (no end date) is. Lines are the patient's, wherever
    entered; only lines entered by the data cut count (the cohort's cut).

``extrahepatic_outside_trial``: "HAIP chemotherapy is not recommended in the setting of extrahepatic
    disease outside the context of a clinical trial." Among all implantations (intention to treat, as
    every registry rate), those with extrahepatic disease at implant (``Patient.extrahepatic_disease``
    true) and no clinical trial recorded (``Implantation.trial`` empty). A lower share is more concordant.
    An unknown extrahepatic status outside a trial is counted apart (``unknown_status``), never as "no":
    it may or may not be discordant. In a trial the recommendation is met whatever the status.

Both are crude proportions of the report's cohort rows as of its data cut, with the 95% Wilson interval
(``benchmarks.rate``). For anyone but the coordinator, groups are suppressed by ``reports.disclosure``:
the first as a proportion (events, non-events), the second with three parts (discordant, unknown status,
the rest). In a centre's report, the registry figure is shown only when the other centres' share
(registry minus the centre) passes the same rule, as for the report's other pooled figures.
"""

from . import benchmarks, disclosure

SOURCE = "Karanicolas et al., Curr Oncol 2014;21:e129 (expert consensus statement on HAI pump chemotherapy)"
SYSTEMIC_WITH_HAI = "systemic_with_hai"
EXTRAHEPATIC_OUTSIDE_TRIAL = "extrahepatic_outside_trial"
MEASURE_CODES = (SYSTEMIC_WITH_HAI, EXTRAHEPATIC_OUTSIDE_TRIAL)


def overlaps_hai_period(first_dose_on, last_dose_on, started_on, ended_on):
    """Whether a systemic line (``started_on``, ``ended_on`` or None) overlaps the HAI period (module docstring)."""
    if first_dose_on is None:
        return False
    return started_on <= last_dose_on and (ended_on is None or ended_on >= first_dose_on)


def systemic_with_hai(rows, grouping):
    """[{"group", "implantations" (treated), "events" (with systemic therapy in the HAI period), "rate", "ci"}]."""
    treated = [row for row in rows if row.treated]
    return [
        {
            "group": group,
            "implantations": len(members),
            "events": sum(1 for row in members if row.systemic_during_hai),
            **benchmarks.rate(sum(1 for row in members if row.systemic_during_hai), len(members)),
        }
        for group, members in grouping.split(treated).items()
    ]


def _discordant(row):
    return row.extrahepatic_disease is True and not row.in_trial


def _unknown_status(row):
    return row.extrahepatic_disease is None and not row.in_trial


def extrahepatic_outside_trial(rows, grouping):
    """[{"group", "implantations", "events" (extrahepatic disease, no trial), "unknown_status", "rate", "ci"}]."""
    result = []
    for group, members in grouping.split(rows).items():
        events = sum(1 for row in members if _discordant(row))
        result.append(
            {
                "group": group,
                "implantations": len(members),
                "events": events,
                "unknown_status": sum(1 for row in members if _unknown_status(row)),
                **benchmarks.rate(events, len(members)),
            }
        )
    return result


def suppress_systemic_with_hai(groups):
    return disclosure.suppress_proportions(groups, "events")


def suppress_extrahepatic_outside_trial(groups):
    """Three parts per group (discordant, unknown status, the rest): disclosure's cumulative-incidence rule,
    whose parts are events, competing events and the rest, with the unknown status as the second."""
    as_incidence = [
        {**{k: v for k, v in g.items() if k != "unknown_status"}, "competing_events": g["unknown_status"]}
        for g in groups
    ]
    return [
        {**{k: v for k, v in g.items() if k != "competing_events"}, "unknown_status": g["competing_events"]}
        for g in disclosure.suppress_cumulative_incidence(as_incidence, estimate="rate")
    ]


MEASURES = {
    SYSTEMIC_WITH_HAI: {
        "label": "Systemic chemotherapy during HAI",
        "recommendation": "HAI pump chemotherapy should be given in combination with systemic chemotherapy.",
        "definition": "Treated implantations (at least one HAI dose, held cycles excluded) with a systemic therapy "
        "line that started on or before the last HAI dose and had not ended before the first.",
        "denominator": "treated implantations",
        "higher_is_concordant": True,
        "compute": systemic_with_hai,
        "suppress": suppress_systemic_with_hai,
    },
    EXTRAHEPATIC_OUTSIDE_TRIAL: {
        "label": "Extrahepatic disease outside a trial",
        "recommendation": "HAI pump chemotherapy is not recommended in the setting of extrahepatic disease outside "
        "the context of a clinical trial.",
        "definition": "Implantations with extrahepatic disease at implant and no clinical trial recorded, among all "
        "implantations; an unknown extrahepatic status outside a trial is counted apart, not as none.",
        "denominator": "implantations",
        "higher_is_concordant": False,
        "compute": extrahepatic_outside_trial,
        "suppress": suppress_extrahepatic_outside_trial,
    },
}


def measure_groups(rows, code, grouping):
    return MEASURES[code]["compute"](rows, grouping)


def guard_registry(own, pooled, suppress, count_keys):
    """The registry figure as a centre may see it: shown only when the other centres' share (pooled − own)
    passes ``suppress``; otherwise its counts and everything built on them are None (``suppressed`` True)."""
    others = {"group": "others", **{key: (pooled[key] or 0) - (own[key] if own else 0) for key in count_keys}}
    others.update(rate=None, ci=None)
    [checked] = suppress([others])
    shown = dict(pooled, suppressed=checked["suppressed"])
    if checked["suppressed"]:
        shown.update(dict.fromkeys((*count_keys, "rate", "ci")))
    return shown


def _empty(code):
    empty = {"implantations": 0, "events": 0, "rate": None, "ci": None}
    if code == EXTRAHEPATIC_OUTSIDE_TRIAL:
        empty["unknown_status"] = 0
    return empty


def centre_section(rows, own, call=None):
    """The report's "Consensus concordance" figures: each measure for the centre (in full) and the registry
    (guarded). ``call(function, rows, *args)``: the report's memo for whole-registry figures."""
    call = call or (lambda function, items, *args: function(items, *args))
    everyone = benchmarks.Grouping()
    measures = []
    for code, measure in MEASURES.items():
        [centre] = measure["compute"](own, everyone) or [_empty(code)]
        [pooled] = call(measure["compute"], rows, everyone) or [_empty(code)]
        centre.pop("group", None)
        pooled.pop("group", None)
        count_keys = [key for key in ("implantations", "events", "unknown_status") if key in pooled]
        measures.append(
            {
                "key": code,
                "label": measure["label"],
                "recommendation": measure["recommendation"],
                "definition": measure["definition"],
                "denominator": measure["denominator"],
                "higher_is_concordant": measure["higher_is_concordant"],
                "centre": centre,
                "registry": guard_registry(centre, pooled, measure["suppress"], count_keys),
            }
        )
    return {"source": SOURCE, "measures": measures}
