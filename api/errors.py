"""One error shape for every API response that is not a success.

    {"detail": "Invalid input.", "errors": {"field": ["message", ...]}}

``errors`` is present on 400 responses; other errors carry ``detail`` only.
Model-level ``ValidationError`` (from ``full_clean``) is reported the same way.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="A summary of what went wrong.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="On 400: messages per field; `non_field_errors` for the record as a whole.",
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
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": field_errors(response.data)}
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"detail": str(detail)}
    return response


def json_or_html(handler):
    """Django's own 404/500 pages, but in the API's error shape under /api/."""
    from django.http import JsonResponse

    def view(request, *args, **kwargs):
        if request.path.startswith("/api/"):
            status = 404 if handler.__name__ == "page_not_found" else 500
            detail = "Not found." if status == 404 else "Server error."
            return JsonResponse({"detail": detail}, status=status)
        return handler(request, *args, **kwargs)

    return view
