from drf_spectacular.openapi import AutoSchema

from .errors import ErrorSerializer


class RegistryAutoSchema(AutoSchema):
    """Documents the error responses every operation can return, in the one error shape."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # 400 bad input or filters, 404 unknown record or page, 406 unknown ?format=.
        codes = ["400", "401", "403", "404", "406", "429"]
        for code in codes:
            responses.setdefault(code, self._get_response_for_code(ErrorSerializer, code, direction=direction))
        return responses
