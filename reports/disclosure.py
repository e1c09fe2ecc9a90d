"""Small-cell suppression of statistics for people who are not the coordinator.

Counts 1-4 become null with ``suppressed: true``, and so does anything they
could be recovered from: the rate and interval built on them, and a second
cell when the total (obtainable without ``group_by``) minus the others would
give the first one back.
"""

from .statistics import suppress_small_counts

THRESHOLD = 5
SURVIVAL_TABLE_STEP_DAYS = 30


def _suppress_column(groups, column):
    """Suppress ``column`` across groups, with the total as the complement."""
    cells = [(index, group[column]) for index, group in enumerate(groups)]
    outcome = suppress_small_counts(cells, total=sum(c for _, c in cells), threshold=THRESHOLD)
    return {cell["key"] for cell in outcome["cells"] if cell["suppressed"]}


def suppress_proportions(groups, numerator, denominator="implantations", derived=("rate", "ci")):
    """For complication and pump-use groups: hide small numerators and denominators."""
    hidden_denominators = _suppress_column(groups, denominator)
    hidden_numerators = _suppress_column(groups, numerator)
    # Events can also be recovered as denominator minus non-events.
    non_events = [{"n": g[denominator] - g[numerator]} for g in groups]
    hidden_numerators |= _suppress_column(non_events, "n")
    out = []
    for index, group in enumerate(groups):
        group = dict(group)
        group["suppressed"] = False
        if index in hidden_denominators or index in hidden_numerators:
            group["suppressed"] = True
            group[numerator] = None
            for name in derived:
                group[name] = None
            if index in hidden_denominators:
                group[denominator] = None
                for name in ("median_days_to_first_dose",):
                    if name in group:
                        group[name] = None
        out.append(group)
    return out


def _coarsen(table):
    """Kaplan-Meier table at fixed steps, so no row describes one patient's event."""
    if not table:
        return []
    coarse, index, survival, events = [], 0, 1.0, 0
    last_day = table[-1]["day"]
    day = 0
    while day <= last_day:
        at_risk = next((r["at_risk"] for r in table[index:] if r["day"] >= day), 0)
        while index < len(table) and table[index]["day"] < day + SURVIVAL_TABLE_STEP_DAYS:
            events += table[index]["events"]
            survival = table[index]["survival"]
            index += 1
        coarse.append({"day": day, "at_risk": at_risk, "events": events, "survival": survival})
        events = 0
        day += SURVIVAL_TABLE_STEP_DAYS
    for row in coarse:
        for name in ("at_risk", "events"):
            if 0 < row[name] < THRESHOLD:
                row[name] = None
    return coarse


def suppress_survival(groups):
    """Survival groups: small n or events hide the group's curve; tables are coarsened for everyone else."""
    hidden_n = _suppress_column(groups, "n")
    hidden_events = _suppress_column(groups, "events")
    out = []
    for index, group in enumerate(groups):
        group = dict(group, suppressed=index in hidden_n or index in hidden_events)
        if group["suppressed"]:
            group.update(events=None, median_days=None, median_ci=None, table=[])
            if index in hidden_n:
                group["n"] = None
        else:
            group["table"] = _coarsen(group["table"])
        out.append(group)
    return out
