"""Reads: values derived from the record, never stored or typed in."""

from django.db.models import Count, DateField, Exists, F, IntegerField, Min, OuterRef, Q, Subquery, Value
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
    and filtering the outer queryset does not change the numbers.
    """
    first_dose = _doses().order_by().values("implantation").annotate(first=Min("given_on")).values("first")
    return queryset.annotate(
        derived_treated=Exists(_doses()),
        derived_first_dose_on=Subquery(first_dose, output_field=DateField()),
        derived_surgeon_sequence=F("surgeon__prior_pump_count")
        + Coalesce(Subquery(_earlier_implantations_of_surgeon(), output_field=IntegerField()), Value(0))
        + 1,
    )


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
