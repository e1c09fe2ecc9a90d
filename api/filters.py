import django_filters as filters
from django.db.models import Exists, OuterRef

from registry.models import (
    Complication,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    SystemicTherapyLine,
    Treatment,
)
from registry.vocabulary import Indication, Sex
from reports.outcomes import EXPERIENCE_THRESHOLD
from sites.models import Surgeon

DEFAULT_EXPERIENCE_THRESHOLD = EXPERIENCE_THRESHOLD


class ImplantationFilter(filters.FilterSet):
    centre = filters.CharFilter(field_name="patient__centre__code", help_text="Centre code.")
    surgeon = filters.CharFilter(field_name="surgeon__code", help_text="Surgeon code.")
    # distinct=False: DISTINCT would evaluate the derived columns of every matching row before the LIMIT.
    indication = filters.MultipleChoiceFilter(choices=Indication.choices, distinct=False)
    implanted_after = filters.DateFilter(
        field_name="implanted_on", lookup_expr="gte", help_text="On or after (YYYY-MM-DD)."
    )
    implanted_before = filters.DateFilter(
        field_name="implanted_on", lookup_expr="lte", help_text="On or before (YYYY-MM-DD)."
    )
    treated = filters.BooleanFilter(field_name="derived_treated", help_text="At least one HAI dose given.")
    complication_type = filters.CharFilter(
        method="filter_complication_type", help_text="Has a complication of this type (code)."
    )
    surgeon_experience = filters.ChoiceFilter(
        choices=[("below", "below the threshold"), ("at_or_above", "at or above the threshold")],
        method="filter_surgeon_experience",
        help_text="Pumps the surgeon placed before this one against `experience_threshold` (at or above: experienced).",
    )
    experience_threshold = filters.NumberFilter(
        method="filter_nothing",
        help_text=f"Pumps placed before that count as experienced (default {DEFAULT_EXPERIENCE_THRESHOLD}).",
    )
    min_surgeon_sequence = filters.NumberFilter(field_name="derived_surgeon_sequence", lookup_expr="gte")
    max_surgeon_sequence = filters.NumberFilter(field_name="derived_surgeon_sequence", lookup_expr="lte")

    class Meta:
        model = Implantation
        fields = ["approach", "device"]

    patient = filters.NumberFilter(field_name="patient_id")

    def filter_complication_type(self, queryset, name, value):
        return queryset.filter(Exists(Complication.objects.filter(implantation=OuterRef("pk"), type__code=value)))

    def filter_surgeon_experience(self, queryset, name, value):
        threshold = self.form.cleaned_data.get("experience_threshold") or DEFAULT_EXPERIENCE_THRESHOLD
        # Experienced: at least `threshold` pumps placed before this one (reports.outcomes.experienced),
        # so the pump's own number is threshold + 1 or more.
        if value == "below":
            return queryset.filter(derived_surgeon_sequence__lte=threshold)
        return queryset.filter(derived_surgeon_sequence__gt=threshold)

    def filter_nothing(self, queryset, name, value):
        return queryset


def month_start(value):
    """'YYYY-MM' -> the first day of that month; anything else is a validation error."""
    import datetime

    from django.core.exceptions import ValidationError

    try:
        year, month = value.split("-")
        if len(year) != 4 or len(month) != 2:
            raise ValueError
        return datetime.date(int(year), int(month), 1)
    except ValueError:
        raise ValidationError("Give a whole month as YYYY-MM, e.g. 2025-03.") from None


class StatsFilter(ImplantationFilter):
    """The statistics endpoints' filters.

    Everyone may filter by the fields in ``PUBLIC``, with dates in whole months only; the
    rest (surgeon, patient, day-level dates, surgeon-sequence ranges, ...) are the registry
    coordinator's, because a free cut point lets two queries differ by one patient.
    """

    PUBLIC = ("centre", "indication", "device", "approach", "sex", "implanted_from", "implanted_to")

    sex = filters.ChoiceFilter(field_name="patient__sex", choices=Sex.choices)
    implanted_from = filters.CharFilter(method="filter_implanted_from", help_text="From this month on (YYYY-MM).")
    implanted_to = filters.CharFilter(method="filter_implanted_to", help_text="Up to the end of this month (YYYY-MM).")

    def filter_implanted_from(self, queryset, name, value):
        return queryset.filter(implanted_on__gte=month_start(value))

    def filter_implanted_to(self, queryset, name, value):
        first = month_start(value)
        following = (
            first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
        )
        return queryset.filter(implanted_on__lt=following)


class PatientFilter(filters.FilterSet):
    centre = filters.CharFilter(field_name="centre__code")
    born_after = filters.NumberFilter(field_name="birth_year", lookup_expr="gte")
    born_before = filters.NumberFilter(field_name="birth_year", lookup_expr="lte")

    class Meta:
        model = Patient
        fields = ["sex", "primary_tumour", "ras_status"]


def child_filter(model, date_field, extra_fields=()):
    """A filter set for an implantation's child records: by implantation, centre and date range."""
    attrs = {
        "centre": filters.CharFilter(field_name=f"{model.centre_lookup}__code"),
        f"{date_field}_after": filters.DateFilter(field_name=date_field, lookup_expr="gte"),
        f"{date_field}_before": filters.DateFilter(field_name=date_field, lookup_expr="lte"),
        "implantation": filters.NumberFilter(field_name="implantation_id"),
        "Meta": type("Meta", (), {"model": model, "fields": list(extra_fields)}),
    }
    return type(f"{model.__name__}Filter", (filters.FilterSet,), attrs)


TreatmentFilter = child_filter(Treatment, "given_on", ["drug", "dose_change"])
ComplicationFilter = child_filter(Complication, "onset_on", ["grade", "pump_lost"])
ComplicationFilter.base_filters["type"] = filters.CharFilter(
    field_name="type__code", help_text="Complication type code."
)
FollowUpFilter = child_filter(FollowUp, "contact_on", ["vital_status", "resected", "pump_never_used"])
LiverTestFilter = child_filter(LiverTest, "measured_on", ["is_baseline"])
PerfusionCheckFilter = child_filter(PerfusionCheck, "checked_on", ["extrahepatic_perfusion"])


class SystemicTherapyLineFilter(filters.FilterSet):
    centre = filters.CharFilter(field_name="patient__centre__code")
    patient = filters.NumberFilter(field_name="patient_id")

    class Meta:
        model = SystemicTherapyLine
        fields = ["regimen", "line_number"]


class SurgeonFilter(filters.FilterSet):
    centre = filters.CharFilter(field_name="centre__code")

    class Meta:
        model = Surgeon
        fields = ["active"]
