"""Group the cohort and compute the registry's statistics.

The API's ``stats`` endpoints and the monthly reports call these functions;
each takes cohort rows (``reports.cohort.cohort``) and returns plain dicts.
Rates use every implantation as the denominator (intention to treat).
"""

import statistics as pystats
from collections import OrderedDict
from itertools import pairwise

from .statistics import kaplan_meier, wilson_interval

GROUPINGS = ("centre", "indication", "surgeon_experience", "surgeon_volume", "centre_volume", "sex")
DEFAULT_EXPERIENCE_THRESHOLD = 25
DEFAULT_SURGEON_VOLUME_BANDS = (5, 15)
DEFAULT_CENTRE_VOLUME_BANDS = (20, 60)
SURVIVAL_ENDPOINTS = ("overall", "pump_failure", "hepatic_progression")
ANY_COMPLICATION = "any"
CATHETER_RELATED = "catheter_related"


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
            threshold = self.experience_threshold
            return f"below {threshold}" if row.surgeon_sequence < threshold else f"{threshold} or more"
        if self.group_by == "surgeon_volume":
            return self.band_of(row.surgeon_volume, self.surgeon_volume_bands)
        return self.band_of(row.centre_volume, self.centre_volume_bands)

    def order(self):
        """Groups in a meaningful order (bands and experience ascending); others alphabetical."""
        if self.group_by == "surgeon_experience":
            t = self.experience_threshold
            return [f"below {t}", f"{t} or more"]
        if self.group_by == "surgeon_volume":
            return self.band_labels(self.surgeon_volume_bands)
        if self.group_by == "centre_volume":
            return self.band_labels(self.centre_volume_bands)
        return None

    def split(self, rows):
        groups = {}
        for row in rows:
            groups.setdefault(self.key(row), []).append(row)
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
    """Whether the implantation had a complication of one of ``type_codes`` (within ``within_days`` of implant)."""
    onsets = [row.complications[code] for code in type_codes if code in row.complications]
    if not onsets:
        return False
    if within_days is None:
        return True
    return (min(onsets) - row.implanted_on).days <= within_days


def complication_rates(rows, type_codes, grouping, within_days=None):
    result = []
    for group, members in grouping.split(rows).items():
        events = sum(complication_event(row, type_codes, within_days) for row in members)
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


def survival_time(row, endpoint):
    """(days, event) for one implantation and endpoint.

    Overall: implantation to death, censored at the last follow-up contact.
    Pump failure and hepatic progression: to the event, censored at death or
    the last contact, whichever comes first.
    """
    last_seen = row.last_contact_on or row.implanted_on
    if endpoint == "overall":
        if row.died_on:
            return (row.died_on - row.implanted_on).days, True
        return (last_seen - row.implanted_on).days, False
    event_on = row.pump_failure_on if endpoint == "pump_failure" else row.hepatic_progression_on
    if event_on:
        return (event_on - row.implanted_on).days, True
    censor_on = min(d for d in (row.died_on, last_seen) if d)
    return (censor_on - row.implanted_on).days, False


def survival(rows, endpoint, grouping):
    if endpoint not in SURVIVAL_ENDPOINTS:
        raise ValueError(f"endpoint must be one of {SURVIVAL_ENDPOINTS}")
    result = []
    for group, members in grouping.split(rows).items():
        times = [survival_time(row, endpoint) for row in members]
        fit = kaplan_meier([max(days, 0) for days, _ in times], [int(event) for _, event in times])
        result.append(
            {
                "group": group,
                "n": fit.n,
                "events": fit.events,
                "median_days": fit.median,
                "median_ci": list(fit.median_ci),
                "table": [
                    {"day": int(r["time"]), "at_risk": r["at_risk"], "events": r["events"], "survival": r["survival"]}
                    for r in fit.table
                ],
            }
        )
    return result


def conversion_to_resection(rows, grouping):
    result = []
    for group, members in grouping.split(rows).items():
        events = sum(row.resected for row in members)
        result.append({"group": group, "implantations": len(members), "events": events, **rate(events, len(members))})
    return result
