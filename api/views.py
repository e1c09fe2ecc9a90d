import csv

from django.contrib.auth import authenticate
from django.db.models import F, OuterRef, Subquery
from django.http import FileResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from knox.views import LogoutAllView, LogoutView
from rest_framework import exceptions, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from registry import refills, vocabulary
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
from registry.services import delete_record
from reports.models import CentreReport
from sites import access, reads
from sites.models import Centre, Surgeon

from . import filters, serializers, tokens
from .authentication import RoleTokenAuthentication
from .deidentify import for_request as deidentifier_for
from .errors import ErrorSerializer
from .models import ExportLog
from .parameters import StrictQueryParameters
from .permissions import CanReadRegistry
from .preconditions import ConditionalWritesMixin
from .releases import ReadsReleases, reading_stream
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


def csv_columns(serializer):
    """(heading, field, inner field) per column. A spreadsheet cell holds no object: an expanded record's
    fields are columns of their own, ``patient.birth_year``."""
    columns = []
    for name, field in serializer.fields.items():
        if isinstance(field, BaseSerializer):
            columns += [
                (f"{name}.{inner}", name, inner)
                for inner, inner_field in field.fields.items()
                if not inner_field.write_only
            ]
        else:
            columns.append((name, name, None))
    return columns


class ExportingListMixin:
    """``?format=csv`` streams every matching row and is logged as an export (``ExportLog``).

    A page of JSON is not an export (issue 17, item 4): the read log (``sites.reads``) records who read
    which patients' rows, once the response is sent; the export log keeps the exports only (CSV here, the
    analysis dataset in ``api.analysis``).
    """

    csv_chunk_size = 2000

    def list(self, request, *args, **kwargs):
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return self.stream_csv(request)
        return super().list(request, *args, **kwargs)

    def stream_csv(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        serializer = self.get_serializer()
        columns = csv_columns(serializer)
        log = log_export(request, "csv", 0, completed=False)
        # Each row is noted as it streams; the read log's row is written when the stream closes (sites.reads).
        records = reads.noting(request, queryset.iterator(chunk_size=self.csv_chunk_size), queryset.model)

        def rows():
            writer = csv.writer(EchoBuffer())
            yield writer.writerow([heading for heading, _, _ in columns])
            count = 0
            for record in records:
                data = serializer.to_representation(record)
                yield writer.writerow(
                    [
                        csv_cell(data.get(name) if inner is None else (data.get(name) or {}).get(inner))
                        for _, name, inner in columns
                    ]
                )
                count += 1
            ExportLog.objects.filter(pk=log.pk).update(row_count=count, completed=True)

        # Streamed after the view has returned: an investigator's rows still come from their release, and
        # from the replica if the view read there.
        stream = reading_stream(request, rows())
        response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.basename}.csv"'
        return response


INVESTIGATOR_SHAPE = (
    " Investigators get it de-identified: no calendar date (the implantation's year, other dates as whole days "
    "from the implantation, day 0), no id, pseudonym or real centre or surgeon code: each row and each reference "
    "is an opaque code, the same for one investigator on every request and different for another. They send these "
    "codes back in detail URLs and filters, filter implantations by whole years only and order by no date."
)


class RegistryViewSet(
    ReadsReleases, ConditionalWritesMixin, StrictQueryParameters, ExportingListMixin, viewsets.ModelViewSet
):
    """Reads come from ``readable_by``, writes from ``editable_by``: the one scoping rule.

    Investigators (``access.must_deidentify``) get ``investigator_serializer_class`` (api.serializers,
    ``investigator_serializer``), rows named by opaque codes of ``opaque_kind`` (api.deidentify), the
    queryset annotated with the date their days count from (``days_origin``), and may order only by
    ``investigator_ordering_fields``.
    """

    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]
    ordering_fields = "__all__"
    opaque_kind = None
    investigator_serializer_class = None
    investigator_ordering_fields = ()
    days_origin = None

    @property
    def deidentified(self):
        """Does this request get the de-identified shapes (also while the schema is generated)?"""
        request = getattr(self, "request", None)
        return request is not None and access.must_deidentify(request.user)

    @property
    def deidentifier(self):
        return deidentifier_for(getattr(self, "request", None))

    def get_serializer_class(self):
        if self.deidentified:
            if self.investigator_serializer_class is None:  # fail closed
                raise exceptions.PermissionDenied("Not available de-identified.")
            return self.investigator_serializer_class
        return super().get_serializer_class()

    def base_queryset(self):
        return self.queryset.all()

    def get_queryset(self):
        queryset = self.base_queryset()
        user = self.request.user
        if self.request.method in permissions.SAFE_METHODS:
            queryset = queryset.readable_by(user)
            if self.deidentified:
                queryset = self.annotate_days_origin(queryset)
            return queryset
        return queryset.editable_by(user)

    def annotate_days_origin(self, queryset):
        """The date investigators' days count from, in the same query (no query per row)."""
        if self.days_origin == serializers.IMPLANTATION_DATE:
            return queryset.annotate(**{self.days_origin: F("implantation__implanted_on")})
        if self.days_origin == serializers.FIRST_IMPLANTATION_DATE:
            first = Implantation.objects.filter(patient=OuterRef("patient_id")).order_by("implanted_on", "pk")
            return queryset.annotate(**{self.days_origin: Subquery(first.values("implanted_on")[:1])})
        return queryset

    def get_object(self):
        """Investigators name the row by its opaque code; one that is not theirs, or of no row, is a 404."""
        deidentifier = self.deidentifier
        if deidentifier is None:
            return reads.note(self.request, super().get_object())  # reads are logged (sites.reads)
        code = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        pk = deidentifier.decode(self.opaque_kind, code)
        if pk is None:
            raise exceptions.NotFound()
        record = get_object_or_404(self.filter_queryset(self.get_queryset()), pk=pk)
        self.check_object_permissions(self.request, record)
        return reads.note(self.request, record)

    def filter_queryset(self, queryset):
        # One row by its key: list filters and ordering have nothing to do (issue 16). Strict parameters
        # still refuse a filter sent to a record's URL (api.parameters).
        if self.detail:
            return queryset
        return super().filter_queryset(queryset)

    def paginate_queryset(self, queryset):
        """A list response's page of rows is noted as read (sites.reads; investigators' too, with real ids)."""
        page = super().paginate_queryset(queryset)
        reads.note(self.request, page if page is not None else queryset)  # unpaginated: read when written
        return page

    def perform_destroy(self, instance):
        data = self.request.data if isinstance(self.request.data, dict) else {}
        delete_record(instance, user=self.request.user, reason=data.get("reason", ""))

    LATE_ENTRY_HEADER = "Late-Entry"

    def finalize_response(self, request, response, *args, **kwargs):
        """A write of a record dated in a month whose report already ran says so (issue 13, reports.late_entries)."""
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_tagged_record", None)
        if record is not None and request.method in ("POST", "PUT", "PATCH") and 200 <= response.status_code < 300:
            from reports.late_entries import late_entry_notice

            notice = late_entry_notice(record)
            if notice:
                response[self.LATE_ENTRY_HEADER] = notice
        return response


class CentreViewSet(RegistryViewSet):
    __doc__ = (
        "Centres. Investigators get each centre's opaque code and `active` only (no name, code or country)."
        + INVESTIGATOR_SHAPE
    )

    queryset = Centre.objects.all()
    serializer_class = serializers.CentreSerializer
    investigator_serializer_class = serializers.InvestigatorCentreSerializer
    opaque_kind = "centre"
    lookup_field = "code"
    filterset_class = filters.CentreFilter
    ordering_fields = ["code", "name", "country"]


class SurgeonViewSet(RegistryViewSet):
    __doc__ = (
        "Surgeons, known by code. Investigators get opaque surgeon and centre codes, `prior_pump_count` and `active`."
        + INVESTIGATOR_SHAPE
    )

    queryset = Surgeon.objects.select_related("centre")
    serializer_class = serializers.SurgeonSerializer
    investigator_serializer_class = serializers.InvestigatorSurgeonSerializer
    opaque_kind = "surgeon"
    lookup_field = "code"
    filterset_class = filters.SurgeonFilter
    ordering_fields = ["code", "prior_pump_count"]
    investigator_ordering_fields = ["prior_pump_count"]


class PatientViewSet(RegistryViewSet):
    __doc__ = (
        "Patients by registry pseudonym (no name, birth date or hospital number). Investigators get no pseudonym."
        + INVESTIGATOR_SHAPE
    )

    queryset = Patient.objects.select_related("centre")
    serializer_class = serializers.PatientSerializer
    investigator_serializer_class = serializers.InvestigatorPatientSerializer
    opaque_kind = "patient"
    filterset_class = filters.PatientFilter
    ordering_fields = ["id", "pseudonym", "birth_year"]
    investigator_ordering_fields = ["birth_year"]


EXPAND = "expand"
EXPANDABLE = ("patient",)
EXPAND_PARAMETER = OpenApiParameter(
    EXPAND,
    OpenApiTypes.STR,
    enum=list(EXPANDABLE),
    description="`patient`: each implantation's patient as an object instead of its id (for investigators, "
    "its opaque code): the fields GET /api/v1/patients/{id}/ gives you, so rows read on their own. "
    "Anything else is a 400.",
)


def expansions(request, expandable):
    """What ``?expand=`` names (repeated or comma-separated); anything not in ``expandable`` is a 400."""
    names = [name.strip() for value in request.query_params.getlist(EXPAND) for name in value.split(",")]
    unknown = [name for name in names if name not in expandable]
    if unknown:
        raise exceptions.ValidationError(
            {
                EXPAND: [
                    f"Cannot expand {', '.join(repr(name) for name in unknown)}. "
                    f"This endpoint expands: {', '.join(expandable)}."
                ]
            }
        )
    return frozenset(names)


@extend_schema_view(
    list=extend_schema(parameters=[EXPAND_PARAMETER]), retrieve=extend_schema(parameters=[EXPAND_PARAMETER])
)
class ImplantationViewSet(RegistryViewSet):
    __doc__ = (
        "Implantations (the index event) with their derived values. "
        "Investigators get `implantation_year`, not `implanted_on`. "
        "With `?expand=patient`, each row carries its patient as an object." + INVESTIGATOR_SHAPE
    )

    # The patient (and its centre) come in the row's own query: expanding costs no query. So does the
    # pump model's name (a query per row before issue 16's profile found it).
    queryset = Implantation.objects.select_related("patient__centre", "surgeon", "pump_model")
    serializer_class = serializers.ImplantationSerializer
    investigator_serializer_class = serializers.InvestigatorImplantationSerializer
    opaque_kind = "implantation"
    filterset_class = filters.ImplantationFilter
    ordering_fields = ["id", "implanted_on", "indication"]
    investigator_ordering_fields = ["indication"]
    expanded = frozenset()

    def base_queryset(self):
        return self.queryset.with_derived()

    def allowed_query_parameters(self, request):
        allowed = super().allowed_query_parameters(request)
        # Reads only: a write's response is the record as written, in its contract shape.
        return allowed | {EXPAND} if self.action in ("list", "retrieve") else allowed

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.expanded = expansions(request, EXPANDABLE)

    def get_serializer_class(self):
        serializer_class = super().get_serializer_class()
        if "patient" in self.expanded:
            return serializers.PATIENT_EXPANDED[serializer_class]
        return serializer_class


class TreatmentViewSet(RegistryViewSet):
    __doc__ = (
        "HAI doses (and held cycles), one per refill, with the refill's measured flow and computed dose (derived). "
        "Investigators get `given_day`, days from the implantation, and the linked liver tests' opaque code."
        + INVESTIGATOR_SHAPE
    )

    queryset = Treatment.objects.all()
    serializer_class = serializers.TreatmentSerializer
    investigator_serializer_class = serializers.InvestigatorTreatmentSerializer
    opaque_kind = "treatment"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.TreatmentFilter
    ordering_fields = ["id", "given_on"]

    def base_queryset(self):
        # The measured flow and the computed dose of each row in the list's one query (api.serializers).
        return refills.with_previous_refill(self.queryset.select_related("implantation__pump_model"))


class ComplicationViewSet(RegistryViewSet):
    __doc__ = "Complications. Investigators get `onset_day`, days from the implantation." + INVESTIGATOR_SHAPE

    queryset = Complication.objects.select_related("type")
    serializer_class = serializers.ComplicationSerializer
    investigator_serializer_class = serializers.InvestigatorComplicationSerializer
    opaque_kind = "complication"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.ComplicationFilter
    ordering_fields = ["id", "onset_on", "grade"]
    investigator_ordering_fields = ["grade"]


class FollowUpViewSet(RegistryViewSet):
    __doc__ = (
        "Follow-up contacts. Investigators get `contact_day`, `died_day`, `resection_day`, "
        "`hepatic_progression_day`, `progression_day`, `pump_ended_day`: days from the implantation."
        + INVESTIGATOR_SHAPE
    )

    queryset = FollowUp.objects.all()
    serializer_class = serializers.FollowUpSerializer
    investigator_serializer_class = serializers.InvestigatorFollowUpSerializer
    opaque_kind = "follow-up"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.FollowUpFilter
    ordering_fields = ["id", "contact_on"]


class LiverTestViewSet(RegistryViewSet):
    __doc__ = (
        "Liver tests. Investigators get `measured_day`, days from the implantation (negative for a baseline)."
        + INVESTIGATOR_SHAPE
    )

    queryset = LiverTest.objects.all()
    serializer_class = serializers.LiverTestSerializer
    investigator_serializer_class = serializers.InvestigatorLiverTestSerializer
    opaque_kind = "liver-test"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.LiverTestFilter
    ordering_fields = ["id", "measured_on"]


class PerfusionCheckViewSet(RegistryViewSet):
    __doc__ = "Perfusion checks. Investigators get `checked_day`, days from the implantation." + INVESTIGATOR_SHAPE

    queryset = PerfusionCheck.objects.all()
    serializer_class = serializers.PerfusionCheckSerializer
    investigator_serializer_class = serializers.InvestigatorPerfusionCheckSerializer
    opaque_kind = "perfusion-check"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.PerfusionCheckFilter
    ordering_fields = ["id", "checked_on"]


class SystemicToxicityViewSet(RegistryViewSet):
    __doc__ = (
        "Systemic toxicities (CTCAE v5.0 term and grade). Investigators get `onset_day`, days from the implantation."
        + INVESTIGATOR_SHAPE
    )

    queryset = SystemicToxicity.objects.all()
    serializer_class = serializers.SystemicToxicitySerializer
    investigator_serializer_class = serializers.InvestigatorSystemicToxicitySerializer
    opaque_kind = "systemic-toxicity"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.SystemicToxicityFilter
    ordering_fields = ["id", "onset_on", "grade"]
    investigator_ordering_fields = ["grade"]


class ReadmissionViewSet(RegistryViewSet):
    __doc__ = (
        "Readmissions and reoperations. Investigators get `occurred_day`, days from the implantation."
        + INVESTIGATOR_SHAPE
    )

    queryset = Readmission.objects.all()
    serializer_class = serializers.ReadmissionSerializer
    investigator_serializer_class = serializers.InvestigatorReadmissionSerializer
    opaque_kind = "readmission"
    days_origin = serializers.IMPLANTATION_DATE
    filterset_class = filters.ReadmissionFilter
    ordering_fields = ["id", "occurred_on"]


class SystemicTherapyLineViewSet(RegistryViewSet):
    __doc__ = (
        "Systemic therapy lines. Investigators get `started_day` and `ended_day`, days from the patient's first "
        "implantation (negative before it; null without one)." + INVESTIGATOR_SHAPE
    )

    queryset = SystemicTherapyLine.objects.all()
    serializer_class = serializers.SystemicTherapyLineSerializer
    investigator_serializer_class = serializers.InvestigatorSystemicTherapyLineSerializer
    opaque_kind = "systemic-therapy-line"
    days_origin = serializers.FIRST_IMPLANTATION_DATE
    filterset_class = filters.SystemicTherapyLineFilter
    ordering_fields = ["id", "started_on", "line_number"]
    investigator_ordering_fields = ["line_number"]


class ComplicationTypeViewSet(
    ReadsReleases, ConditionalWritesMixin, StrictQueryParameters, ExportingListMixin, viewsets.ModelViewSet
):
    """The complication vocabulary: everyone with a role reads it, the coordinator extends it."""

    queryset = ComplicationType.objects.all()
    serializer_class = serializers.ComplicationTypeSerializer
    lookup_field = "code"
    filterset_class = filters.ComplicationTypeFilter
    ordering_fields = ["code", "name"]
    investigator_ordering_fields = ["code", "name"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]


class PumpModelViewSet(ReadsReleases, StrictQueryParameters, ExportingListMixin, viewsets.ReadOnlyModelViewSet):
    """The pump catalogue: each model's reservoir volume and nominal flow rate. Every role reads it, investigators
    too (it is not patient data); the coordinator keeps it in the admin. A model is named by its `name`, the
    value of an implantation's `pump_model`; inactive models stay on old records but are not chosen for new ones."""

    permission_classes = [CanReadRegistry]
    queryset = PumpModel.objects.all()
    serializer_class = serializers.PumpModelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"  # a name may hold dots ("Model 3.0")
    filterset_class = filters.PumpModelFilter
    ordering_fields = ["name", "manufacturer"]
    investigator_ordering_fields = ["name", "manufacturer"]


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
    "systemic_toxicity_term": vocabulary.SystemicToxicityTerm,
    "readmission_kind": vocabulary.ReadmissionKind,
    "readmission_reason": vocabulary.ReadmissionReason,
    # Issue 14: the richer record.
    "hold_reason": vocabulary.HoldReason,
    "hepatic_artery_variant": vocabulary.HepaticArteryVariant,
    "variant_handling": vocabulary.VariantHandling,
    "catheter_tip_position": vocabulary.CatheterTipPosition,
    "perfusion_modality": vocabulary.PerfusionModality,
    "extrahepatic_perfusion_site": vocabulary.ExtrahepaticPerfusionSite,
    "perfusion_correction": vocabulary.PerfusionCorrection,
    "braf_status": vocabulary.BrafStatus,
    "msi_status": vocabulary.MsiStatus,
    "extrahepatic_disease_site": vocabulary.ExtrahepaticDiseaseSite,
}


class VocabularyView(StrictQueryParameters, APIView):
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


DATA_DICTIONARY_ROW = {
    "type": "object",
    "properties": {
        "form": {"type": "string", "description": "The form (kind of record), e.g. implantation."},
        "field": {"type": "string", "description": "The field's name in the API and the CSV import."},
        "label": {"type": "string"},
        "type": {
            "type": "string",
            "enum": ["date", "date and time", "integer", "decimal", "text", "yes/no", "choice", "reference"],
        },
        "unit": {"type": "string", "description": "e.g. U/L, µmol/L, min, mL, days; empty when none."},
        "required": {"type": "boolean"},
        "allowed_values": {
            "type": "string",
            "description": "Choice codes with labels ('code = label; ...'), or what a reference refers to.",
        },
        "range": {"type": "string", "description": "Minimum–maximum from the validators; empty when none."},
        "missing_code_field": {
            "type": "string",
            "description": "The companion field that carries a missing-data code for this field; empty when none.",
        },
        "help_text": {"type": "string"},
        "note": {"type": "string", "description": "Set on free-text notes never shown to investigators."},
    },
    "required": ["form", "field", "label", "type", "unit", "required", "allowed_values", "range"],
}


class DataDictionaryView(StrictQueryParameters, APIView):
    """The data dictionary: one row per field of every form a data manager fills.

    Type, unit, whether required, allowed values (choice codes with labels; for a reference, what it refers
    to), range and missing-data code field. `?format=csv` gives the same rows as a spreadsheet.
    """

    permission_classes = [CanReadRegistry]

    @extend_schema(responses={200: {"type": "array", "items": DATA_DICTIONARY_ROW}})
    def get(self, request):
        from registry import data_dictionary

        return Response(data_dictionary.rows())


class TokenView(StrictQueryParameters, APIView):
    """Exchange a username and password (and, with two-factor, a code) for an API token acting in one role.

    Sent as `Authorization: Token <token>`. A user with several roles names the one the token acts in
    (`role`). Repeated failures lock the username and the address out for a while (429).
    """

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=serializers.TokenRequestSerializer,
        responses={
            200: serializers.TokenResponseSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Wrong credentials or code, a missing code, a role you do not hold or must name, "
                "or two-factor authentication required but not set up (enrol at /account/two-factor/).",
            ),
            403: OpenApiResponse(ErrorSerializer, description="Too many unexpired tokens: revoke some first."),
            429: OpenApiResponse(
                ErrorSerializer, description="Too many requests, or locked out after repeated failed logins."
            ),
        },
        auth=[],
    )
    def post(self, request):
        body = serializers.TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None and getattr(request, "axes_locked_out", False):
            raise tokens.LockedOut(request)
        if user is None or not access.can_use_api(user):
            raise exceptions.ValidationError({"non_field_errors": ["Unable to log in with these credentials."]})
        # Role and token limit first: a recovery code is used up by the second-factor check.
        role = tokens.choose_role(user, data.get("role"))
        tokens.check_token_limit(user)
        tokens.check_second_factor(request, user, data.get("otp", ""))
        instance, token = tokens.create_token(user, role)
        tokens.record_api_login(request, user)
        return Response({"token": token, "expiry": instance.expiry, "role": instance.registry_role.role})


@extend_schema(
    request=None,
    description="Revoke the token this request is made with.",
    responses={204: OpenApiResponse(description="The token is revoked."), 401: ErrorSerializer},
)
class RevokeTokenView(StrictQueryParameters, LogoutView):
    """Revoke the token this request is made with."""

    # The registry's one token scheme (a token without a role is refused here too).
    authentication_classes = (RoleTokenAuthentication,)


@extend_schema(
    request=None,
    description="Revoke every token of the requesting user.",
    responses={204: OpenApiResponse(description="All the user's tokens are revoked."), 401: ErrorSerializer},
)
class RevokeAllTokensView(StrictQueryParameters, LogoutAllView):
    """Revoke every token of the requesting user."""

    authentication_classes = (RoleTokenAuthentication,)


class CentreReportViewSet(ReadsReleases, StrictQueryParameters, viewsets.ReadOnlyModelViewSet):
    """Monthly benchmark reports: a centre's users see their centres' reports, the coordinator all, investigators none."""

    permission_classes = [CanReadRegistry]
    serializer_class = serializers.CentreReportSerializer
    filterset_class = filters.CentreReportFilter
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


from registry.models import DataQuery  # noqa: E402  (data queries, issue 12)


class CanReadDataQueries(permissions.BasePermission):
    """Data queries are operational, not research data (``access.can_read_data_queries``): investigators get a 403."""

    message = "Data queries are for the coordinator and the centres' own users, not for investigators."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and access.can_read_data_queries(user))


class DataQueryViewSet(StrictQueryParameters, viewsets.ReadOnlyModelViewSet):
    """Data queries: raised by the data-quality rules or by the coordinator, answered by the centre.

    A centre's users see their centres' queries, the coordinator all; investigators none (403: a query names
    a record by its id and quotes its dates and values). Filters: `status` (open, answered, closed), `rule`
    (a rule's code, or `manual`), `centre` (code).
    """

    permission_classes = [CanReadDataQueries]
    serializer_class = serializers.DataQuerySerializer
    filterset_class = filters.DataQueryFilter
    ordering_fields = ["id", "raised_on"]
    queryset = DataQuery.objects.all()

    def get_queryset(self):
        return (
            self.queryset.visible_to(self.request.user).select_related("patient__centre").order_by("-raised_on", "-id")
        )
