"""The monthly report's registry survival curves leave out small numbers (reports.rendering, ``_survival``).

The registry curve is drawn from the coarsened 30-day table (reports.disclosure) and stops before the first
block that starts with fewer than 5 at risk; the registry's numbers at risk are never 1-4 of other centres.
"""

import datetime

from registry.models import ComplicationType
from reports.cohort import cohort
from reports.disclosure import THRESHOLD
from reports.rendering import build_report_context

from . import factories
from .factories import days_after


def small(value):
    return value is not None and 0 < value < THRESHOLD


def test_the_reports_registry_curve_and_numbers_at_risk_leave_out_small_numbers(db):
    """Home: 10 followed to day 160. Others: 40, one death every 5 days to day 120 (6 per block), 13 followed to
    day 160 and 3 to day 400. From day 180 on only those 3 are at risk: the registry curve stops at day 180 and
    the registry's numbers at risk at 6 and 12 months (3, all of another centre) are not printed."""
    home, other = factories.CentreFactory(code="HOME-K"), factories.CentreFactory(code="ZZOTHER")
    deaths = list(range(5, 121, 5))
    exits = [(home, None, 160)] * 10 + [(other, day, day) for day in deaths]
    exits += [(other, None, 160)] * 13 + [(other, None, 400)] * 3
    for centre, died, last_seen in exits:
        implantation = factories.ImplantationFactory(patient__centre=centre, implanted_on=days_after(0))
        factories.FollowUpFactory(
            implantation=implantation,
            contact_on=days_after(last_seen),
            vital_status="dead" if died else "alive",
            died_on=days_after(died) if died else None,
        )
    context = build_report_context(
        cohort(as_of=None),
        centre_code="HOME-K",
        period_start=datetime.date(2024, 12, 1),
        period_end=datetime.date(2024, 12, 31),
        data_cut=datetime.datetime(2025, 6, 15, 12, 0, tzinfo=datetime.UTC),
        complication_types=list(ComplicationType.objects.values("code", "name", "category", "catheter_related")),
        method_version="test-1",
    )
    overall = context["survival"]["overall"]
    assert overall["registry"]["suppressed"] is False
    assert [point["day"] for point in overall["registry"]["curve"]] == [30, 60, 90, 120, 150, 180]
    at_risk = {row["months"]: (row["centre"], row["registry"]) for row in overall["at_risk"]}
    assert at_risk[0] == (10, 50)
    assert at_risk[6] == (0, None) and at_risk[12] == (0, None)
    assert not [row for row in overall["at_risk"] if small(row["registry"])]
