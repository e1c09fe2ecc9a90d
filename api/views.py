import csv

from django.contrib.auth import authenticate
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from knox.views import LogoutAllView, LogoutView
from rest_framework import exceptions, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from registry import vocabulary
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
from registry.services import delete_record
from reports.models import CentreReport
from sites import access
from sites.models import Centre, Surgeon

from . import filters, serializers
from .errors import ErrorSerializer
from .models import ExportLog
from .permissions import CanReadRegistry
from .renderers import EchoBuffer, csv_cell


def log_export(request, fmt, row_count, completed=True):
    return ExportLog.objects.create(
        user=request.user,
        endpoint=request.path,
        filters={key: request.query_params.getlist(key) for key in request.query_params if key != "format"},
        format=fmt,
        row_count=row_count,
        completed=completed,
    )


class ExportingListMixin:
    """List responses are logged as exports; ``?format=csv`` streams every matching row."""

    csv_chunk_size = 2000

    def list(self, request, *args, **kwargs):
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return self.stream_csv(request)
        response = super().list(request, *args, **kwargs)
        results = response.data.get("results", response.data) if isinstance(response.data, dict) else response.data
        log_export(request, "json", len(results))
        return response

    def stream_csv(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        serializer = self.get_serializer()
        columns = list(serializer.fields)
        log = log_export(request, "csv", 0, completed=False)

        def rows():
            writer = csv.writer(EchoBuffer())
            yield writer.writerow(columns)
            count = 0
            for record in queryset.iterator(chunk_size=self.csv_chunk_size):
                data = serializer.to_representation(record)
                yield writer.writerow([csv_cell(data.get(column)) for column in columns])
                count += 1
            ExportLog.objects.filter(pk=log.pk).update(row_count=count, completed=True)

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.basename}.csv"'
        return response


class RegistryViewSet(ExportingListMixin, viewsets.ModelViewSet):
    """Reads come from ``readable_by``, writes from ``editable_by``: the one scoping rule."""

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    ordering_fields = "__all__"

    def base_queryset(self):
        return self.queryset.all()

    def get_queryset(self):
        queryset = self.base_queryset()
        user = self.request.user
        if self.request.method in permissions.SAFE_METHODS:
            return queryset.readable_by(user)
        return queryset.editable_by(user)

    def perform_destroy(self, instance):
        delete_record(instance, user=self.request.user)


class CentreViewSet(RegistryViewSet):
    queryset = Centre.objects.all()
    serializer_class = serializers.CentreSerializer
    lookup_field = "code"
    filterset_fields = ["country", "active"]
    ordering_fields = ["code", "name", "country"]


class SurgeonViewSet(RegistryViewSet):
    queryset = Surgeon.objects.select_related("centre")
    serializer_class = serializers.SurgeonSerializer
    lookup_field = "code"
    filterset_class = filters.SurgeonFilter
    ordering_fields = ["code", "prior_pump_count"]


class PatientViewSet(RegistryViewSet):
    queryset = Patient.objects.select_related("centre")
    serializer_class = serializers.PatientSerializer
    filterset_class = filters.PatientFilter
    ordering_fields = ["id", "pseudonym", "birth_year"]


class ImplantationViewSet(RegistryViewSet):
    queryset = Implantation.objects.select_related("patient__centre", "surgeon")
    serializer_class = serializers.ImplantationSerializer
    filterset_class = filters.ImplantationFilter
    ordering_fields = ["id", "implanted_on", "indication"]

    def base_queryset(self):
        return self.queryset.with_derived()


class TreatmentViewSet(RegistryViewSet):
    queryset = Treatment.objects.all()
    serializer_class = serializers.TreatmentSerializer
    filterset_class = filters.TreatmentFilter
    ordering_fields = ["id", "given_on"]


class ComplicationViewSet(RegistryViewSet):
    queryset = Complication.objects.select_related("type")
    serializer_class = serializers.ComplicationSerializer
    filterset_class = filters.ComplicationFilter
    ordering_fields = ["id", "onset_on", "grade"]


class FollowUpViewSet(RegistryViewSet):
    queryset = FollowUp.objects.all()
    serializer_class = serializers.FollowUpSerializer
    filterset_class = filters.FollowUpFilter
    ordering_fields = ["id", "contact_on"]


class LiverTestViewSet(RegistryViewSet):
    queryset = LiverTest.objects.all()
    serializer_class = serializers.LiverTestSerializer
    filterset_class = filters.LiverTestFilter
    ordering_fields = ["id", "measured_on"]


class PerfusionCheckViewSet(RegistryViewSet):
    queryset = PerfusionCheck.objects.all()
    serializer_class = serializers.PerfusionCheckSerializer
    filterset_class = filters.PerfusionCheckFilter
    ordering_fields = ["id", "checked_on"]


class SystemicTherapyLineViewSet(RegistryViewSet):
    queryset = SystemicTherapyLine.objects.all()
    serializer_class = serializers.SystemicTherapyLineSerializer
    filterset_class = filters.SystemicTherapyLineFilter
    ordering_fields = ["id", "started_on", "line_number"]


class ComplicationTypeViewSet(ExportingListMixin, viewsets.ModelViewSet):
    """The complication vocabulary: everyone with a role reads it, the coordinator extends it."""

    queryset = ComplicationType.objects.all()
    serializer_class = serializers.ComplicationTypeSerializer
    lookup_field = "code"
    filterset_fields = ["category", "grading_system", "catheter_related", "active"]
    ordering_fields = ["code", "name"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    def perform_create(self, serializer):
        serializer.save()


FIXED_VOCABULARIES = {
    "sex": vocabulary.Sex,
    "primary_tumour": vocabulary.PrimaryTumour,
    "ras_status": vocabulary.RasStatus,
    "indication": vocabulary.Indication,
    "approach": vocabulary.Approach,
    "device": vocabulary.Device,
    "catheter_vessel": vocabulary.CatheterVessel,
    "never_treated_reason": vocabulary.NeverTreatedReason,
    "drug": vocabulary.Drug,
    "dose_unit": vocabulary.DoseUnit,
    "dose_change": vocabulary.DoseChange,
    "clavien_dindo": vocabulary.ClavienDindo,
    "management": vocabulary.Management,
    "response": vocabulary.Response,
    "resection_margin": vocabulary.ResectionMargin,
    "vital_status": vocabulary.VitalStatus,
    "pump_end_reason": vocabulary.PumpEndReason,
    "regimen": vocabulary.SystemicRegimen,
    "biologic": vocabulary.Biologic,
}


class VocabularyView(APIView):
    """Every fixed controlled vocabulary: code and label."""

    permission_classes = [CanReadRegistry]

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "additionalProperties": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}, "label": {"type": "string"}},
                        "required": ["code", "label"],
                    },
                },
            }
        }
    )
    def get(self, request):
        return Response(
            {
                name: [{"code": c.value, "label": str(c.label)} for c in choices]
                for name, choices in FIXED_VOCABULARIES.items()
            }
        )


class TokenView(APIView):
    """Exchange a username and password for an API token (sent as `Authorization: Token <token>`)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=serializers.TokenRequestSerializer,
        responses={200: serializers.TokenResponseSerializer, 400: ErrorSerializer, 429: ErrorSerializer},
        auth=[],
    )
    def post(self, request):
        body = serializers.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(request, username=body.validated_data["username"], password=body.validated_data["password"])
        if user is None or not access.can_use_api(user):
            raise exceptions.ValidationError({"non_field_errors": ["Unable to log in with these credentials."]})
        instance, token = AuthToken.objects.create(user=user)
        return Response({"token": token, "expiry": instance.expiry})


@extend_schema(
    request=None,
    description="Revoke the token this request is made with.",
    responses={204: OpenApiResponse(description="The token is revoked."), 401: ErrorSerializer},
)
class RevokeTokenView(LogoutView):
    """Revoke the token this request is made with."""


@extend_schema(
    request=None,
    description="Revoke every token of the requesting user.",
    responses={204: OpenApiResponse(description="All the user's tokens are revoked."), 401: ErrorSerializer},
)
class RevokeAllTokensView(LogoutAllView):
    """Revoke every token of the requesting user."""


class CentreReportViewSet(viewsets.ReadOnlyModelViewSet):
    """Monthly benchmark reports: a centre's users see their centres' reports, the coordinator all, investigators none."""

    permission_classes = [CanReadRegistry]
    serializer_class = serializers.CentreReportSerializer
    filterset_fields = ["status", "delivery_state"]
    ordering_fields = ["id", "sent_at"]

    def perform_content_negotiation(self, request, force=False):
        # The PDF itself is a file response; only its errors are rendered, always as JSON.
        if self.action == "pdf":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def get_queryset(self):
        return (
            CentreReport.objects.visible_to(self.request.user)
            .select_related("centre", "run")
            .order_by("-run__period", "centre__code", "pk")
        )

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(description="The report's PDF."), 404: ErrorSerializer}
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer])
    def pdf(self, request, pk=None):
        report = self.get_object()
        if not report.pdf:
            raise exceptions.NotFound("This report has not been rendered yet.")
        return FileResponse(
            report.pdf.open("rb"),
            content_type="application/pdf",
            filename=f"{report.centre.code}-{report.run.period:%Y-%m}.pdf",
        )
