"""Reads: values derived from the record, never stored or typed in."""

import datetime

from django.db.models import (
    BooleanField,
    Count,
    DateField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce

from .vocabulary import DoseChange


def _doses():
    from .models import Treatment

    return Treatment.objects.exclude(dose_change=DoseChange.HELD).filter(implantation=OuterRef("pk"))


def _earlier_implantations_of_surgeon():
    """Registry implantations by the same surgeon placed before this one.

    Same-day implantations are ordered by id so every implantation gets a
    distinct sequence number; a case entered late still slots in by date.
    """
    from .models import Implantation

    return (
        Implantation.objects.filter(surgeon=OuterRef("surgeon"))
        .filter(
            Q(implanted_on__lt=OuterRef("implanted_on"))
            | Q(implanted_on=OuterRef("implanted_on"), id__lt=OuterRef("id"))
        )
        .order_by()
        .values("surgeon")
        .annotate(n=Count("*"))
        .values("n")
    )


def annotate_derived(queryset):
    """Adds ``derived_treated``, ``derived_first_dose_on`` and ``derived_surgeon_sequence``.

    Each is a correlated subquery on an index, so the cost per row is constant
    and filtering the outer queryset does not change the numbers. "Treated" is "has a first dose":
    one ordered lookup on ``treatment_first_dose_idx`` (implantation, given_on) answers both, where an
    ``EXISTS`` beside a ``MIN`` made PostgreSQL hash every dose row (issue 16).
    """
    first_dose = _doses().order_by("given_on").values("given_on")[:1]
    return queryset.annotate(
        derived_first_dose_on=Subquery(first_dose, output_field=DateField()),
        derived_surgeon_sequence=F("surgeon__prior_pump_count")
        + Coalesce(Subquery(_earlier_implantations_of_surgeon(), output_field=IntegerField()), Value(0))
        + 1,
    ).annotate(derived_treated=ExpressionWrapper(Q(derived_first_dose_on__isnull=False), output_field=BooleanField()))


def treated(value=True):
    """A filter on "treated" (at least one dose given, held cycles excluded), the same rule as ``derived_treated``.

    As ``EXISTS``, not a test on the first-dose column: PostgreSQL then answers "never treated" with an
    anti-join, where a test on the annotated subquery ran it once per candidate row (a count at 100,000
    implantations: 82 ms against 240 ms; issue 16, bench/README.md).
    """
    has_dose = Exists(_doses())
    return has_dose if value else ~has_dose


def implantation_derived(implantation):
    """The derived values of one implantation, from annotations when present."""
    if hasattr(implantation, "derived_treated"):
        treated = implantation.derived_treated
        first_dose_on = implantation.derived_first_dose_on
        sequence = implantation.derived_surgeon_sequence
    elif implantation.pk is None:
        return {"treated": False, "days_to_first_dose": None, "surgeon_sequence": None}
    else:
        row = (
            annotate_derived(type(implantation).objects.filter(pk=implantation.pk))
            .values("derived_treated", "derived_first_dose_on", "derived_surgeon_sequence")
            .get()
        )
        treated = row["derived_treated"]
        first_dose_on = row["derived_first_dose_on"]
        sequence = row["derived_surgeon_sequence"]
    days = (first_dose_on - implantation.implanted_on).days if first_dose_on else None
    return {"treated": treated, "days_to_first_dose": days, "surgeon_sequence": sequence}


READMISSION_WINDOWS = (30, 90)


def readmission_rates(implantations_queryset, *, data_cut):
    """30- and 90-day readmission and reoperation rates over ``implantations_queryset`` at ``data_cut``.

    {"readmission_30d": (events, n), "readmission_90d": ..., "reoperation_30d": ..., "reoperation_90d": ...}.
    Complete cases only, as in reports.casemix: an implantation counts in ``n`` when its window (day 0 to
    day 30 or 90 after ``implanted_on``) had ended by the cut (``implanted_on + days <= cut``), or when it
    had the event inside the window by the cut; it is an event when at least one readmission (or
    reoperation) is dated inside the window, on or before the cut. Implantations after the cut are left
    out. A datetime cut also leaves out rows entered after it (``created_at``). One SQL query.
    """
    from .models import Readmission
    from .vocabulary import ReadmissionKind

    cut = data_cut.date() if isinstance(data_cut, datetime.datetime) else data_cut
    entered = {"created_at__lte": data_cut} if isinstance(data_cut, datetime.datetime) else {}
    flags, totals = {}, {}
    for kind in (ReadmissionKind.READMISSION, ReadmissionKind.REOPERATION):
        for days in READMISSION_WINDOWS:
            key = f"{kind}_{days}d"
            window_end = ExpressionWrapper(
                OuterRef("implanted_on") + datetime.timedelta(days=days), output_field=DateField()
            )
            events = Readmission.objects.filter(
                implantation=OuterRef("pk"),
                kind=kind,
                occurred_on__gte=OuterRef("implanted_on"),
                occurred_on__lte=window_end,
                **entered,
            ).filter(occurred_on__lte=cut)
            flags[f"_{key}"] = Exists(events)
            ended = Q(implanted_on__lte=cut - datetime.timedelta(days=days))
            totals[f"{key}_events"] = Count("pk", filter=Q(**{f"_{key}": True}))
            totals[f"{key}_n"] = Count("pk", filter=ended | Q(**{f"_{key}": True}))
    row = implantations_queryset.order_by().filter(implanted_on__lte=cut).annotate(**flags).aggregate(**totals)
    return {
        key.removesuffix("_events"): (row[key], row[key.removesuffix("_events") + "_n"])
        for key in totals
        if key.endswith("_events")
    }
