from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination


class RegistryPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class StableOrderingFilter(OrderingFilter):
    """Whatever the client orders by, ties are broken by id so pages never overlap or skip."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or queryset.query.order_by or ["pk"])
        if not any(field.lstrip("-") in ("pk", "id") for field in ordering):
            ordering.append("pk")
        return ordering

    def filter_queryset(self, request, queryset, view):
        return queryset.order_by(*self.get_ordering(request, queryset, view))
