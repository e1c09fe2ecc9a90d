"""Reads are logged (issue 11): who opened which patients' records, in the admin and in the API.

Views note what they hand out: ``note(request, records)`` with one record, a list of them or a queryset
(the hooks: ``sites.admin_mixins.CentreScopedAdminMixin`` for the admin's change, delete, history and
list pages; ``api.views.RegistryViewSet`` for the API's detail and list responses). Noting keeps small
things on the request (the model's label, each record's id, its patient's id where the row carries it)
and costs no query. ``ReadLogMiddleware`` then writes at most one ``sites.RecordRead`` per request,
only when something was noted, only for a 2xx response and never for OPTIONS (which describes an
endpoint, not its records). It writes once the response is produced and sent: when the server closes
the response (PEP 3333: a WSGI server calls ``close()`` after writing the body; so do Django's ASGI
handler and test client). The client does not wait for the INSERT, only the worker does.

Only patients' records count (``PATIENT_PATHS``): anything else (centres, surgeons, vocabularies) and
``None`` are ignored, so a generic hook may note whatever it returns.

Queries, whatever the number of rows: at most two per request. One finds, for all the noted records
that hang off an implantation at once (doses, complications, follow-ups, liver tests, perfusion checks),
their implantations' patients, and none when the implantation came with the row (``select_related``);
the other is the INSERT. (A queryset noted before it is evaluated, and still not evaluated when the
response is done, costs one more: see ``note``. The hooks note pages that the response has evaluated.)

Never breaks the response: if the write fails, the failure is logged with ``logging`` (the view's name
and the error's class, no patient data) and the response goes out. The middleware runs outside any
transaction (``ATOMIC_REQUESTS`` would wrap the view only), so the INSERT is its own transaction and a
failed one leaves nothing half done. (No savepoint: it would cost two more statements per request
for a transaction that only a test has open.)

Streaming (the API's ``?format=csv`` export, ``api.views.ExportingListMixin.stream_csv``): the view wraps
its rows with ``noting(request, rows, model)``, which notes each row as it is taken for sending. The
response is closed after the last row, or early if the client went away, so the one row written then
holds the rows taken until then. The patients are listed in full (an export is the largest read there is,
and the log's question is "who read patient X"); their ids are held in a set while the stream runs
(some 60 bytes a patient) and the export's records are counted, not kept. For child tables the
implantations' patients are found once at the end, one query per ``RESOLVE_CHUNK`` implantations.
``api.models.ExportLog`` still records the export's filters and row count as before.
"""

import logging

from django.apps import apps
from django.db import models
from django.utils import timezone

from . import access

logger = logging.getLogger(__name__)

# A patient's records: model label -> the path from a record to its patient's id.
PATIENT_PATHS = {
    "registry.patient": "pk",
    "registry.implantation": "patient_id",
    "registry.systemictherapyline": "patient_id",
    "registry.treatment": "implantation__patient_id",
    "registry.complication": "implantation__patient_id",
    "registry.followup": "implantation__patient_id",
    "registry.livertest": "implantation__patient_id",
    "registry.perfusioncheck": "implantation__patient_id",
    "registry.systemictoxicity": "implantation__patient_id",
    "registry.readmission": "implantation__patient_id",
}
NOTES_ATTRIBUTE = "_record_reads"
# Implantations resolved per query: any page (at most 1,000 rows) in one; an export in a few.
RESOLVE_CHUNK = 10_000
MAX_QUERY_PARAMETER_NAMES = 50


class Reads:
    """What one request read: filled by ``note`` and ``noting``, written by ``ReadLogMiddleware``."""

    def __init__(self):
        self.kinds = set()
        self.records = set()  # (label, pk) of the records noted: each counted once
        self.streamed = 0  # rows taken by a stream (a query's iterator gives each once: counted, not kept)
        self.patient_ids = set()
        self.implantation_ids = set()  # of child records whose implantation was not loaded with them
        self.querysets = []  # (label, queryset) noted before evaluation, read when written

    def __bool__(self):
        return bool(self.records or self.streamed or self.querysets)

    def add(self, label, record):
        """Note one record (no query): its patient from the row, or its implantation for later."""
        path = PATIENT_PATHS[label]
        if path == "pk":
            self.patient_ids.add(record.pk)
        elif path == "patient_id":
            self.patient_ids.add(record.patient_id)
        elif type(record).implantation.is_cached(record):
            self.patient_ids.add(record.implantation.patient_id)
        else:
            self.implantation_ids.add(record.implantation_id)

    def resolve(self):
        """``(sorted patient ids, record count)``; queries only for child records and unevaluated querysets."""
        for label, queryset in self.querysets:
            if queryset._result_cache is not None:  # the response has read it: no query
                for record in queryset._result_cache:
                    self.add(label, record)
                    self.records.add((label, record.pk))
            else:
                for pk, patient_id in queryset.values_list("pk", PATIENT_PATHS[label]):
                    self.patient_ids.add(patient_id)
                    self.records.add((label, pk))
        self.querysets = []
        if self.implantation_ids:
            implantations = apps.get_model("registry", "Implantation")._base_manager
            ordered = sorted(self.implantation_ids)
            for start in range(0, len(ordered), RESOLVE_CHUNK):
                chunk = ordered[start : start + RESOLVE_CHUNK]
                self.patient_ids.update(implantations.filter(pk__in=chunk).values_list("patient_id", flat=True))
            self.implantation_ids = set()
        return sorted(self.patient_ids), len(self.records) + self.streamed


def reads_of(request, create=False):
    """The request's notes (a DRF request keeps them on the Django request it wraps)."""
    request = getattr(request, "_request", request)
    reads = getattr(request, NOTES_ATTRIBUTE, None)
    if reads is None and create:
        reads = Reads()
        setattr(request, NOTES_ATTRIBUTE, reads)
    return reads


def _label(model):
    return model._meta.label_lower


def note(request, records):
    """Note that ``request`` read ``records``; returns ``records`` unchanged, so a hook can wrap a return value.

    ``records``: a model instance, a list (tuple, set) of them, or a queryset. No query: an evaluated
    queryset is read from its cache; one noted before it is evaluated is kept and read when the row is
    written (from its cache if the response evaluated it, else by one ``values_list`` query). Records
    that are not a patient's (``PATIENT_PATHS``) and ``None`` are ignored. For an iterator that the
    response consumes (a stream), use ``noting``: iterating it here would use it up.
    """
    if records is None:
        return records
    if isinstance(records, models.Model):
        label = _label(type(records))
        if label in PATIENT_PATHS:
            reads = reads_of(request, create=True)
            reads.kinds.add(label)
            reads.add(label, records)
            reads.records.add((label, records.pk))
        return records
    if isinstance(records, models.QuerySet):
        label = _label(records.model)
        if label in PATIENT_PATHS:
            reads = reads_of(request, create=True)
            reads.kinds.add(label)
            reads.querysets.append((label, records))
        return records
    if iter(records) is records:
        raise TypeError("note() takes records, a list of them or a queryset; wrap an iterator with noting().")
    for record in records:
        note(request, record)
    return records


def noting(request, rows, model):
    """``rows`` (records of ``model``, e.g. a queryset's ``iterator()``), each noted as it is taken.

    For a streaming response: the rows are noted as they stream, and the read log's row is written when
    the response is closed. Each row is counted, not kept (a query's iterator gives each row once).
    Rows of a model that is not a patient's record are returned as they are.
    """
    label = _label(model)
    if label not in PATIENT_PATHS:
        return rows
    reads = reads_of(request, create=True)
    reads.kinds.add(label)

    def noted():
        for record in rows:
            reads.add(label, record)
            reads.streamed += 1
            yield record

    return noted()


def _channel(request):
    from .models import RecordRead

    match = getattr(request, "resolver_match", None)
    return RecordRead.Channel.ADMIN if match is not None and "admin" in match.namespaces else RecordRead.Channel.API


def acting_role(user, channel):
    """The role the request acted in, if one: an API token's role, else the one role the user acted in.

    The coordinator's rights win over any other role; in the API an investigator reads as an investigator
    (``access.must_deidentify``), in the admin investigators have no part. Empty if that leaves several
    (a data manager of one centre and lead of another: which one depends on the record).
    """
    acting = getattr(user, access.ACTING_ROLE_ATTRIBUTE, None)
    if acting:
        return acting
    granted = access.access_for(user)
    if granted.coordinator:
        return access.COORDINATOR
    from .models import RecordRead

    if channel == RecordRead.Channel.API and granted.investigator:
        return access.INVESTIGATOR
    roles = [
        role
        for role, held in (
            (access.DATA_MANAGER, granted.managed_centre_ids),
            (access.CENTRE_LEAD, granted.led_centre_ids),
        )
        if held
    ]
    return roles[0] if len(roles) == 1 else ""


def insert(request, reads, read_at):
    """The request's one ``RecordRead``: at most two queries (``Reads.resolve``, then the INSERT)."""
    from .models import RecordRead

    channel = _channel(request)
    patient_ids, count = reads.resolve()
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return RecordRead.objects.create(
        user_id=user.pk if signed_in else None,
        username=user.get_username() if signed_in else "",
        role=acting_role(user, channel) if signed_in else "",
        read_at=read_at,
        channel=channel,
        method=request.method[:10],
        path=request.path[:500],
        query_parameters=sorted({name[:100] for name in request.GET})[:MAX_QUERY_PARAMETER_NAMES],
        record_kind=",".join(sorted(reads.kinds))[:200],
        patient_ids=patient_ids,
        record_count=count,
    )


def write(request, reads, read_at):
    """``insert``, never raising: a failure is logged with the view's name and the error's class only.

    No message and no traceback: a database error's text can quote the row, patient ids included.
    """
    try:
        insert(request, reads, read_at)
    except Exception as error:  # the log must never break the response
        match = getattr(request, "resolver_match", None)
        logger.error(
            "The read log was not written for a %s request to %s: %s",
            _channel(request),
            match.view_name if match is not None else "an unresolved view",
            type(error).__name__,
        )


class ReadLogMiddleware:
    """Writes the request's one ``RecordRead`` when the response is closed (see the module's docstring).

    After ``AuthenticationMiddleware``; a DRF view's token user reaches ``request.user`` through DRF.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        read_at = timezone.now()
        response = self.get_response(request)
        reads = reads_of(request)
        if reads is None or request.method == "OPTIONS" or not 200 <= response.status_code < 300:
            return response

        def write_if_noted():  # a stream notes its rows as it goes: look again once it is over
            if reads:
                write(request, reads, read_at)

        when_closed(response, write_if_noted)
        return response


def when_closed(response, callback):
    """Run ``callback`` once the server has sent ``response`` and closes it (PEP 3333), not before: the
    client does not wait for it. Django's own responses keep their closers in ``_resource_closers``;
    anything else has no close() to wait for, so the callback runs at once."""
    closers = getattr(response, "_resource_closers", None)
    if closers is None:
        callback()
        return

    def run():
        try:
            callback()
        except Exception:
            # Django's close() swallows a closer's error: an audit row that failed must at least be logged.
            logger.exception("A write after the response failed: %s", getattr(callback, "__qualname__", callback))

    closers.append(run)
