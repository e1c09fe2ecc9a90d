from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class RegistryContentNegotiation(DefaultContentNegotiation):
    """An unknown ``?format=`` is 406 Not Acceptable (DRF's default answers 404)."""

    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            raise NotAcceptable(f"Unknown format '{format}'; use json or csv.")
        return matching
