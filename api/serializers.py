"""Field names here are a contract with clients; add fields, never rename them.

Writes go through ``registry.services.save_record``: the same validation and
history as the admin. Foreign keys may only point at records the user can edit.
"""

import copy

from django.core.exceptions import ImproperlyConfigured
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from registry import missing_data, refills, vocabulary
from registry.dates import parse_iso_date
from registry.models import (
    DATA_QUERY_RECORD_MODELS,
    VARIANT_FIELDS,
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
from registry.services import save_record
from reports.models import CentreReport
from sites import access
from sites.models import Centre, Surgeon

from . import deidentify


class EditableOnlyMixin:
    """A related field whose choices are the records the requesting user may edit."""

    def get_queryset(self):
        request = self.context.get("request")
        queryset = super().get_queryset()
        if request is None:
            return queryset.none()
        return queryset.editable_by(request.user)


class ScopedPrimaryKeyRelatedField(EditableOnlyMixin, serializers.PrimaryKeyRelatedField):
    pass


class ScopedSlugRelatedField(EditableOnlyMixin, serializers.SlugRelatedField):
    pass


def missing_data_codes(model):
    """The companions ``<field>_missing`` of ``model``'s fields that may carry a missing-data code
    (``registry.missing_data``): added after the existing fields, which keep their types."""
    return [missing_data.companion(name) for name in model.MISSING_DATA_FIELDS]


CONFIRMED_WARNINGS = "confirmed_warnings"


def confirmed_warnings_field():
    """Write-only: the codes of the soft warnings (registry.soft_warnings) the client confirms for this save."""
    return serializers.ListField(
        child=serializers.CharField(max_length=60),
        write_only=True,
        required=False,
        max_length=20,
        help_text="Soft warnings confirmed: the codes a previous 400 listed in `warnings`, sent again with the "
        "same values to save them. Each confirmation is kept with your name. Codes that are not current "
        "warnings are ignored; a hard rule's error cannot be confirmed.",
    )


class CodedSetField(serializers.ListField):
    """A set of codes of ``vocabulary`` (``registry.fields.CodedSetField``), refused with one message naming
    the unknown codes and the allowed ones (the model's own message)."""

    def __init__(self, vocabulary, **kwargs):
        self.vocabulary = vocabulary
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_empty", True)
        super().__init__(child=serializers.ChoiceField(choices=vocabulary.choices), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) or not hasattr(data, "__iter__") or isinstance(data, dict):
            raise serializers.ValidationError("Give a list of codes.", code="not_a_list")
        codes = list(data)
        if not all(isinstance(code, str) for code in codes):
            raise serializers.ValidationError("Give a list of codes.", code="invalid")
        unknown = [code for code in codes if code not in self.vocabulary.values]
        if unknown:
            raise serializers.ValidationError(
                f"Not a known code: {', '.join(unknown)}. Use one or more of: {', '.join(self.vocabulary.values)}.",
                code="invalid_choice",
            )
        if len(set(codes)) != len(codes):
            raise serializers.ValidationError("Give each code once.", code="duplicate")
        return codes


VARIANT_HANDLING_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "variant": {"type": "string", "enum": list(vocabulary.HepaticArteryVariant.values)},
            "handling": {"type": "string", "enum": list(vocabulary.VariantHandling.values)},
        },
        "required": ["variant", "handling"],
    },
}


@extend_schema_field(VARIANT_HANDLING_SCHEMA)
class HepaticArteryVariantsField(serializers.Field):
    """The variant hepatic arteries found and how each was handled, as a list of {variant, handling}.

    The model keeps one field per variant (``registry.models.VARIANT_FIELDS``); a variant left out of the
    list is absent (its field blank). Left out of a PATCH, nothing changes.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault(
            "help_text",
            "Each variant hepatic artery present, once, with how it was handled: "
            '[{"variant": "replaced_left", "handling": "ligated"}] (codes: GET /api/v1/vocabularies/, '
            "hepatic_artery_variant and variant_handling). A variant not listed is absent; [] for standard anatomy.",
        )
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, implantation):
        return [
            {"variant": variant.value, "handling": handling}
            for variant, handling in implantation.hepatic_artery_variants
        ]

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError('Give a list of {"variant": ..., "handling": ...} objects.')
        variants, handlings = vocabulary.HepaticArteryVariant, vocabulary.VariantHandling
        values, messages = dict.fromkeys(VARIANT_FIELDS.values(), ""), []
        seen = set()
        for number, item in enumerate(data, start=1):
            if not isinstance(item, dict) or set(item) - {"variant", "handling"}:
                messages.append(f'Item {number}: give an object with "variant" and "handling" only.')
                continue
            variant, handling = item.get("variant"), item.get("handling")
            if variant is None:
                messages.append(f"Item {number}: give the variant, one of: {', '.join(variants.values)}.")
            elif variant not in variants.values:
                messages.append(
                    f"Item {number}: {variant!r} is not a variant. Use one of: {', '.join(variants.values)}."
                )
            elif variant in seen:
                messages.append(f"Item {number}: {variant} is listed more than once; give each variant once.")
            if handling is None:
                messages.append(f"Item {number}: say how it was handled, one of: {', '.join(handlings.values)}.")
            elif handling not in handlings.values:
                messages.append(
                    f"Item {number}: {handling!r} is not how a variant is handled. Use one of: "
                    f"{', '.join(handlings.values)}."
                )
            if variant in variants.values:
                seen.add(variant)
                values[VARIANT_FIELDS[variants(variant)]] = handling
        if messages:
            raise serializers.ValidationError(messages)
        return values


class IsoDateField(serializers.DateField):
    """YYYY-MM-DD only, refused otherwise with the admin's message (registry.dates): 04/03/2026 is ambiguous."""

    def to_internal_value(self, value):
        try:
            return parse_iso_date(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error), code="invalid") from None


class RegistrySerializer(serializers.ModelSerializer):
    """De-identifies for investigators and saves through the service layer."""

    serializer_field_mapping = {**serializers.ModelSerializer.serializer_field_mapping, models.DateField: IsoDateField}

    class Meta:
        # Free text and centre-local details: never shown to investigators.
        identifying_fields = ()

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and access.must_deidentify(request.user):
            for name in getattr(self.Meta, "identifying_fields", ()):
                fields.pop(name, None)
        if self.Meta.model._meta.label_lower in DATA_QUERY_RECORD_MODELS:  # clinical records: soft warnings
            fields[CONFIRMED_WARNINGS] = confirmed_warnings_field()
        return fields

    def create(self, validated_data):
        confirmed = validated_data.pop(CONFIRMED_WARNINGS, ())
        return self._save(self.Meta.model(**validated_data), confirmed)

    def update(self, instance, validated_data):
        confirmed = validated_data.pop(CONFIRMED_WARNINGS, ())
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance, confirmed)

    def _save(self, instance, confirmed_warnings=()):
        try:
            return save_record(instance, user=self.context["request"].user, confirmed_warnings=confirmed_warnings)
        except DjangoValidationError as error:
            drf_error = serializers.ValidationError(as_serializer_error(error))
            drf_error.soft_warnings = getattr(error, "warnings", [])  # api.errors adds them to the error shape
            raise drf_error from error


class CentreSerializer(RegistrySerializer):
    class Meta(RegistrySerializer.Meta):
        model = Centre
        fields = ["code", "name", "country", "active"]


class SurgeonSerializer(RegistrySerializer):
    centre = ScopedSlugRelatedField(slug_field="code", queryset=Centre.objects.all())

    class Meta(RegistrySerializer.Meta):
        model = Surgeon
        fields = ["code", "centre", "prior_pump_count", "active"]


class PumpModelSerializer(serializers.ModelSerializer):
    """The pump catalogue (registry-wide, not patient data): read-only through the API."""

    class Meta:
        model = PumpModel
        fields = ["name", "manufacturer", "kind", "reservoir_volume_ml", "nominal_flow_ml_per_day", "active"]
        read_only_fields = fields


class ComplicationTypeSerializer(RegistrySerializer):
    class Meta(RegistrySerializer.Meta):
        model = ComplicationType
        fields = ["code", "name", "category", "grading_system", "catheter_related", "active"]


PSEUDONYM_SET_BY_COORDINATOR_ONLY = (
    "Pseudonyms are generated by the registry; only the registry coordinator may set one "
    "(when migrating patients from another registry)."
)


class PatientSerializer(RegistrySerializer):
    centre = ScopedSlugRelatedField(slug_field="code", queryset=Centre.objects.all())
    extrahepatic_sites = CodedSetField(
        vocabulary.ExtrahepaticDiseaseSite,
        help_text="Sites of extrahepatic disease at implant, codes of extrahepatic_disease_site "
        "(GET /api/v1/vocabularies/); only with extrahepatic_disease true.",
    )

    def validate_pseudonym(self, value):
        """Only the coordinator sets a pseudonym; anyone may send back the one a patient already has."""
        request = self.context.get("request")
        if request is not None and access.is_coordinator(request.user):
            return value
        if self.instance is not None and value == self.instance.pseudonym:
            return value
        if self.instance is None and value == "":
            return value  # empty: the registry generates one
        raise serializers.ValidationError(PSEUDONYM_SET_BY_COORDINATOR_ONLY)

    class Meta(RegistrySerializer.Meta):
        model = Patient
        fields = [
            "id",
            "pseudonym",
            "centre",
            "birth_year",
            "sex",
            "primary_tumour",
            "ras_status",
            "liver_metastases_count",
            "bilobar_disease",
            "extrahepatic_disease",
            "prior_systemic_lines",
            "consent_on",
            *missing_data_codes(Patient),
            # Issue 14: case mix at implant.
            "ecog",
            "cea_ng_per_ml",
            "clinical_risk_score",
            "braf_status",
            "msi_status",
            "extrahepatic_sites",
        ]
        identifying_fields = ("consent_on",)
        extra_kwargs = {
            "pseudonym": {
                "required": False,
                "help_text": "Registry pseudonym, generated by the registry. Only the registry coordinator may set "
                "one (a migration from another registry); anyone else sending a new one gets a 400.",
            },
            "consent_on": {"required": False},
        }


class ImplantationSerializer(RegistrySerializer):
    patient = ScopedPrimaryKeyRelatedField(queryset=Patient.objects.all())
    surgeon = ScopedSlugRelatedField(slug_field="code", queryset=Surgeon.objects.all())
    centre = serializers.CharField(
        source="patient.centre.code", read_only=True, help_text="The patient's centre (code)."
    )
    treated = serializers.BooleanField(
        read_only=True, help_text="At least one HAI dose was given (held cycles excluded)."
    )
    days_to_first_dose = serializers.IntegerField(read_only=True, allow_null=True)
    surgeon_sequence = serializers.IntegerField(
        read_only=True, help_text="The surgeon's pump number at this implantation, pre-registry pumps included."
    )
    pump_model = serializers.SlugRelatedField(
        slug_field="name",
        queryset=PumpModel.objects.all(),
        required=False,
        allow_null=True,
        help_text="The pump model's name in the catalogue (/api/v1/pump-models/); null for an arterial port.",
    )
    replaces = ScopedPrimaryKeyRelatedField(
        queryset=Implantation.objects.all(),
        required=False,  # left out of a PUT: unchanged
        allow_null=True,
        help_text="The id of the same patient's implantation whose pump this one replaces; null for a first pump.",
    )
    hepatic_artery_variants = HepaticArteryVariantsField()

    def get_unique_together_validators(self):
        # DRF would require ``replaces`` (the condition of the one-per-patient-and-date constraint) in every
        # body; the model's full_clean (registry.services.save_record) checks the constraint, same message.
        return []

    class Meta(RegistrySerializer.Meta):
        model = Implantation
        fields = [
            "id",
            # The variant fields are one list, hepatic_artery_variants (issue 14), after the other anatomy.
            *(name for name in Implantation.ENTRY_FIELDS if name not in VARIANT_FIELDS.values()),
            "hepatic_artery_variants",
            "never_treated_note",
            "centre",
            "treated",
            "days_to_first_dose",
            "surgeon_sequence",
            *missing_data_codes(Implantation),
            "replaces",
        ]
        identifying_fields = ("never_treated_note",)
        extra_kwargs = {"never_treated_note": {"required": False}}


class ImplantationChildSerializer(RegistrySerializer):
    implantation = ScopedPrimaryKeyRelatedField(queryset=Implantation.objects.all())


def computed_dose_of(treatment):
    """mg/kg/day this fill gives (``registry.refills.daily_dose``: the measured flow, else the nominal)."""
    dose = refills.daily_dose(treatment)
    return None if dose is None else dose[0]


class DerivedDecimalField(serializers.DecimalField):
    """A read-only decimal derived from the whole record by ``derive(record)``."""

    def __init__(self, derive, **kwargs):
        self.derive = derive
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, record):
        value = self.derive(record)
        return None if value is None else super().to_representation(value)


class TreatmentSerializer(ImplantationChildSerializer):
    measured_flow_ml_per_day = DerivedDecimalField(
        refills.flow_of,
        max_digits=6,
        decimal_places=2,
        help_text="Derived, mL/day: (volume filled at the previous refill − volume returned now) ÷ days since it; "
        "null without a previous refill with its filled volume, or without the returned volume.",
    )
    computed_dose_mg_per_kg_per_day = DerivedDecimalField(
        computed_dose_of,
        max_digits=8,
        decimal_places=3,
        help_text="Derived, mg/kg/day: drug concentration × flow ÷ body weight, with the measured flow, else the "
        "pump model's nominal flow. More than 10% from a stated mg/kg/day dose is the soft warning "
        "dose_differs_from_computed.",
    )
    liver_test = ScopedPrimaryKeyRelatedField(
        queryset=LiverTest.objects.all(),
        required=False,
        allow_null=True,
        help_text="The id of the same implantation's liver tests drawn for this refill (on its day or up to 7 days "
        "before).",
    )

    class Meta(RegistrySerializer.Meta):
        model = Treatment
        fields = [
            "id",
            "implantation",
            "given_on",
            "drug",
            "dose",
            "dose_unit",
            "dose_change",
            "dose_change_reason",
            # Issue 14: the refill.
            "hold_reason",
            "body_weight_kg",
            "returned_volume_ml",
            "filled_volume_ml",
            "drug_concentration_mg_per_ml",
            "measured_flow_ml_per_day",
            "computed_dose_mg_per_kg_per_day",
            "dexamethasone_mg",
            "heparin_units",
            "liver_test",
        ]
        identifying_fields = ("dose_change_reason",)
        extra_kwargs = {
            "dose_change_reason": {
                "required": False,
                "help_text": "A note on the reduction or hold, for the centre (never shown to investigators); "
                "the coded reason is hold_reason.",
            },
            "hold_reason": {"help_text": "Required for a reduced or held dose (codes: GET /api/v1/vocabularies/)."},
        }


class ComplicationSerializer(ImplantationChildSerializer):
    type = serializers.SlugRelatedField(slug_field="code", queryset=ComplicationType.objects.all())

    class Meta(RegistrySerializer.Meta):
        model = Complication
        fields = [
            "id",
            "implantation",
            "type",
            "onset_on",
            "grade",
            "clavien_dindo",
            "management",
            "pump_lost",
            "related_to_pump",
        ]


class FollowUpSerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = FollowUp
        fields = [
            "id",
            "implantation",
            "contact_on",
            "vital_status",
            "died_on",
            "response",
            "resected",
            "resection_on",
            "resection_margin",
            "hepatic_progression_on",
            "progression_on",
            "pump_ended_on",
            "pump_end_reason",
            "pump_explanted",
            "pump_never_used",
            *missing_data_codes(FollowUp),
        ]


class LiverTestSerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = LiverTest
        fields = [
            "id",
            "implantation",
            "measured_on",
            "is_baseline",
            "ast_u_per_l",
            "alp_u_per_l",
            "bilirubin_umol_per_l",
            *missing_data_codes(LiverTest),
            # Issue 13: ALT, and the laboratory's upper limits of normal.
            "alt_u_per_l",
            *LiverTest.UPPER_LIMIT_FIELDS,
        ]
        # The API's units are the registry's whatever unit a centre enters in: bilirubin in µmol/L.
        extra_kwargs = {
            "ast_u_per_l": {"help_text": "AST in U/L."},
            "alt_u_per_l": {"help_text": "ALT in U/L."},
            "alp_u_per_l": {"help_text": "Alkaline phosphatase in U/L."},
            "bilirubin_umol_per_l": {
                "help_text": "Total bilirubin in µmol/L (one decimal), whatever unit the centre enters it in: "
                "a value in mg/dL is sent multiplied by 17.1."
            },
            "ast_upper_limit": {"help_text": "The laboratory's upper limit of normal for AST, in U/L."},
            "alt_upper_limit": {"help_text": "The laboratory's upper limit of normal for ALT, in U/L."},
            "alp_upper_limit": {"help_text": "The laboratory's upper limit of normal for ALP, in U/L."},
            "bilirubin_upper_limit_umol_per_l": {
                "help_text": "The laboratory's upper limit of normal for total bilirubin, in µmol/L "
                "(one decimal; mg/dL × 17.1)."
            },
        }


class PerfusionCheckSerializer(ImplantationChildSerializer):
    extrahepatic_sites = CodedSetField(
        vocabulary.ExtrahepaticPerfusionSite,
        help_text="Where extrahepatic perfusion was seen, codes of extrahepatic_perfusion_site "
        "(GET /api/v1/vocabularies/); only with extrahepatic_perfusion true.",
    )

    class Meta(RegistrySerializer.Meta):
        model = PerfusionCheck
        fields = [
            "id",
            "implantation",
            "checked_on",
            "timing",
            "method",
            "extrahepatic_perfusion",
            # Issue 14: the perfusion findings.
            "modality",
            "extrahepatic_sites",
            "incomplete_hepatic_perfusion",
            "correction",
            "repeat_check_normal",
        ]
        extra_kwargs = {"modality": {"help_text": "Taken from the method when left empty."}}


class SystemicToxicitySerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = SystemicToxicity
        fields = ["id", "implantation", "term", "grade", "onset_on"]
        extra_kwargs = {
            "term": {"help_text": "CTCAE v5.0 term (GET /api/v1/vocabularies/)."},
            "grade": {"help_text": "CTCAE v5.0 grade, 1–5."},
        }


class ReadmissionSerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = Readmission
        fields = ["id", "implantation", "kind", "occurred_on", "reason"]


class SystemicTherapyLineSerializer(RegistrySerializer):
    patient = ScopedPrimaryKeyRelatedField(queryset=Patient.objects.all())

    class Meta(RegistrySerializer.Meta):
        model = SystemicTherapyLine
        fields = ["id", "patient", "line_number", "regimen", "biologic", "started_on", "ended_on"]


# --- What investigators get (issue 10; api.deidentify) ------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class OpaqueCodeField(serializers.Field):
    """A row's opaque code for the requesting investigator (``api.deidentify``), from the primary key at ``source``."""

    def __init__(self, kind, **kwargs):
        self.kind = kind
        kwargs.setdefault(
            "help_text", f"Opaque {kind.replace('-', ' ')} code ({deidentify.PREFIXES[kind]}-…), yours alone."
        )
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        deidentifier = deidentify.for_request(self.context.get("request"))
        if deidentifier is None:  # only investigator serializers have this field: fail closed
            raise ImproperlyConfigured("An opaque code outside a de-identified request.")
        return deidentifier.encode(self.kind, value)


@extend_schema_field(OpenApiTypes.INT)
class DaysFromField(serializers.Field):
    """Whole days from ``origin`` (an annotation of the queryset; ``fallback(record)`` without it) to a date."""

    def __init__(self, date_attr, origin, fallback, **kwargs):
        self.date_attr, self.origin, self.fallback = date_attr, origin, fallback
        super().__init__(source="*", read_only=True, allow_null=True, **kwargs)

    def to_representation(self, record):
        when = getattr(record, self.date_attr)
        origin = getattr(record, self.origin) if hasattr(record, self.origin) else self.fallback(record)
        if when is None or origin is None:
            return None
        if hasattr(when, "date"):  # a datetime: its day
            when = when.date()
        return (when - origin).days


def _implantation_date(record):
    return record.implantation.implanted_on


def _first_implantation_date(record):
    return record.patient.implantations.order_by("implanted_on").values_list("implanted_on", flat=True).first()


# Annotations the investigator views put on their querysets, read by DaysFromField.
IMPLANTATION_DATE = "implantation_date"
FIRST_IMPLANTATION_DATE = "first_implantation_date"
ORIGINS = {
    IMPLANTATION_DATE: (_implantation_date, "days from the implantation (day 0)"),
    FIRST_IMPLANTATION_DATE: (_first_implantation_date, "days from the patient's first implantation (day 0)"),
}


def investigator_serializer(base, kind, *, codes=(), drop=(), origin=None):
    """The read-only investigator shape of ``base``, field by field in the same order:

    - ``id`` becomes ``code``, the row's opaque code; the fields in ``codes`` ({field: (kind, source of
      the primary key)}) become opaque codes too (references, and centres' and surgeons' own codes);
    - a date ``<x>_on`` becomes ``<x>_day``, whole days from ``origin``; ``implanted_on`` becomes
      ``implantation_year``;
    - ``drop`` and the base's identifying fields (free text, consent date) are left out.

    Any other date, or a reference that is not named in ``codes``, is a configuration error: nothing
    reaches an investigator by default.
    """
    model = base.Meta.model
    codes = {"id": (kind, "pk"), **dict(codes)}
    dropped = {*drop, *getattr(base.Meta, "identifying_fields", ())}
    declared, names, dates = {}, [], []
    for name in base.Meta.fields:
        if name in dropped:
            continue
        if name in codes:
            out = "code" if name == "id" else name
            code_kind, source = codes[name]
            declared[out] = OpaqueCodeField(code_kind, source=source)
            names.append(out)
            continue
        try:
            model_field = model._meta.get_field(name)
        except Exception:  # a declared field (a derived value)
            model_field = None
        if isinstance(model_field, (models.DateField, models.DateTimeField)):
            if name == "implanted_on":
                declared["implantation_year"] = serializers.IntegerField(
                    source="implanted_on.year", read_only=True, help_text="The implantation's year (no date)."
                )
                names.append("implantation_year")
            else:
                if origin is None:
                    raise ImproperlyConfigured(f"{base.__name__}.{name}: a date with no origin to count days from.")
                fallback, described = ORIGINS[origin]
                out = name.removesuffix("_on") + "_day"
                declared[out] = DaysFromField(name, origin, fallback, help_text=f"{name}: {described}.")
                names.append(out)
                dates.append(name)
            continue
        field = base._declared_fields.get(name)
        if field is not None:
            if isinstance(field, (serializers.DateField, serializers.DateTimeField)):
                raise ImproperlyConfigured(f"{base.__name__}.{name}: a date field for investigators.")
            if isinstance(field, serializers.RelatedField) and not isinstance(field, serializers.SlugRelatedField):
                raise ImproperlyConfigured(f"{base.__name__}.{name}: a reference for investigators, not a code.")
            declared[name] = copy.deepcopy(field)
        elif model_field is not None and model_field.is_relation:
            raise ImproperlyConfigured(f"{base.__name__}.{name}: a reference for investigators, not a code.")
        names.append(name)
    # The base's help texts (units, say) reach investigators too; nothing else of its extra_kwargs does.
    help_texts = {
        name: {"help_text": options["help_text"]}
        for name, options in getattr(base.Meta, "extra_kwargs", {}).items()
        if name in names and "help_text" in options
    }
    meta = type("Meta", (), {"model": model, "fields": names, "read_only_fields": names, "extra_kwargs": help_texts})
    doc = (
        f"{model._meta.verbose_name.capitalize()} as investigators see it: no calendar date, no id, no real code. "
        + "Rows and references are opaque codes, the same for one investigator on every request"
        + (f"; dates are {ORIGINS[origin][1]}" if dates else "")
        + "."
    )
    return type(
        f"Investigator{base.__name__}", (serializers.ModelSerializer,), {"Meta": meta, "__doc__": doc, **declared}
    )


InvestigatorCentreSerializer = investigator_serializer(
    CentreSerializer, "centre", codes={"code": ("centre", "pk")}, drop=("name", "country")
)
InvestigatorSurgeonSerializer = investigator_serializer(
    SurgeonSerializer, "surgeon", codes={"code": ("surgeon", "pk"), "centre": ("centre", "centre_id")}
)
InvestigatorPatientSerializer = investigator_serializer(
    PatientSerializer, "patient", codes={"centre": ("centre", "centre_id")}, drop=("pseudonym",)
)
InvestigatorImplantationSerializer = investigator_serializer(
    ImplantationSerializer,
    "implantation",
    codes={
        "patient": ("patient", "patient_id"),
        "surgeon": ("surgeon", "surgeon_id"),
        "centre": ("centre", "patient.centre_id"),
        "replaces": ("implantation", "replaces_id"),  # the replaced implantation's code
    },
)
CHILD_CODES = {"implantation": ("implantation", "implantation_id")}
InvestigatorTreatmentSerializer = investigator_serializer(
    TreatmentSerializer,
    "treatment",
    codes={**CHILD_CODES, "liver_test": ("liver-test", "liver_test_id")},  # the same code as /liver-tests/ gives
    origin=IMPLANTATION_DATE,
)
InvestigatorComplicationSerializer = investigator_serializer(
    ComplicationSerializer, "complication", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorFollowUpSerializer = investigator_serializer(
    FollowUpSerializer, "follow-up", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorLiverTestSerializer = investigator_serializer(
    LiverTestSerializer, "liver-test", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorPerfusionCheckSerializer = investigator_serializer(
    PerfusionCheckSerializer, "perfusion-check", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorSystemicToxicitySerializer = investigator_serializer(
    SystemicToxicitySerializer, "systemic-toxicity", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorReadmissionSerializer = investigator_serializer(
    ReadmissionSerializer, "readmission", codes=CHILD_CODES, origin=IMPLANTATION_DATE
)
InvestigatorSystemicTherapyLineSerializer = investigator_serializer(
    SystemicTherapyLineSerializer,
    "systemic-therapy-line",
    codes={"patient": ("patient", "patient_id")},
    origin=FIRST_IMPLANTATION_DATE,
)


# --- ?expand=patient: the implantation's patient inline, as /patients/ gives it to the same role -------


class ImplantationWithPatientSerializer(ImplantationSerializer):
    """An implantation with its patient as an object (``?expand=patient``), pseudonym included."""

    # The patient endpoint's own serializer: the expanded patient can never show more than /patients/ does.
    patient = PatientSerializer(read_only=True, help_text="The patient, as GET /api/v1/patients/{id}/ gives it.")


class InvestigatorImplantationWithPatientSerializer(InvestigatorImplantationSerializer):
    """An implantation as investigators see it, with its de-identified patient as an object (``?expand=patient``)."""

    patient = InvestigatorPatientSerializer(
        read_only=True, help_text="The patient, de-identified, as GET /api/v1/patients/{code}/ gives it to you."
    )


# Keyed by the serializer the role gets, so the expansion cannot switch a role to another role's shape.
PATIENT_EXPANDED = {
    ImplantationSerializer: ImplantationWithPatientSerializer,
    InvestigatorImplantationSerializer: InvestigatorImplantationWithPatientSerializer,
}


class DeletionSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=500,
        help_text="Why the record is deleted; kept in the history of every row deleted, with your name. "
        "No patient identifiers.",
    )


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text=(
            "The current code of your authenticator app, or an unused recovery code (used up by this request). "
            "Required once you have set up two-factor authentication (/account/two-factor/)."
        ),
    )
    role = serializers.ChoiceField(
        choices=access.ROLES,
        required=False,
        help_text=(
            "The role the token acts in, one of yours. Required if you hold more than one; "
            "defaults to your only role otherwise."
        ),
    )


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField()
    role = serializers.ChoiceField(choices=access.ROLES, help_text="The role this token acts in.")


class VocabularyEntrySerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()


class CentreReportSerializer(serializers.ModelSerializer):
    centre = serializers.CharField(source="centre.code", read_only=True)
    period = serializers.DateField(source="run.period", format="%Y-%m", read_only=True)
    data_cut = serializers.DateTimeField(source="run.data_cut", read_only=True)
    method_version = serializers.CharField(source="run.method_version", read_only=True)
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = CentreReport
        fields = [
            "id",
            "centre",
            "period",
            "data_cut",
            "method_version",
            "status",
            "delivery_state",
            "checksum",
            "sent_at",
            "pdf_url",
        ]

    def get_pdf_url(self, report) -> str | None:
        if not report.pdf:
            return None
        request = self.context.get("request")
        path = f"/api/v1/reports/{report.pk}/pdf/"
        return request.build_absolute_uri(path) if request else path


from registry.models import DataQuery  # noqa: E402  (data queries, issue 12)


class DataQuerySerializer(serializers.ModelSerializer):
    """A question about a record, raised by a data-quality rule or by the coordinator, and the centre's answer."""

    # These field names are a contract (issue 12): add fields, never rename them.

    centre = serializers.CharField(source="patient.centre.code", read_only=True, help_text="The centre's code.")
    implantation = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="The implantation's id; null for a query about a patient or a systemic line."
    )

    class Meta:
        model = DataQuery
        fields = ["id", "centre", "implantation", "rule", "message", "status", "raised_on", "answer"]
        read_only_fields = fields
