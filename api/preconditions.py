"""Conditional writes: a client changes or deletes only the version it read (issue 11).

Reads of one record send its version as a strong entity tag (RFC 9110 §8.8.3). ``PUT``, ``PATCH``
and ``DELETE`` must name it in ``If-Match`` (RFC 9110 §13.1.1): without one the answer is
428 Precondition Required (RFC 6585 §3), with another version 412 Precondition Failed (RFC 9110
§15.5.13). A write that loses a race after the check fails the same way, from the record's
compare-and-swap save (``sites.versioning``).
"""

from rest_framework import exceptions, status

from sites.versioning import StaleRecord, last_change_of

WRITES_NEEDING_A_VERSION = frozenset({"PUT", "PATCH", "DELETE"})


class PreconditionRequired(exceptions.APIException):
    status_code = status.HTTP_428_PRECONDITION_REQUIRED
    default_detail = (
        "This write must name the version it changes: send If-Match with the ETag of your last read of the record."
    )
    default_code = "precondition_required"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The record was changed since you read it. Read it again, then repeat your change."
    default_code = "precondition_failed"


def entity_tag(record):
    return f'"{record.version}"'


def _listed_tags(header):
    """The entity tags of an If-Match header; weak ones (W/"...") never match a strong comparison."""
    tags = []
    for part in header.split(","):
        part = part.strip()
        if part and not part.startswith("W/"):
            tags.append(part)
    return tags


def stale_detail(record):
    author, when = last_change_of(record)
    if author and when:
        return (
            f"The record was changed by {author} at {when:%Y-%m-%d %H:%M} UTC since you read it "
            f"(now version {record.version}). Read it again, then repeat your change."
        )
    return PreconditionFailed.default_detail


def check_if_match(request, record):
    """Refuse a write that does not name the record's current version."""
    if request.method not in WRITES_NEEDING_A_VERSION:
        return
    header = request.headers.get("If-Match")
    if header is None or not header.strip():
        raise PreconditionRequired()
    tags = _listed_tags(header)
    if "*" in tags:  # RFC 9110: "*" matches any current representation; the client asked to overwrite.
        return
    if entity_tag(record) not in tags:
        raise PreconditionFailed(stale_detail(record))


def precondition_failed_from(error: StaleRecord):
    current = type(error.record)._base_manager.filter(pk=error.record.pk).first()
    return PreconditionFailed(stale_detail(current) if current is not None else None)


class ConditionalWritesMixin:
    """ETag on every response that carries one record; If-Match checked before every change or deletion."""

    def get_object(self):
        record = super().get_object()
        check_if_match(self.request, record)
        self._tagged_record = record
        return record

    def perform_create(self, serializer):
        super().perform_create(serializer)
        self._tagged_record = serializer.instance

    def perform_update(self, serializer):
        super().perform_update(serializer)
        self._tagged_record = serializer.instance

    def handle_exception(self, exc):
        if isinstance(exc, StaleRecord):
            exc = precondition_failed_from(exc)
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_tagged_record", None)
        if record is not None and 200 <= response.status_code < 300 and response.status_code != 204:
            response["ETag"] = entity_tag(record)
        return response
