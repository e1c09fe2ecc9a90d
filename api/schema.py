from drf_spectacular.openapi import AutoSchema

from .errors import ErrorSerializer


class RegistryAutoSchema(AutoSchema):
    """Documents the error responses every operation can return, in the one error shape."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["401", "403", "429"]
        if self.method in ("POST", "PUT", "PATCH") or self._is_list_view() or self.method == "GET":
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        for code in codes:
            responses.setdefault(code, self._get_response_for_code(ErrorSerializer, code, direction=direction))
        return responses
