from functools import partial

from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Value
from django.db.models.functions import MD5, Cast, Concat
from django.utils.functional import cached_property
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination

from sites import access

from . import deidentify
from .cache_keys import request_key


class VersionedCountPaginator(Paginator):
    """Counting 100,000 rows costs more than the page itself; a count is kept until the registry changes.

    The key (``api.cache_keys.request_key``) is the data version, the view, the reader's scope and the
    query's filters (not the page), so the count is computed once per question and data version.
    """

    def __init__(self, object_list, per_page, *, count_key=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.count_key = count_key

    @cached_property
    def count(self):
        if self.count_key is None:
            return super().count
        value = cache.get(self.count_key)
        if value is None:
            value = self.object_list.order_by().count()
            cache.set(self.count_key, value, timeout=3600)
        return value


class RegistryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    # What does not change which rows are counted.
    NOT_COUNTED = ("page", "page_size", "format", "ordering", "expand")

    def paginate_queryset(self, queryset, request, view=None):
        key = request_key("count", view, request, ignored=self.NOT_COUNTED) if view is not None else None
        self.django_paginator_class = partial(VersionedCountPaginator, count_key=key)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request):
        """A page size the client asked for but that is not 1..max is an error, not silently replaced."""
        raw = request.query_params.getlist(self.page_size_query_param)
        if not raw:
            return self.page_size
        try:
            size = int(raw[-1])
        except ValueError:
            size = 0
        if len(raw) > 1 or not 1 <= size <= self.max_page_size:
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return size


class StableOrderingFilter(OrderingFilter):
    """Whatever the client orders by, ties are broken by id so pages never overlap or skip.

    An ordering term the view does not offer is a 400 (not silently dropped). Investigators may
    order only by the view's ``investigator_ordering_fields`` (no date, no id, no real code: a date
    could otherwise be recovered by bisection), and their ties and default order follow a keyed hash
    of the row's id, the same for them on every request and unrelated to entry order or dates.
    """

    def allowed_fields(self, request, queryset, view):
        if access.must_deidentify(request.user):
            model = queryset.model
            allowed = []
            for name in getattr(view, "investigator_ordering_fields", ()):
                # Belt and braces: never a date, a primary key or a reference, whatever a view declares.
                field = _model_field(model, name)
                if name in ("pk", "id") or field is None:
                    continue
                if (
                    isinstance(field, (models.DateField, models.DateTimeField))
                    or field.primary_key
                    or field.is_relation
                ):
                    continue
                allowed.append(name)
            return allowed
        return [item[0] for item in self.get_valid_fields(queryset, view, {"request": request})]

    def get_ordering(self, request, queryset, view):
        params = request.query_params.get(self.ordering_param)
        terms = [term.strip() for term in params.split(",") if term.strip()] if params else []
        if terms:
            allowed = self.allowed_fields(request, queryset, view)
            refused = [term for term in terms if term.lstrip("-") not in allowed]
            if refused:
                offered = ", ".join(allowed) or "none"
                message = f"Cannot order by {', '.join(refused)}. Fields you may order by: {offered}."
                raise ValidationError({self.ordering_param: [message]})
        if access.must_deidentify(request.user) and getattr(view, "opaque_kind", None):
            salt = Value(deidentify.ordering_salt(request))
            return [*terms, MD5(Concat(salt, Cast("pk", output_field=models.CharField()))).asc()]
        ordering = list(terms or self.get_default_ordering(view) or queryset.query.order_by or ["pk"])
        if not any(isinstance(field, str) and field.lstrip("-") in ("pk", "id") for field in ordering):
            ordering.append("pk")
        return ordering

    def filter_queryset(self, request, queryset, view):
        return queryset.order_by(*self.get_ordering(request, queryset, view))

    def get_schema_operation_parameters(self, view):
        fields = getattr(view, "ordering_fields", None)
        offered = ", ".join(fields) if isinstance(fields, (list, tuple)) else "any field"
        for_investigators = ", ".join(getattr(view, "investigator_ordering_fields", ())) or "none"
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": f"Comma-separated fields, `-` for descending: {offered}. "
                f"Investigators: {for_investigators} (never a date or an id). Anything else is a 400.",
                "schema": {"type": "string"},
            }
        ]


def _model_field(model, name):
    try:
        return model._meta.get_field(name)
    except Exception:  # an annotation or a derived value, not a model field
        return None
