from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from .errors import ErrorSerializer

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description='The ETag of your last read of the record, e.g. `"3"` (RFC 9110 §13.1.1). Without it: 428; '
    "if the record changed since: 412.",
)


class RegistryAutoSchema(AutoSchema):
    """Documents the error responses every operation can return, in the one error shape,
    and the version a conditional write must name (``api.preconditions``)."""

    def _is_conditional_write(self):
        from .preconditions import WRITES_NEEDING_A_VERSION, ConditionalWritesMixin

        return self.method in WRITES_NEEDING_A_VERSION and isinstance(self.view, ConditionalWritesMixin)

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        return [*parameters, IF_MATCH] if self._is_conditional_write() else parameters

    def _get_request_body(self, direction="request"):
        if self.method == "DELETE" and self._is_conditional_write():
            from .serializers import DeletionSerializer

            component = self.resolve_serializer(DeletionSerializer, direction)
            return {"content": {"application/json": {"schema": component.ref}}, "required": True}
        return super()._get_request_body(direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # 400 bad input or filters, 404 unknown record or page, 406 unknown ?format=.
        codes = ["400", "401", "403", "404", "406", "429"]
        if self._is_conditional_write():
            codes += ["412", "428"]  # a stale or a missing If-Match
        for code in codes:
            responses.setdefault(code, self._get_response_for_code(ErrorSerializer, code, direction=direction))
        return responses
