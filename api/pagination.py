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

# A list's count is exact up to this many rows past the page's first row (issue 16): beyond, counting
# would cost more than the page (a cold exact count grew from 2.5 ms at 10,000 implantations to 13 ms
# at 100,000; bench/README.md). The response then says the count is a floor (``count_is_exact``).
COUNT_CAP = 10_000


class VersionedCountPaginator(Paginator):
    """A page's count, capped, and kept until the registry changes.

    At most ``COUNT_CAP`` rows past the requested page's first row are counted, so a page costs the same
    at any registry size; if there are more, ``count`` is that floor (page's offset + ``COUNT_CAP``),
    ``count_is_exact`` is false and the page still links to the next one. An exact count is cached under
    ``count_key`` (``api.cache_keys.request_key``: the data version, the view, the reader's scope and
    the query's filters, not the page), so it is computed once per question and data version.
    """

    def __init__(self, object_list, per_page, *, count_key=None, offset=0, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.count_key = count_key
        self.offset = offset
        self.count_is_exact = True

    @cached_property
    def count(self):
        cached = cache.get(self.count_key) if self.count_key is not None else None
        if cached is not None:
            return cached
        limit = self.offset + COUNT_CAP
        # Only the key in the counted rows: the derived columns are computed for a filter on them, never
        # for the count's own SELECT (10,000 first-dose lookups otherwise).
        counted = self.object_list.order_by().values("pk")[: limit + 1].count()
        if counted > limit:
            self.count_is_exact = False
            return limit
        if self.count_key is not None:
            cache.set(self.count_key, counted, timeout=3600)
        return counted


class RegistryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    # What does not change which rows are counted.
    NOT_COUNTED = ("page", "page_size", "format", "ordering", "expand")

    def paginate_queryset(self, queryset, request, view=None):
        key = request_key("count", view, request, ignored=self.NOT_COUNTED) if view is not None else None
        self.django_paginator_class = partial(VersionedCountPaginator, count_key=key, offset=self._offset(request))
        return super().paginate_queryset(queryset, request, view)

    def _offset(self, request):
        """The requested page's first row (0 for a page number that is not one: DRF answers that with a 404)."""
        try:
            number = int(request.query_params.get(self.page_query_param, 1))
        except ValueError:
            return 0
        return max(number - 1, 0) * self.get_page_size(request)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_is_exact"] = self.page.paginator.count_is_exact
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["count"]["description"] = (
            f"Rows matching the query; when there are more than {COUNT_CAP:,} past this page's first row, "
            f"that floor (this page's offset + {COUNT_CAP:,}) and count_is_exact is false."
        )
        schema["properties"]["count_is_exact"] = {
            "type": "boolean",
            "description": "False when count is a floor: more rows match than were counted.",
        }
        schema["required"] = [*schema["required"], "count_is_exact"]
        return schema

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
