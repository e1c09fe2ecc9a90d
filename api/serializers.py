"""Field names here are a contract with clients; add fields, never rename them.

Writes go through ``registry.services.save_record``: the same validation and
history as the admin. Foreign keys may only point at records the user can edit.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from registry.models import (
    Complication,
    ComplicationType,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    SystemicTherapyLine,
    Treatment,
)
from registry.services import save_record
from reports.models import CentreReport
from sites import access
from sites.models import Centre, Surgeon


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


class RegistrySerializer(serializers.ModelSerializer):
    """De-identifies for investigators and saves through the service layer."""

    class Meta:
        # Free text and centre-local details: never shown to investigators.
        identifying_fields = ()

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is not None and access.must_deidentify(request.user):
            for name in getattr(self.Meta, "identifying_fields", ()):
                fields.pop(name, None)
        return fields

    def create(self, validated_data):
        return self._save(self.Meta.model(**validated_data))

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self._save(instance)

    def _save(self, instance):
        try:
            return save_record(instance, user=self.context["request"].user)
        except DjangoValidationError as error:
            raise serializers.ValidationError(as_serializer_error(error)) from error


class CentreSerializer(RegistrySerializer):
    class Meta(RegistrySerializer.Meta):
        model = Centre
        fields = ["code", "name", "country", "active"]


class SurgeonSerializer(RegistrySerializer):
    centre = ScopedSlugRelatedField(slug_field="code", queryset=Centre.objects.all())

    class Meta(RegistrySerializer.Meta):
        model = Surgeon
        fields = ["code", "centre", "prior_pump_count", "active"]


class ComplicationTypeSerializer(RegistrySerializer):
    class Meta(RegistrySerializer.Meta):
        model = ComplicationType
        fields = ["code", "name", "category", "grading_system", "catheter_related", "active"]


class PatientSerializer(RegistrySerializer):
    centre = ScopedSlugRelatedField(slug_field="code", queryset=Centre.objects.all())

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
        ]
        identifying_fields = ("consent_on",)
        extra_kwargs = {"pseudonym": {"required": False}, "consent_on": {"required": False}}


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

    class Meta(RegistrySerializer.Meta):
        model = Implantation
        fields = [
            "id",
            *Implantation.ENTRY_FIELDS,
            "never_treated_note",
            "centre",
            "treated",
            "days_to_first_dose",
            "surgeon_sequence",
        ]
        identifying_fields = ("never_treated_note",)
        extra_kwargs = {"never_treated_note": {"required": False}}


class ImplantationChildSerializer(RegistrySerializer):
    implantation = ScopedPrimaryKeyRelatedField(queryset=Implantation.objects.all())


class TreatmentSerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = Treatment
        fields = ["id", "implantation", "given_on", "drug", "dose", "dose_unit", "dose_change", "dose_change_reason"]
        identifying_fields = ("dose_change_reason",)
        extra_kwargs = {"dose_change_reason": {"required": False}}


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
        ]


class PerfusionCheckSerializer(ImplantationChildSerializer):
    class Meta(RegistrySerializer.Meta):
        model = PerfusionCheck
        fields = ["id", "implantation", "checked_on", "timing", "method", "extrahepatic_perfusion"]


class SystemicTherapyLineSerializer(RegistrySerializer):
    patient = ScopedPrimaryKeyRelatedField(queryset=Patient.objects.all())

    class Meta(RegistrySerializer.Meta):
        model = SystemicTherapyLine
        fields = ["id", "patient", "line_number", "regimen", "biologic", "started_on", "ended_on"]


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField()


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
