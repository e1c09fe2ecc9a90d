"""Bulk CSV import of implantations (placeholder, completed below)."""
from import_export import resources

from .models import Implantation


class ImplantationResource(resources.ModelResource):
    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.user = user

    class Meta:
        model = Implantation
