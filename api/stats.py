"""``/api/v1/stats/…``: the registry's statistics, computed by ``reports.benchmarks``.

Rows come from the same scoped queryset and the same filters as
``/implantations/``; anyone but the coordinator gets small cells suppressed.
"""

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from registry.models import ComplicationType, Implantation
from reports import benchmarks, casemix, comparisons, concordance, disclosure, outcomes, releases
from reports import selectors as report_selectors
from reports.cohort import current_cohort
from sites import access
from sites.models import Centre, Surgeon

from . import deidentify
from .cache_keys import request_key
from .errors import ErrorSerializer
from .filters import StatsFilter, parse_period
from .parameters import StrictQueryParameters
from .permissions import CanReadRegistry
from .releases import ReadsReleases
from .renderers import CSVRenderer, StatisticsCSVRenderer


def parse_bands(value):
    try:
        bands = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        bands = []
    if not bands or bands != sorted(set(bands)) or bands[0] < 1:
        raise serializers.ValidationError("Give ascending whole numbers separated by commas, e.g. '5,15'.")
    return tuple(bands)


# Cut points and filters only the registry coordinator may set: anything else could make two
# queries differ by one patient (issue 8, "no free cut points"). Everyone else gets the method
# version's fixed threshold and bands, windows from outcomes.WINDOWS_DAYS, and StatsFilter.PUBLIC.
COORDINATOR_ONLY_PARAMETERS = frozenset(
    {"experience_threshold", "surgeon_volume_bands", "centre_volume_bands"}
    | (set(StatsFilter.base_filters) - set(StatsFilter.PUBLIC))
)
WINDOW_CHOICES = [(days, f"{days} days") for days in outcomes.WINDOWS_DAYS]


class StatsQuery(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=benchmarks.GROUPINGS, required=False)
    experience_threshold = serializers.IntegerField(
        min_value=1,
        max_value=1000,
        default=benchmarks.DEFAULT_EXPERIENCE_THRESHOLD,
        help_text="Coordinator only. Pumps placed before the implantation that count as experienced.",
    )
    surgeon_volume_bands = serializers.CharField(
        required=False, help_text="Coordinator only. Band lower bounds, e.g. '5,15' → 0-4, 5-14, 15+."
    )
    centre_volume_bands = serializers.CharField(
        required=False, help_text="Coordinator only. Band lower bounds, e.g. '20,60'."
    )
    implanted_from = serializers.CharField(
        required=False, help_text="From this month (YYYY-MM) or year (YYYY) on; investigators: whole years only."
    )
    implanted_to = serializers.CharField(
        required=False,
        help_text="Up to the end of this month (YYYY-MM) or year (YYYY); investigators: whole years only.",
    )

    def validate_surgeon_volume_bands(self, value):
        return parse_bands(value)

    def validate_centre_volume_bands(self, value):
        return parse_bands(value)

    def _period(self, value):
        """A whole month or year. Investigators' whole years only: StatsFilter (api.filters), as on every list."""
        try:
            parse_period(value)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None
        return value

    def validate_implanted_from(self, value):
        return self._period(value)

    def validate_implanted_to(self, value):
        return self._period(value)

    def grouping(self):
        data = self.validated_data
        return benchmarks.Grouping(
            data.get("group_by"),
            experience_threshold=data["experience_threshold"],
            surgeon_volume_bands=data.get("surgeon_volume_bands", benchmarks.DEFAULT_SURGEON_VOLUME_BANDS),
            centre_volume_bands=data.get("centre_volume_bands", benchmarks.DEFAULT_CENTRE_VOLUME_BANDS),
        )


def complication_types():
    return list(ComplicationType.objects.values("code", "name", "category", "catheter_related"))


class ComplicationQuery(StatsQuery):
    type = serializers.CharField(
        help_text="A complication type code, a category ('technical', 'toxicity', 'other'), 'catheter_related' or 'any'."
    )
    within_days = serializers.ChoiceField(
        choices=WINDOW_CHOICES,
        required=False,
        help_text="A fixed window: the Aalen-Johansen cumulative incidence by that day, with competing events.",
    )
    severe = serializers.BooleanField(
        default=False, help_text="Only severe complications: Clavien-Dindo ≥ IIIa where recorded, otherwise grade ≥ 3."
    )

    def validate_type(self, value):
        if value in (benchmarks.ANY_COMPLICATION, benchmarks.CATHETER_RELATED, *outcomes.CATEGORIES):
            return value
        if not ComplicationType.objects.filter(code=value).exists():
            raise serializers.ValidationError(f"Unknown complication type '{value}'.")
        return value

    def outcome(self):
        data = self.validated_data
        return outcomes.event_outcome(data["type"], complication_types(), severe_only=data["severe"])


class CumulativeIncidenceQuery(StatsQuery):
    event = serializers.CharField(
        help_text="A complication type code, a category ('technical', 'toxicity', 'other'), "
        "'catheter_related', 'any' or 'pump_failure'."
    )
    at_days = serializers.ChoiceField(choices=WINDOW_CHOICES, help_text="The day the cumulative incidence is read at.")
    severe = serializers.BooleanField(default=False, help_text="Only severe complications (not for pump_failure).")

    def validate_event(self, value):
        try:
            outcomes.event_outcome(value, complication_types())
        except KeyError:
            raise serializers.ValidationError(f"Unknown event '{value}'.") from None
        return value

    def outcome(self):
        data = self.validated_data
        return outcomes.event_outcome(data["event"], complication_types(), severe_only=data["severe"])


class SurvivalQuery(StatsQuery):
    endpoint = serializers.ChoiceField(
        choices=benchmarks.SURVIVAL_ENDPOINTS,
        default="overall",
        help_text="overall: per patient from the first implantation; hepatic_progression: hepatic progression or "
        "death; pump_failure: freedom from pump failure, 1 − Aalen-Johansen (death and other ends of use compete).",
    )


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
    competing_events = serializers.IntegerField(
        allow_null=True, required=False, help_text="With within_days: competing events observed by that day."
    )


class CumulativeIncidenceGroup(serializers.Serializer):
    group = serializers.CharField()
    implantations = serializers.IntegerField(allow_null=True, help_text="The outcome's denominator.")
    events = serializers.IntegerField(allow_null=True, help_text="Events observed by at_days.")
    competing_events = serializers.IntegerField(allow_null=True, help_text="Competing events observed by at_days.")
    estimate = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    suppressed = serializers.BooleanField(required=False)


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


ERROR_RESPONSES = dict.fromkeys((400, 401, 403, 404, 406, 429), ErrorSerializer)


def groups_response(name, group_serializer):
    return type(name, (serializers.Serializer,), {"groups": group_serializer(many=True)})


FILTER_PARAMETERS = (
    [
        OpenApiParameter(
            "centre", str, description="Filter by centre code (investigators: their opaque code, C-…). Unknown: a 400."
        )
    ]
    + [
        OpenApiParameter(name, str, description=f"Filter by {name}.")
        for name in ("indication", "device", "approach", "sex")
    ]
    + [
        OpenApiParameter(name, str, description=f"Coordinator only: as on /implantations/ ({name}).")
        for name in sorted(
            COORDINATOR_ONLY_PARAMETERS - {"experience_threshold", "surgeon_volume_bands", "centre_volume_bands"}
        )
    ]
)


class StatsView(ReadsReleases, StrictQueryParameters, APIView):
    """Investigators see and give centres and surgeons as their opaque codes (api.deidentify), never the real ones.

    ``?format=csv`` is the same answer as a table, one row per group (and day, for a survival curve):
    api.renderers.statistics_rows."""

    permission_classes = [CanReadRegistry]
    # One group as the schema documents it; the CSV's columns follow it (api.renderers.statistics_rows).
    group_serializer = None
    renderer_classes = [
        StatisticsCSVRenderer if renderer is CSVRenderer else renderer
        for renderer in api_settings.DEFAULT_RENDERER_CLASSES
    ]
    query_class = StatsQuery

    def allowed_query_parameters(self, request):
        return (
            super().allowed_query_parameters(request) | set(self.query_class().fields) | set(StatsFilter.base_filters)
        )

    def check_parameters(self, request):
        if access.is_coordinator(request.user):
            return
        refused = sorted(name for name in request.query_params if name in COORDINATOR_ONLY_PARAMETERS)
        if refused:
            raise serializers.ValidationError(
                {
                    name: ["Only the registry coordinator may set this: cut points are fixed by the method version."]
                    for name in refused
                }
            )

    def rows(self, request):
        self.check_parameters(request)
        query = self.query_class(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        implantations = Implantation.objects.readable_by(request.user).with_derived()
        filterset = StatsFilter(request.query_params, queryset=implantations, request=request)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        rows = current_cohort()
        filtered = any(value not in (None, "", []) for value in filterset.form.cleaned_data.values())
        if not filtered and access.readable_centre_ids(request.user) is access.ALL_CENTRES:
            return query, list(rows.values())
        # The database decides which rows (scope and filters); the cached cohort supplies their facts.
        ids = filterset.qs.order_by().values_list("id", flat=True)
        return query, [rows[i] for i in ids if i in rows]

    def respond(self, request, groups, suppress, group_by=None):
        if not access.is_coordinator(request.user):
            # In the public order (real codes), before the labels are made opaque: which cells are hidden
            # must not depend on who asks, or two investigators' answers together would give a cell back.
            groups = suppress(groups)
        return Response({"groups": self.deidentify_groups(request, groups, group_by)})

    @staticmethod
    def deidentify_groups(request, groups, group_by):
        """Groups by centre or surgeon: investigators get the opaque codes, in the codes' order (not the real ones')."""
        deidentifier = deidentify.for_request(request)
        if deidentifier is None or group_by not in ("centre", "surgeon"):
            return groups
        model = Centre if group_by == "centre" else Surgeon
        pks = dict(model.objects.filter(code__in=[g["group"] for g in groups]).values_list("code", "pk"))
        shown = [{**g, "group": deidentifier.encode(group_by, pks[g["group"]])} for g in groups if g["group"] in pks]
        return sorted(shown, key=lambda g: g["group"])

    def cache_key(self, request):
        """Statistics depend only on the data, the user's scope and role, and the query (api.cache_keys)."""
        return request_key("stats", self, request)

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
    """Complication rate per group. With `within_days`: the Aalen-Johansen cumulative incidence by that day (the
    outcome's denominator, origin and competing events, reports.outcomes). Without: the crude share at any time
    (implantations with the complication / all implantations, or treated ones for a toxicity; 95% Wilson CI)."""

    query_class = ComplicationQuery

    group_serializer = ComplicationGroup

    @extend_schema(
        parameters=[ComplicationQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("ComplicationStats", ComplicationGroup),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        within_days = query.validated_data.get("within_days")
        groups = benchmarks.complication_rates(rows, query.outcome(), query.grouping(), within_days)
        group_by = query.validated_data.get("group_by")
        if within_days is None:
            return self.respond(request, groups, lambda g: disclosure.suppress_proportions(g, "events"), group_by)
        return self.respond(
            request, groups, lambda g: disclosure.suppress_cumulative_incidence(g, estimate="rate"), group_by
        )


class CumulativeIncidenceStatsView(StatsView):
    """Aalen-Johansen cumulative incidence by `at_days`, with competing events and delayed entry (reports.outcomes)."""

    query_class = CumulativeIncidenceQuery

    group_serializer = CumulativeIncidenceGroup

    @extend_schema(
        parameters=[CumulativeIncidenceQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("CumulativeIncidenceStats", CumulativeIncidenceGroup),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.cumulative_incidence(
            rows, query.outcome(), query.validated_data["at_days"], query.grouping()
        )
        return self.respond(
            request, groups, disclosure.suppress_cumulative_incidence, query.validated_data.get("group_by")
        )


class PumpUseStatsView(StatsView):
    """Pump use per group: implantations that ever delivered a dose / all implantations, and median days to first dose."""

    group_serializer = PumpUseGroup

    @extend_schema(
        parameters=[StatsQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("PumpUseStats", PumpUseGroup),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.pump_use(rows, query.grouping())
        return self.respond(
            request,
            groups,
            lambda g: disclosure.suppress_proportions(g, "treated"),
            query.validated_data.get("group_by"),
        )


class SurvivalStatsView(StatsView):
    """Kaplan-Meier per group with delayed entry. Overall: per patient, first implantation to death, censored at the
    last follow-up contact. Pump failure: 1 − Aalen-Johansen cumulative incidence (freedom from pump failure)."""

    query_class = SurvivalQuery

    group_serializer = SurvivalGroup

    @extend_schema(
        parameters=[SurvivalQuery, *FILTER_PARAMETERS],
        responses={
            200: groups_response("SurvivalStats", SurvivalGroup),
            **ERROR_RESPONSES,
        },
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        groups = benchmarks.survival(rows, query.validated_data["endpoint"], query.grouping())
        return self.respond(request, groups, disclosure.suppress_survival, query.validated_data.get("group_by"))


class ObservedExpectedQuery(StatsQuery):
    outcome = serializers.ChoiceField(choices=[(o.code, o.label) for o in casemix.OUTCOMES])
    group_by = serializers.ChoiceField(choices=["centre", "surgeon"], default="centre")


class ObservedExpectedGroup(serializers.Serializer):
    group = serializers.CharField()
    n = serializers.IntegerField(allow_null=True, help_text="Complete-window cases.")
    observed = serializers.IntegerField(allow_null=True)
    expected = serializers.FloatField(allow_null=True)
    ratio = serializers.FloatField(allow_null=True)
    ci = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    flag = serializers.CharField(allow_null=True, help_text="alarm_high, warning_high, warning_low, alarm_low or null.")
    suppressed = serializers.BooleanField(required=False)


class ObservedExpectedStatsView(StatsView):
    """Observed against expected per centre or surgeon, from the case-mix model fitted on the live registry
    (reports.casemix): O/E with Ulm's exact interval and a flag from the exact one-sided Poisson p-value
    (alarm p < 0.001, warning p < 0.025; between-centre variance included for centres). Surgeon-level
    comparisons are shown only to the coordinator and to the surgeon's own centre."""

    query_class = ObservedExpectedQuery

    group_serializer = ObservedExpectedGroup

    @extend_schema(
        parameters=[ObservedExpectedQuery, *FILTER_PARAMETERS],
        responses={200: groups_response("ObservedExpectedStats", ObservedExpectedGroup), **ERROR_RESPONSES},
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        data = query.validated_data
        model = comparisons.live_case_mix().get(data["outcome"])
        groups = (
            comparisons.observed_expected_groups(rows, model, comparisons.group_key(data["group_by"])) if model else []
        )
        if data["group_by"] == "surgeon":
            groups = self.visible_surgeons(request.user, groups)
        shown = [{k: g[k] for k in ("group", "n", "observed", "expected", "ratio", "ci", "flag")} for g in groups]
        return self.respond(
            request,
            shown,
            lambda g: disclosure.suppress_proportions(
                g, "observed", denominator="n", derived=("expected", "ratio", "ci", "flag")
            ),
            data["group_by"],
        )

    @staticmethod
    def visible_surgeons(user, groups):
        surgeons = {s.code: s for s in Surgeon.objects.filter(code__in=[g["group"] for g in groups])}
        return [
            g
            for g in groups
            if g["group"] in surgeons and access.surgeon_comparison_visible(user, surgeons[g["group"]], None)
        ]


class ConcordanceQuery(StatsQuery):
    measure = serializers.ChoiceField(
        choices=[(code, m["label"]) for code, m in concordance.MEASURES.items()],
        help_text="systemic_with_hai: treated implantations with systemic therapy during the HAI period; "
        "extrahepatic_outside_trial: implantations with extrahepatic disease at implant and no trial.",
    )


class ConcordanceGroup(ProportionGroup):
    events = serializers.IntegerField(allow_null=True, help_text="Implantations meeting the measure's definition.")
    unknown_status = serializers.IntegerField(
        allow_null=True, required=False, help_text="extrahepatic_outside_trial: extrahepatic status unknown, no trial."
    )


class ConcordanceStatsView(StatsView):
    """Concordance with the expert consensus on HAI (Karanicolas et al., Curr Oncol 2014;21:e129), per group
    (reports.concordance): systemic chemotherapy during the HAI period among treated implantations, or
    extrahepatic disease at implant outside a clinical trial among all implantations (95% Wilson CI)."""

    query_class = ConcordanceQuery

    group_serializer = ConcordanceGroup

    @extend_schema(
        parameters=[ConcordanceQuery, *FILTER_PARAMETERS],
        responses={200: groups_response("ConcordanceStats", ConcordanceGroup), **ERROR_RESPONSES},
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        code = query.validated_data["measure"]
        groups = concordance.measure_groups(rows, code, query.grouping())
        return self.respond(
            request, groups, concordance.MEASURES[code]["suppress"], query.validated_data.get("group_by")
        )


class ReadmissionQuery(StatsQuery):
    measure = serializers.ChoiceField(choices=report_selectors.READMISSION_MEASURES)


class ReadmissionGroup(ProportionGroup):
    events = serializers.IntegerField(allow_null=True)


class ReadmissionStatsView(StatsView):
    """30- and 90-day readmission and reoperation rates per group (registry.selectors.readmission_rates): among
    implantations whose window had ended by now or that had the event inside it (complete windows only)."""

    query_class = ReadmissionQuery

    group_serializer = ReadmissionGroup

    @extend_schema(
        parameters=[ReadmissionQuery, *FILTER_PARAMETERS],
        responses={200: groups_response("ReadmissionStats", ReadmissionGroup), **ERROR_RESPONSES},
    )
    def get(self, request):
        return super().get(request)

    def compute(self, request):
        query, rows = self.rows(request)
        # The cohort's grouping decides the groups (bands, experience); the database counts their readmissions.
        groups = [
            (label, Implantation.objects.filter(id__in=[row.id for row in members]))
            for label, members in query.grouping().split(rows).items()
        ]
        figures = report_selectors.readmission_groups(
            groups, query.validated_data["measure"], data_cut=releases.current_cut_or_now()
        )
        return self.respond(
            request,
            figures,
            lambda g: disclosure.suppress_proportions(g, "events"),
            query.validated_data.get("group_by"),
        )
