"""``/api/v1/stats/…``: the registry's statistics, computed by ``reports.benchmarks``.

Rows come from the same scoped queryset and the same filters as
``/implantations/``; anyone but the coordinator gets small cells suppressed.
"""

import hashlib

from django.core.cache import cache
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.models import ComplicationType, Implantation
from reports import benchmarks, disclosure
from reports.cohort import data_version, live_cohort
from sites import access

from .errors import ErrorSerializer
from .filters import ImplantationFilter
from .permissions import CanReadRegistry


def parse_bands(value):
    try:
        bands = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        bands = []
    if not bands or bands != sorted(set(bands)) or bands[0] < 1:
        raise serializers.ValidationError("Give ascending whole numbers separated by commas, e.g. '5,15'.")
    return tuple(bands)


class StatsQuery(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=benchmarks.GROUPINGS, required=False)
    experience_threshold = serializers.IntegerField(
        min_value=1, max_value=1000, default=benchmarks.DEFAULT_EXPERIENCE_THRESHOLD
    )
    surgeon_volume_bands = serializers.CharField(
        required=False, help_text="Band lower bounds, e.g. '5,15' → 0-4, 5-14, 15+."
    )
    centre_volume_bands = serializers.CharField(required=False, help_text="Band lower bounds, e.g. '20,60'.")

    def validate_surgeon_volume_bands(self, value):
        return parse_bands(value)

    def validate_centre_volume_bands(self, value):
        return parse_bands(value)

    def grouping(self):
        data = self.validated_data
        return benchmarks.Grouping(
            data.get("group_by"),
            experience_threshold=data["experience_threshold"],
            surgeon_volume_bands=data.get("surgeon_volume_bands", benchmarks.DEFAULT_SURGEON_VOLUME_BANDS),
            centre_volume_bands=data.get("centre_volume_bands", benchmarks.DEFAULT_CENTRE_VOLUME_BANDS),
        )


class ComplicationQuery(StatsQuery):
    type = serializers.CharField(help_text="A complication type code, 'catheter_related' or 'any'.")
    within_days = serializers.IntegerField(min_value=0, max_value=36500, required=False)

    def validate_type(self, value):
        if value in (benchmarks.ANY_COMPLICATION, benchmarks.CATHETER_RELATED):
            return value
        if not ComplicationType.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"Unknown complication type '{value}'.")
        return value

    def type_codes(self):
        value = self.validated_data["type"]
        types = ComplicationType.objects.all()
        if value == benchmarks.CATHETER_RELATED:
            types = types.filter(catheter_related=True)
        elif value != benchmarks.ANY_COMPLICATION:
            types = types.filter(code=value)
        return set(types.values_list("code", flat=True))


class SurvivalQuery(StatsQuery):
    endpoint = serializers.ChoiceField(choices=benchmarks.SURVIVAL_ENDPOINTS, default="overall")


# --- response documentation ---------------------------------------------------------------


class Interval(serializers.ListField):
    child = serializers.FloatField()


class ProportionGroup(serializers.Serializer):
    group = serializers.CharField()
    implantations = serializers.IntegerField(allow_null=True)
    rate = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    suppressed = serializers.BooleanField(
        required=False, help_text="Present for non-coordinators: small counts are null."
    )


class ComplicationGroup(ProportionGroup):
    events = serializers.IntegerField(allow_null=True)


class PumpUseGroup(ProportionGroup):
    treated = serializers.IntegerField(allow_null=True)
    median_days_to_first_dose = serializers.FloatField(allow_null=True)


class SurvivalRow(serializers.Serializer):
    day = serializers.IntegerField()
    at_risk = serializers.IntegerField(allow_null=True)
    events = serializers.IntegerField(allow_null=True)
    survival = serializers.FloatField()


class SurvivalGroup(serializers.Serializer):
    group = serializers.CharField()
    n = serializers.IntegerField(allow_null=True)
    events = serializers.IntegerField(allow_null=True)
    median_days = serializers.FloatField(allow_null=True)
    median_ci = serializers.ListField(child=serializers.FloatField(allow_null=True), allow_null=True)
    table = SurvivalRow(many=True)
    suppressed = serializers.BooleanField(required=False)


def groups_response(name, group_serializer):
    return type(name, (serializers.Serializer,), {"groups": group_serializer(many=True)})


FILTER_PARAMETERS = [
    OpenApiParameter(name, str, description=f"As on /implantations/: {name}.")
    for name in (
        "centre",
        "surgeon",
        "indication",
        "implanted_after",
        "implanted_before",
        "treated",
        "complication_type",
        "surgeon_experience",
    )
]


class StatsView(APIView):
    permission_classes = [CanReadRegistry]
    query_class = StatsQuery

    def rows(self, request):
        query = self.query_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        implantations = Implantation.objects.readable_by(request.user).with_derived()
        filterset = ImplantationFilter(request.query_params, queryset=implantations, request=request)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        rows = live_cohort()
        filtered = any(value not in (None, "", []) for value in filterset.form.cleaned_data.values())
        if not filtered and access.readable_centre_ids(request.user) is access.ALL_CENTRES:
            return query, list(rows.values())
        # The database decides which rows (scope and filters); the cached cohort supplies their facts.
        ids = filterset.qs.order_by().values_list("id", flat=True)
        return query, [rows[i] for i in ids if i in rows]

    def respond(self, request, groups, suppress):
        if not access.is_coordinator(request.user):
            groups = suppress(groups)
        return Response({"groups": groups})

    def cache_key(self, request):
        """Statistics depend only on the data, the user's scope and role, and the query."""
        scope = access.readable_centre_ids(request.user)
        scope = "all" if scope is access.ALL_CENTRES else ",".join(map(str, sorted(scope)))
        query = sorted((k, tuple(request.query_params.getlist(k))) for k in request.query_params)
        raw = f"{data_version()}|{type(self).__name__}|{scope}|{access.is_coordinator(request.user)}|{query}"
        return "stats:" + hashlib.sha256(raw.encode()).hexdigest()

    def get(self, request):
        key = self.cache_key(request)
        if isinstance(request.accepted_renderer, JSONRenderer):
            # Kept rendered: a survival table can be a megabyte of JSON.
            body = cache.get(key)
            if body is None:
                body = JSONRenderer().render(self.compute(request).data)
                cache.set(key, body, timeout=3600)
            return HttpResponse(body, content_type="application/json")
        return self.compute(request)


class ComplicationStatsView(StatsView):
    """Complication rate per group: implantations with the complication / all implantations (treated or not), 95% Wilson CI."""

    query_class = ComplicationQuery

    @extend_schema(
        parameters=[ComplicationQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("ComplicationStats", ComplicationGroup),
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            406: ErrorSerializer,
            429: ErrorSerializer,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.complication_rates(
            rows, query.type_codes(), query.grouping(), query.validated_data.get("within_days")
        )
        return self.respond(request, groups, lambda g: disclosure.suppress_proportions(g, "events"))


class PumpUseStatsView(StatsView):
    """Pump use per group: implantations that ever delivered a dose / all implantations, and median days to first dose."""

    @extend_schema(
        parameters=[StatsQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("PumpUseStats", PumpUseGroup),
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            406: ErrorSerializer,
            429: ErrorSerializer,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.pump_use(rows, query.grouping())
        return self.respond(request, groups, lambda g: disclosure.suppress_proportions(g, "treated"))


class SurvivalStatsView(StatsView):
    """Kaplan-Meier per group. Overall: implantation to death, censored at the last follow-up contact."""

    query_class = SurvivalQuery

    @extend_schema(
        parameters=[SurvivalQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("SurvivalStats", SurvivalGroup),
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            406: ErrorSerializer,
            429: ErrorSerializer,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.survival(rows, query.validated_data["endpoint"], query.grouping())
        return self.respond(request, groups, disclosure.suppress_survival)
