import hashlib

from django.core.cache import cache
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination

from reports.cohort import data_version


class VersionedCountPaginator(Paginator):
    """Counting 100,000 rows costs more than the page itself; a count is kept until the registry changes.

    The key is the count query's SQL with its parameters (so the user's scope
    and filters are in it) and the registry's data version.
    """

    @cached_property
    def count(self):
        query = self.object_list.order_by()
        try:
            sql, params = query.query.sql_with_params()
        except Exception:  # an empty result set ("IN ()") has no SQL
            return super().count
        key = "count:" + hashlib.sha256(f"{data_version()}|{sql}|{params!r}".encode()).hexdigest()
        value = cache.get(key)
        if value is None:
            value = query.count()
            cache.set(key, value, timeout=3600)
        return value


class RegistryPagination(PageNumberPagination):
    django_paginator_class = VersionedCountPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

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
    """Whatever the client orders by, ties are broken by id so pages never overlap or skip."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or queryset.query.order_by or ["pk"])
        if not any(field.lstrip("-") in ("pk", "id") for field in ordering):
            ordering.append("pk")
        return ordering

    def filter_queryset(self, request, queryset, view):
        return queryset.order_by(*self.get_ordering(request, queryset, view))
