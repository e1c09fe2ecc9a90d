"""The API's filters.

Every filter set derives from ``RegistryFilterSet``, which applies the rules that depend on who asks:

- centres and surgeons are named by code, patients and implantations by id; investigators name every
  one of them by the opaque code they were shown (``api.deidentify``). An unknown code is a 400 that
  names the parameter, never an empty list;
- investigators get no calendar-date filter (a date could be recovered by bisection) and give the
  implantation period in whole years;
- dates are ISO 8601 only (``2025-03-04``), whatever the server's locale.
"""

import datetime
import re
from dataclasses import dataclass

import django_filters as filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef

from registry import selectors
from registry.models import (
    Complication,
    ComplicationType,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    PumpModel,
    Readmission,
    SystemicTherapyLine,
    SystemicToxicity,
    Treatment,
)
from registry.vocabulary import Indication, Sex
from reports.models import CentreReport
from reports.outcomes import EXPERIENCE_THRESHOLD
from sites.models import Centre, Surgeon

from . import deidentify

DEFAULT_EXPERIENCE_THRESHOLD = EXPERIENCE_THRESHOLD

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_DATE_MESSAGE = "Give the date in ISO 8601 form, YYYY-MM-DD (e.g. 2025-03-04)."
NO_DATES_FOR_INVESTIGATORS = (
    "Calendar dates are not offered to investigators; on implantations, filter by implantation year "
    "(implanted_from / implanted_to as YYYY)."
)
WHOLE_YEARS_ONLY = "Whole years only for investigators: give YYYY (e.g. 2024), not a month or a date."
NOT_FOR_INVESTIGATORS = "Not offered to investigators (de-identified data)."


class IsoDateField(forms.DateField):
    """A date in ISO 8601 form only: django's default input formats would also take 03/04/2025."""

    input_formats = ["%Y-%m-%d"]
    default_error_messages = {"invalid": ISO_DATE_MESSAGE}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, str) and not ISO_DATE.match(value.strip()):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class IsoDateFilter(filters.DateFilter):
    field_class = IsoDateField


# --- Periods (implanted_from / implanted_to): whole months or whole years ------------------


@dataclass(frozen=True)
class Period:
    start: datetime.date
    end: datetime.date  # exclusive
    whole_year: bool


PERIOD_MESSAGE = "Give a whole month as YYYY-MM (e.g. 2025-03) or a whole year as YYYY (e.g. 2025)."


def parse_period(value):
    """'YYYY' or 'YYYY-MM' -> the Period it covers; anything else is a validation error."""
    match = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", value or "")
    if match is None:
        raise ValidationError(PERIOD_MESSAGE)
    year = int(match[1])
    if match[2] is None:
        return Period(datetime.date(year, 1, 1), datetime.date(year + 1, 1, 1), whole_year=True)
    month = int(match[2])
    if not 1 <= month <= 12:
        raise ValidationError(PERIOD_MESSAGE)
    start = datetime.date(year, month, 1)
    end = datetime.date(year + 1, 1, 1) if month == 12 else datetime.date(year, month + 1, 1)
    return Period(start, end, whole_year=False)


class PeriodField(forms.CharField):
    def clean(self, value):
        value = super().clean(value)
        return parse_period(value) if value else None


class PeriodFilter(filters.Filter):
    """Implantations from the start of a period (``bound="from"``) or up to its end (``bound="to"``)."""

    field_class = PeriodField

    def __init__(self, *args, bound, **kwargs):
        self.bound = bound
        super().__init__(*args, **kwargs)

    def filter(self, queryset, value):
        if value is None:
            return queryset
        if self.bound == "from":
            return queryset.filter(**{f"{self.field_name}__gte": value.start})
        return queryset.filter(**{f"{self.field_name}__lt": value.end})


# --- Codes: centres and surgeons by code, patients and implantations by id -------------------


class CodeFilter(filters.CharFilter):
    """A row named by its code (``code_field``) or its id, or by the investigator's opaque code of it.

    ``RegistryFilterSet.is_valid`` turns the value into the row's primary key (or an error naming
    the parameter); ``field_name`` is the path to that key.
    """

    def __init__(self, kind, model, *args, code_field=None, **kwargs):
        self.kind = kind
        self.target_model = model
        self.code_field = code_field
        super().__init__(*args, **kwargs)

    def resolve(self, value, request, deidentifier):
        """(primary key, None) or (None, error message)."""
        readable = self.target_model.objects.readable_by(request.user if request is not None else None)
        noun = self.kind.replace("-", " ")
        if deidentifier is not None:
            pk = deidentifier.decode(self.kind, value)
            if pk is None:
                prefix = deidentify.PREFIXES[self.kind]
                return None, f"'{value}' is not a {noun} code as shown to you ({prefix}- and 13 letters or digits)."
            if not readable.filter(pk=pk).exists():
                return None, f"Unknown {noun} '{value}'."
            return pk, None
        if self.code_field is not None:
            pk = readable.filter(**{self.code_field: value}).values_list("pk", flat=True).first()
            if pk is None:
                return None, f"Unknown {noun} '{value}'."
            return pk, None
        # By id (non-investigators): an id of no readable row simply matches nothing.
        try:
            pk = int(value)
        except ValueError:
            return None, f"Give the {noun}'s id, a whole number."
        return (pk, None) if 0 < pk < 2**63 else (None, f"Unknown {noun} '{value}'.")

    def filter(self, queryset, value):
        if value in (None, ""):
            return queryset
        return queryset.filter(**{self.field_name: value})


class RegistryFilterSet(filters.FilterSet):
    """The rules of the module docstring, applied after the form's own validation."""

    # Filters on what investigators are not shown (a centre's country, ...).
    IDENTIFYING_FILTERS = ()

    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.DateField: {"filter_class": IsoDateFilter},
    }

    def is_valid(self):
        valid = super().is_valid()
        if self.is_bound and not getattr(self, "_access_checked", False):
            self._access_checked = True
            self.apply_access_rules()
        return valid and not self.form.errors

    def apply_access_rules(self):
        form = self.form
        deidentifier = deidentify.for_request(self.request)
        for name, filter_ in self.filters.items():
            if name not in self.data or name in form.errors:
                continue
            value = form.cleaned_data.get(name)
            if deidentifier is not None:
                if name in self.IDENTIFYING_FILTERS:
                    form.add_error(name, NOT_FOR_INVESTIGATORS)
                    continue
                if isinstance(filter_, filters.DateFilter):
                    form.add_error(name, NO_DATES_FOR_INVESTIGATORS)
                    continue
                if isinstance(filter_, PeriodFilter) and value is not None and not value.whole_year:
                    form.add_error(name, WHOLE_YEARS_ONLY)
                    continue
            if isinstance(filter_, CodeFilter) and value not in (None, ""):
                pk, error = filter_.resolve(value, self.request, deidentifier)
                if error:
                    form.add_error(name, error)
                else:
                    form.cleaned_data[name] = pk


def centre_filter(field_name):
    return CodeFilter(
        "centre",
        Centre,
        code_field="code",
        field_name=field_name,
        help_text="Centre code (investigators: the centre's opaque code, C-…). An unknown centre is a 400.",
    )


def patient_filter():
    return CodeFilter(
        "patient", Patient, field_name="patient_id", help_text="Patient id (investigators: the opaque code, P-…)."
    )


def implantation_filter():
    return CodeFilter(
        "implantation",
        Implantation,
        field_name="implantation_id",
        help_text="Implantation id (investigators: the opaque code, I-…).",
    )


class ImplantationFilter(RegistryFilterSet):
    centre = centre_filter("patient__centre_id")
    surgeon = CodeFilter(
        "surgeon",
        Surgeon,
        code_field="code",
        field_name="surgeon_id",
        help_text="Surgeon code (investigators: the opaque code, S-…). An unknown surgeon is a 400.",
    )
    # distinct=False: DISTINCT would evaluate the derived columns of every matching row before the LIMIT.
    indication = filters.MultipleChoiceFilter(choices=Indication.choices, distinct=False)
    implanted_after = IsoDateFilter(
        field_name="implanted_on", lookup_expr="gte", help_text="On or after (YYYY-MM-DD). Not for investigators."
    )
    implanted_before = IsoDateFilter(
        field_name="implanted_on", lookup_expr="lte", help_text="On or before (YYYY-MM-DD). Not for investigators."
    )
    implanted_from = PeriodFilter(
        field_name="implanted_on",
        bound="from",
        help_text="From this month (YYYY-MM) or year (YYYY) on; investigators: whole years only.",
    )
    implanted_to = PeriodFilter(
        field_name="implanted_on",
        bound="to",
        help_text="Up to the end of this month (YYYY-MM) or year (YYYY); investigators: whole years only.",
    )
    treated = filters.BooleanFilter(method="filter_treated", help_text="At least one HAI dose given.")
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

    patient = patient_filter()

    def filter_treated(self, queryset, name, value):
        return queryset.filter(selectors.treated(value))

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


class StatsFilter(ImplantationFilter):
    """The statistics endpoints' filters.

    Everyone may filter by the fields in ``PUBLIC``, with dates in whole months only (investigators:
    whole years); the rest (surgeon, patient, day-level dates, surgeon-sequence ranges, ...) are the
    registry coordinator's, because a free cut point lets two queries differ by one patient.
    """

    PUBLIC = ("centre", "indication", "device", "approach", "sex", "implanted_from", "implanted_to")

    sex = filters.ChoiceFilter(field_name="patient__sex", choices=Sex.choices)


class CentreFilter(RegistryFilterSet):
    IDENTIFYING_FILTERS = ("country",)

    class Meta:
        model = Centre
        fields = ["country", "active"]


class PatientFilter(RegistryFilterSet):
    centre = centre_filter("centre_id")
    born_after = filters.NumberFilter(field_name="birth_year", lookup_expr="gte")
    born_before = filters.NumberFilter(field_name="birth_year", lookup_expr="lte")

    class Meta:
        model = Patient
        fields = ["sex", "primary_tumour", "ras_status"]


def child_filter(model, date_field, extra_fields=()):
    """A filter set for an implantation's child records: by implantation, centre and date range."""
    attrs = {
        "centre": centre_filter(f"{model.centre_lookup}_id"),
        f"{date_field}_after": IsoDateFilter(
            field_name=date_field, lookup_expr="gte", help_text="On or after (YYYY-MM-DD). Not for investigators."
        ),
        f"{date_field}_before": IsoDateFilter(
            field_name=date_field, lookup_expr="lte", help_text="On or before (YYYY-MM-DD). Not for investigators."
        ),
        "implantation": implantation_filter(),
        "Meta": type("Meta", (), {"model": model, "fields": list(extra_fields)}),
    }
    return type(f"{model.__name__}Filter", (RegistryFilterSet,), attrs)


TreatmentFilter = child_filter(Treatment, "given_on", ["drug", "dose_change"])
ComplicationFilter = child_filter(Complication, "onset_on", ["grade", "pump_lost"])
ComplicationFilter.base_filters["type"] = filters.CharFilter(
    field_name="type__code", help_text="Complication type code."
)
FollowUpFilter = child_filter(FollowUp, "contact_on", ["vital_status", "resected", "pump_never_used"])
LiverTestFilter = child_filter(LiverTest, "measured_on", ["is_baseline"])
PerfusionCheckFilter = child_filter(PerfusionCheck, "checked_on", ["extrahepatic_perfusion"])
SystemicToxicityFilter = child_filter(SystemicToxicity, "onset_on", ["term", "grade"])
ReadmissionFilter = child_filter(Readmission, "occurred_on", ["kind", "reason"])


class SystemicTherapyLineFilter(RegistryFilterSet):
    centre = centre_filter("patient__centre_id")
    patient = patient_filter()

    class Meta:
        model = SystemicTherapyLine
        fields = ["regimen", "line_number"]


class SurgeonFilter(RegistryFilterSet):
    centre = centre_filter("centre_id")

    class Meta:
        model = Surgeon
        fields = ["active"]


class PumpModelFilter(RegistryFilterSet):
    class Meta:
        model = PumpModel
        fields = ["kind", "active"]


class ComplicationTypeFilter(RegistryFilterSet):
    class Meta:
        model = ComplicationType
        fields = ["category", "grading_system", "catheter_related", "active"]


class CentreReportFilter(RegistryFilterSet):
    class Meta:
        model = CentreReport
        fields = ["status", "delivery_state"]


from registry.data_quality import RULE_TITLES  # noqa: E402  (data queries, issue 12)
from registry.models import DataQuery, DataQueryStatus  # noqa: E402


class DataQueryFilter(RegistryFilterSet):
    """Data queries by status, rule (a rule's code, or ``manual``) and centre (its code; unknown: 400)."""

    status = filters.ChoiceFilter(choices=DataQueryStatus.choices, help_text="open, answered or closed.")
    rule = filters.ChoiceFilter(choices=list(RULE_TITLES.items()), help_text="A rule's code, or 'manual' (by hand).")
    centre = centre_filter("patient__centre_id")

    class Meta:
        model = DataQuery
        fields = []
