"""Investigators read data releases, never live rows (issue 15; the storage is ``reports.releases``).

Every investigator endpoint (rows, statistics, the analysis dataset) takes ``?release=<name>``; without
it the request reads the latest release. The coordinator, data managers and centre leads read live
rows in their own roles, and a ``release`` from them is a 400: one rule, no mixed views.
"""

import logging
from contextlib import contextmanager, nullcontext

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, viewsets
from rest_framework.response import Response

from registry import routers
from reports import releases
from reports.models import Release
from sites import access

from .parameters import StrictQueryParameters
from .permissions import CanReadRegistry

RELEASE = "release"
RELEASE_PARAMETER = OpenApiParameter(
    RELEASE,
    OpenApiTypes.STR,
    description="Investigators: the data release to read (its `name`, from GET /api/v1/releases/); the latest "
    "release when left out. Other roles read the live registry and may not send it.",
)
NOT_FOR_YOUR_ROLE = "Data releases are what investigators read; your role reads the live registry."
READS_ON_REPLICA = frozenset({"GET", "HEAD"})

logger = logging.getLogger(__name__)


class NoRelease(exceptions.APIException):
    status_code = 404
    default_code = "no_release"
    default_detail = (
        "No data release has been frozen yet. Investigators read data releases, never the live registry: "
        "ask the registry coordinator to freeze one."
    )


def latest_release():
    return releases.latest_release()


def release_for(request):
    """The release ``request`` reads (investigators), or None (every other role: live rows)."""
    names = request.query_params.getlist(RELEASE)
    if not access.must_deidentify(request.user):
        if names:
            raise exceptions.ValidationError({RELEASE: [NOT_FOR_YOUR_ROLE]})
        return None
    if len(names) > 1:
        raise exceptions.ValidationError({RELEASE: ["Name one release."]})
    if names:
        release = Release.objects.filter(name=names[0]).first()
        if release is None:
            raise exceptions.ValidationError(
                {RELEASE: [f"No release named '{names[0]}'. GET /api/v1/releases/ lists them."]}
            )
        return release
    release = latest_release()
    if release is None:
        raise NoRelease()
    return release


def replica_holds(release):
    """Has the replica replayed ``release``'s freeze? Its row and its tables are one transaction on the
    primary, so a replica that has the row has every table. A replica that cannot say (down, refusing
    connections) is treated as behind: the primary answers instead."""
    try:
        return Release.objects.using(routers.REPLICA).filter(pk=release.pk).exists()
    except DatabaseError as error:
        logger.warning("Reading from the primary: the replica did not answer (%s).", type(error).__name__)
        return False


def reads_replica(request, release):
    """Does this request read its release from the replica? Only an investigator's (a request with a
    release) GET or HEAD, and only once the replica holds the release: a lagging replica would otherwise
    answer from the live tables behind the release's name, and that answer be cached under the release."""
    return (
        release is not None
        and request.method in READS_ON_REPLICA
        and routers.replica_configured()
        and replica_holds(release)
    )


@contextmanager
def reading_for(request):
    """What an investigator's request reads: its release, on the replica if ``reads_replica`` said so."""
    release = getattr(request, "hai_release", None)
    if release is None:
        yield
        return
    on_replica = routers.replica_reads() if getattr(request, "hai_reads_replica", False) else nullcontext()
    with on_replica, releases.reading(release):
        yield


def reading_stream(request, rows):
    """A streamed response's rows, read as its view read (they are produced after the view has returned)."""
    with reading_for(request):
        yield from rows


class ReadsReleases:
    """API view mixin: an investigator's request reads its release for as long as the view runs.

    Put it first among the bases: it needs authentication (``initial``) before it can tell the role.
    A streamed response reads after the view has returned: it wraps its rows in
    ``reading_stream(request, ...)``.
    """

    def allowed_query_parameters(self, request):
        return super().allowed_query_parameters(request) | {RELEASE}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            request.hai_release, request.hai_reads_replica = None, False
            return  # the method is not allowed: a 405 before any question about releases
        # On the primary, after authentication and throttling: the release is what the answer is computed
        # and cached under, so it is never taken from a replica that may not have it yet.
        release = release_for(request)
        request.hai_release = release
        request.hai_reads_replica = reads_replica(request, release)
        if release is not None:
            self._reading = reading_for(request)
            self._reading.__enter__()

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            reading = self.__dict__.pop("_reading", None)
            if reading is not None:
                reading.__exit__(None, None, None)


# --- GET /api/v1/releases/ ----------------------------------------------------------------------


class ReleaseSerializer(serializers.ModelSerializer):
    """A data release as investigators see it: its name, the year of its cut, method version, checksum, counts."""

    cut_year = serializers.IntegerField(source="cut.year", read_only=True, help_text="The year of the data cut.")
    latest = serializers.SerializerMethodField(help_text="The release read when a request names none.")

    class Meta:
        model = Release
        fields = ["name", "cut_year", "method_version", "checksum", "row_counts", "latest"]
        read_only_fields = fields

    def get_latest(self, release) -> bool:
        return release.pk == self.context.get("latest_id")


class CoordinatorReleaseSerializer(ReleaseSerializer):
    """A release as the coordinator sees it: also the cut itself, how it was frozen, when and by whom."""

    frozen_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = ["name", "cut", "cut_year", "source", "method_version", "checksum", "row_counts", "latest"]
        fields += ["frozen_at", "frozen_by"]
        read_only_fields = fields


class FreezeRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40, help_text="Letters, digits, '-' and '_' (e.g. 2026-12).")
    as_of = serializers.DateTimeField(
        required=False, help_text="A past moment (ISO 8601 with a time zone): rebuilt from the history tables."
    )


class CanFreezeReleases(permissions.BasePermission):
    message = "Only the registry coordinator freezes a data release."

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return True
        return access.is_coordinator(request.user)


class ReleaseViewSet(StrictQueryParameters, mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Data releases, latest cut first. Investigators read one (``?release=<name>``, default the latest); the
    coordinator freezes one (POST: now, or ``as_of`` a past moment from the history tables)."""

    permission_classes = [CanReadRegistry, CanFreezeReleases]
    queryset = Release.objects.select_related("frozen_by")
    pagination_class = None
    filter_backends = []

    def get_serializer_class(self):
        if self.request is not None and access.is_coordinator(self.request.user):
            return CoordinatorReleaseSerializer
        return ReleaseSerializer

    def get_serializer_context(self):
        latest = latest_release()
        return {**super().get_serializer_context(), "latest_id": latest.pk if latest else None}

    @extend_schema(request=FreezeRequestSerializer, responses={201: CoordinatorReleaseSerializer})
    def create(self, request, *args, **kwargs):
        body = FreezeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            release = releases.freeze_release(
                body.validated_data["name"], as_of=body.validated_data.get("as_of"), user=request.user
            )
        except DjangoValidationError as error:
            raise exceptions.ValidationError(error.message_dict) from error
        return Response(CoordinatorReleaseSerializer(release, context=self.get_serializer_context()).data, status=201)
