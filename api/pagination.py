from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import PageNumberPagination


class RegistryPagination(PageNumberPagination):
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
