"""Strict requests: a query parameter a view does not take is a 400 that names it (issue 10).

A misspelt filter (``?indicaton=adjuvant``) would otherwise be ignored and answer with every row,
which looks like a result. Each view takes ``format`` and, on lists, its filter set's filters, its
ordering parameter and the pagination parameters; a view adds its own in ``extra_query_parameters``
or by overriding ``allowed_query_parameters`` (the statistics endpoints: their query fields).
"""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.settings import api_settings

UNKNOWN = "Unknown query parameter. This endpoint takes: {allowed}."


def check_query_parameters(request, allowed):
    unknown = sorted(name for name in request.query_params if name not in allowed)
    if unknown:
        message = UNKNOWN.format(allowed=", ".join(sorted(allowed)))
        raise ValidationError({name: [message] for name in unknown})


def filterset_parameters(view):
    """The query parameters of a view's filter backends (filters and ordering)."""
    names = set()
    for backend_class in getattr(view, "filter_backends", ()):
        backend = backend_class()
        if isinstance(backend, DjangoFilterBackend):
            filterset_class = backend.get_filterset_class(view, getattr(view, "queryset", None))
            if filterset_class is not None:
                names |= set(filterset_class.base_filters)
        elif isinstance(backend, OrderingFilter):
            names.add(backend.ordering_param)
    return names


def pagination_parameters(view):
    paginator = getattr(view, "paginator", None)
    if paginator is None:
        return set()
    names = {getattr(paginator, "page_query_param", None), getattr(paginator, "page_size_query_param", None)}
    return {name for name in names if name}


class StrictQueryParameters:
    """Mixin for API views: checked in ``initial()``, after authentication and permissions (401/403 first)."""

    extra_query_parameters = ()

    def allowed_query_parameters(self, request):
        allowed = {api_settings.URL_FORMAT_OVERRIDE, *self.extra_query_parameters}
        if getattr(self, "action", None) == "list":
            allowed |= filterset_parameters(self) | pagination_parameters(self)
        return allowed

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        check_query_parameters(request, self.allowed_query_parameters(request))
