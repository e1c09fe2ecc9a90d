"""The schema and its documentation page (kept apart from ``api.schema``, which the schema generator imports)."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

from .parameters import StrictQueryParameters


class SchemaView(StrictQueryParameters, SpectacularAPIView):
    """The OpenAPI description, for logged-in users; ``?format=json|yaml`` and ``?lang=`` only."""

    permission_classes = [IsAuthenticated]
    extra_query_parameters = ("lang",)


class DocsView(StrictQueryParameters, SpectacularSwaggerView):
    """Swagger UI over ``SchemaView``, for logged-in users."""

    permission_classes = [IsAuthenticated]
