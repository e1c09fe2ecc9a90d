"""One error shape for every API response that is not a success.

    {"detail": "Invalid input.", "errors": {"field": ["message", ...]}}

``errors`` is present on 400 responses; other errors carry ``detail`` only.
Model-level ``ValidationError`` (from ``full_clean``) is reported the same way.

A 400 for soft warnings (``registry.soft_warnings``: an unusual but possible value) also lists them:

    {"detail": "Invalid input.", "errors": {"dose": ["A FUDR dose of 0.5 mg/kg/day is ..."]},
     "warnings": [{"code": "fudr_dose_outside_usual", "field": "dose", "message": "A FUDR dose of ..."}]}

Sending the same request again with ``"confirmed_warnings": ["fudr_dose_outside_usual"]`` saves it.
``warnings`` is present only when every error of the response is such a warning: with a hard error
too, ``errors`` lists both but ``warnings`` is absent, as confirming would not save the record.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

# The database went away (restarted, failed over, out of connections): the request did not happen, and
# a transaction it had open was rolled back, so the client may simply send it again (issue 17, item 6).
DATABASE_DOWN = (OperationalError, InterfaceError)
DATABASE_DOWN_DETAIL = "The registry's database is unavailable for a moment. Nothing was saved; try again shortly."
RETRY_AFTER_SECONDS = "30"


class DatabaseUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = DATABASE_DOWN_DETAIL
    default_code = "database_unavailable"


def _log_database_down(exc):
    # The class and first line only: a driver's message may quote the statement, and its parameters are
    # patients' data.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    logger.warning("Database unavailable: %s: %s", type(exc).__name__, first_line[:200])


class SoftWarningSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="The warning's stable code: send it in `confirmed_warnings`.")
    field = serializers.CharField(help_text="The field whose value is unusual.")
    message = serializers.CharField(help_text="What is unusual, with the value.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A summary of what went wrong.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="On 400: messages per field; `non_field_errors` for the record as a whole.",
    )
    warnings = SoftWarningSerializer(
        many=True,
        required=False,
        help_text="On a 400 for soft warnings only: each unusual value. Send the request again with their codes "
        "in `confirmed_warnings` to save it.",
    )


def _flatten(value):
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, item in value.items() for message in _flatten(item)]
    if isinstance(value, (list, tuple)):
        return [message for item in value for message in _flatten(item)]
    return [str(value)]


def field_errors(data):
    if not isinstance(data, dict):
        data = {"non_field_errors": data}
    return {("non_field_errors" if key == "__all__" else key): _flatten(value) for key, value in data.items()}


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        soft_warnings = getattr(exc, "warnings", [])
        exc = exceptions.ValidationError(as_serializer_error(exc))
        exc.soft_warnings = soft_warnings
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, DATABASE_DOWN):
        _log_database_down(exc)
        exc = DatabaseUnavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, DatabaseUnavailable):
        response["Retry-After"] = RETRY_AFTER_SECONDS
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": field_errors(response.data)}
        soft_warnings = getattr(exc, "soft_warnings", None)
        if soft_warnings:
            response.data["warnings"] = [warning.as_dict() for warning in soft_warnings]
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"detail": str(detail)}
    return response


def json_or_html(handler):
    """Django's own 404/500 pages, but in the API's error shape under /api/.

    An error the database raised outside a DRF view (in a middleware: the session, the read log) reaches
    Django's 500 handler; while the database is down that is a 503 too, on every page, never a 500.
    """
    from django.http import HttpResponse, JsonResponse

    def view(request, *args, **kwargs):
        database_down = handler.__name__ == "server_error" and isinstance(sys.exc_info()[1], DATABASE_DOWN)
        if database_down:
            _log_database_down(sys.exc_info()[1])
            if request.path.startswith("/api/"):
                response = JsonResponse({"detail": DATABASE_DOWN_DETAIL}, status=503)
            else:
                response = HttpResponse(
                    f"<!doctype html><title>HAI Registry: unavailable</title><h1>Unavailable</h1><p>{DATABASE_DOWN_DETAIL}</p>",
                    status=503,
                )
            response["Retry-After"] = RETRY_AFTER_SECONDS
            return response
        if request.path.startswith("/api/"):
            status = 404 if handler.__name__ == "page_not_found" else 500
            detail = "Not found." if status == 404 else "Server error."
            return JsonResponse({"detail": detail}, status=status)
        return handler(request, *args, **kwargs)

    return view
