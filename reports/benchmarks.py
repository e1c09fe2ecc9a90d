"""Group the cohort and compute the registry's statistics.

The API's ``stats`` endpoints and the monthly reports call these functions;
each takes cohort rows (``reports.cohort.cohort``) and returns plain dicts.
Rates use every implantation as the denominator (intention to treat).
"""

import datetime
import statistics as pystats
from collections import OrderedDict
from itertools import pairwise

from . import outcomes
from .outcomes import ANY_COMPLICATION, CATHETER_RELATED, COMPETING, EVENT  # noqa: F401 (names the API uses)
from .statistics import aalen_johansen, cumulative_incidence_at, kaplan_meier, survival_at, wilson_interval

GROUPINGS = ("centre", "indication", "surgeon_experience", "surgeon_volume", "centre_volume", "sex")
DEFAULT_EXPERIENCE_THRESHOLD = outcomes.EXPERIENCE_THRESHOLD
DEFAULT_SURGEON_VOLUME_BANDS = outcomes.SURGEON_VOLUME_BANDS
DEFAULT_CENTRE_VOLUME_BANDS = outcomes.CENTRE_VOLUME_BANDS
SURVIVAL_ENDPOINTS = ("overall", "pump_failure", "hepatic_progression")


class Grouping:
    """How rows are put into groups, and in which order the groups are shown."""

    def __init__(
        self,
        group_by=None,
        *,
        experience_threshold=DEFAULT_EXPERIENCE_THRESHOLD,
        surgeon_volume_bands=DEFAULT_SURGEON_VOLUME_BANDS,
        centre_volume_bands=DEFAULT_CENTRE_VOLUME_BANDS,
    ):
        if group_by is not None and group_by not in GROUPINGS:
            raise ValueError(f"group_by must be one of {GROUPINGS}")
        self.group_by = group_by
        self.experience_threshold = experience_threshold
        self.surgeon_volume_bands = tuple(surgeon_volume_bands)
        self.centre_volume_bands = tuple(centre_volume_bands)

    @staticmethod
    def band_labels(bands):
        edges = [0, *bands]
        labels = [f"{low}-{high - 1}" if high - 1 != low else str(low) for low, high in pairwise(edges)]
        return [*labels, f"{edges[-1]}+"]

    @staticmethod
    def band_of(value, bands):
        labels = Grouping.band_labels(bands)
        for index, upper in enumerate(bands):
            if value < upper:
                return labels[index]
        return labels[-1]

    def key(self, row):
        if self.group_by is None:
            return "all"
        if self.group_by == "centre":
            return row.centre_code
        if self.group_by == "indication":
            return row.indication
        if self.group_by == "sex":
            return row.sex
        if self.group_by == "surgeon_experience":
            return self.experience_labels()[outcomes.experienced(row, self.experience_threshold)]
        if self.group_by == "surgeon_volume":
            return self.band_of(row.surgeon_volume, self.surgeon_volume_bands)
        return self.band_of(row.centre_volume, self.centre_volume_bands)

    def order(self):
        """Groups in a meaningful order (bands and experience ascending); others alphabetical."""
        if self.group_by == "surgeon_experience":
            return self.experience_labels()
        if self.group_by == "surgeon_volume":
            return self.band_labels(self.surgeon_volume_bands)
        if self.group_by == "centre_volume":
            return self.band_labels(self.centre_volume_bands)
        return None

    def experience_labels(self):
        """[not experienced, experienced]: pumps the surgeon had placed *before* this one."""
        t = self.experience_threshold
        return [f"fewer than {t} before", f"{t} or more before"]

    def split(self, rows, key=None):
        """Rows (or subjects, with ``key`` giving a subject's row) by group, in the groups' order."""
        groups = {}
        for item in rows:
            groups.setdefault(self.key(key(item) if key else item), []).append(item)
        order = self.order()
        keys = [k for k in order if k in groups] if order else sorted(groups)
        return OrderedDict((key, groups[key]) for key in keys)


def rate(events, n):
    interval = wilson_interval(events, n) if n else None
    return {
        "rate": events / n if n else None,
        "ci": list(interval) if interval else None,
    }


def complication_event(row, type_codes, within_days=None):
    """Whether the implantation had a complication of one of ``type_codes`` (within ``within_days`` of implant).

    A crude indicator for one row (the CUSUM's outcome); rates over groups use ``cumulative_incidence``.
    """
    onsets = [row.complications[code] for code in type_codes if code in row.complications]
    if not onsets:
        return False
    if within_days is None:
        return True
    return (min(onsets) - row.implanted_on).days <= within_days


def _subject_groups(rows, outcome, grouping):
    subjects = outcome.subjects(rows)
    groups = grouping.split(rows)
    by_group = grouping.split(subjects, key=lambda s: s.row)
    # Every group of rows is listed, even one whose rows all fell out (no one at risk).
    return OrderedDict((group, by_group.get(group, [])) for group in groups)


def _fit_incidence(subjects):
    return aalen_johansen([s.exit for s in subjects], [s.status for s in subjects], entries=[s.entry for s in subjects])


def cumulative_incidence(rows, outcome, at_days, grouping):
    """Aalen-Johansen cumulative incidence of ``outcome`` by day ``at_days``, per group.

    ``implantations`` is the outcome's denominator (all implantations, or those treated for a
    toxicity); ``events`` and ``competing_events`` are those observed by ``at_days``. The
    estimate is None when nobody in the group is followed to ``at_days``.
    """
    result = []
    for group, subjects in _subject_groups(rows, outcome, grouping).items():
        point = cumulative_incidence_at(_fit_incidence(subjects), at_days) if subjects else None
        estimate = point["estimate"] if point else None
        ci = [point["ci_low"], point["ci_high"]] if point and point["ci_low"] is not None else None
        result.append(
            {
                "group": group,
                "implantations": len(subjects),
                "events": sum(1 for s in subjects if s.status == EVENT and s.exit <= at_days),
                "competing_events": sum(1 for s in subjects if s.status == COMPETING and s.exit <= at_days),
                "estimate": estimate,
                "ci": ci,
            }
        )
    return result


def closed_window_proportions(rows, outcome, window_days, grouping, cut_date):
    """Events within ``window_days`` over the subjects whose whole window had passed by ``cut_date``.

    For funnel plots and their flags, which need a count out of a denominator: with the window
    closed for everyone, the Aalen-Johansen estimate is this proportion (no administrative
    censoring is left; a competing event simply means no event). Subjects who entered the
    registry after the window (retrospective entries) are left out: their window was never observed.
    """
    result = []
    for group, subjects in _subject_groups(rows, outcome, grouping).items():
        closed = [
            s
            for s in subjects
            if s.entry < 0 and _origin_on(s.row, outcome) + datetime.timedelta(days=window_days) <= cut_date
        ]
        events = sum(1 for s in closed if s.status == EVENT and s.exit <= window_days)
        result.append({"group": group, "implantations": len(closed), "events": events, **rate(events, len(closed))})
    return result


def _origin_on(row, outcome):
    return row.first_dose_on if getattr(outcome, "from_first_dose", False) else row.implanted_on


def complication_rates(rows, outcome, grouping, within_days=None):
    """Complication rate per group for a ``reports.outcomes.ComplicationOutcome``.

    With ``within_days``: the Aalen-Johansen cumulative incidence by that day, with the
    outcome's own denominator, origin and competing events, and ``competing_events``.
    Without: the crude share of the outcome's denominator with the complication at any time,
    which grows with follow-up (the API's unwindowed form; the report does not show it).
    """
    if within_days is not None:
        return [
            {
                "group": g["group"],
                "implantations": g["implantations"],
                "events": g["events"],
                "competing_events": g["competing_events"],
                "rate": g["estimate"],
                "ci": g["ci"],
            }
            for g in cumulative_incidence(rows, outcome, within_days, grouping)
        ]
    result = []
    for group, members in grouping.split(rows).items():
        if outcome.from_first_dose:
            members = [row for row in members if row.treated]
        onsets = (lambda row: row.severe_complications) if outcome.severe_only else (lambda row: row.complications)
        events = sum(1 for row in members if any(code in onsets(row) for code in outcome.codes))
        result.append({"group": group, "implantations": len(members), "events": events, **rate(events, len(members))})
    return result


def pump_use(rows, grouping):
    result = []
    for group, members in grouping.split(rows).items():
        treated = [row for row in members if row.treated]
        days = [row.days_to_first_dose for row in treated]
        result.append(
            {
                "group": group,
                "implantations": len(members),
                "treated": len(treated),
                **rate(len(treated), len(members)),
                "median_days_to_first_dose": pystats.median(days) if days else None,
            }
        )
    return result


def _kaplan_meier(subjects):
    return kaplan_meier(
        [s.exit for s in subjects], [int(s.status == EVENT) for s in subjects], entries=[s.entry for s in subjects]
    )


def survival_subjects(rows, endpoint):
    """The subjects of a survival endpoint (``reports.outcomes``): per patient for overall and hepatic PFS."""
    if endpoint == "pump_failure":
        return outcomes.PUMP_FAILURE_OUTCOME.subjects(rows)
    return outcomes.SURVIVAL_OUTCOMES[endpoint].subjects(rows)


def survival_curve(subjects, endpoint):
    """{"n", "events", "median_days", "median_ci", "table"} for one group of subjects.

    Overall and hepatic progression-free survival: Kaplan-Meier with delayed entry. Pump
    failure has competing events, so its curve is freedom from pump failure, 1 − the
    Aalen-Johansen cumulative incidence (never 1 − Kaplan-Meier with competing events
    censored, which overstates the risk).
    """
    if endpoint == "pump_failure":
        fit = _fit_incidence(subjects)
        table = [
            {"day": int(r["time"]), "at_risk": r["at_risk"], "events": r["events"], "survival": 1.0 - r["estimate"]}
            for r in fit.table
        ]
        median = next((row["day"] for row in table if row["survival"] <= 0.5), None)
        return {"n": fit.n, "events": fit.events, "median_days": median, "median_ci": [None, None], "table": table}
    fit = _kaplan_meier(subjects)
    return {
        "n": fit.n,
        "events": fit.events,
        "median_days": fit.median,
        "median_ci": list(fit.median_ci),
        "table": [
            {"day": int(r["time"]), "at_risk": r["at_risk"], "events": r["events"], "survival": r["survival"]}
            for r in fit.table
        ],
    }


def survival(rows, endpoint, grouping):
    if endpoint not in SURVIVAL_ENDPOINTS:
        raise ValueError(f"endpoint must be one of {SURVIVAL_ENDPOINTS}")
    subjects = survival_subjects(rows, endpoint)
    by_group = grouping.split(subjects, key=lambda s: s.row)
    return [{"group": group, **survival_curve(members, endpoint)} for group, members in by_group.items()]


def mortality(rows, grouping, at_days=outcomes.MORTALITY_WINDOW_DAYS):
    """Death by ``at_days`` after implantation: 1 − Kaplan-Meier survival with delayed entry, per implantation."""
    result = []
    for group, subjects in _subject_groups(rows, outcomes.MORTALITY_90_DAYS, grouping).items():
        point = survival_at(_kaplan_meier(subjects), at_days) if subjects else None
        result.append(
            {
                "group": group,
                "implantations": len(subjects),
                "events": sum(1 for s in subjects if s.status == EVENT and s.exit <= at_days),
                "rate": 1.0 - point["survival"] if point else None,
                "ci": [1.0 - point["ci_high"], 1.0 - point["ci_low"]]
                if point and point["ci_low"] is not None
                else None,
            }
        )
    return result


def conversion_to_resection(rows, grouping):
    result = []
    for group, members in grouping.split(rows).items():
        events = sum(row.resected for row in members)
        result.append({"group": group, "implantations": len(members), "events": events, **rate(events, len(members))})
    return result
