from django.db import models

from . import access


class CentreScopedQuerySet(models.QuerySet):
    """The one place that turns "which centres may this user see" into rows.

    Each model names the path to its centre in ``centre_lookup`` (e.g.
    ``"implantation__patient__centre"``); admin, API and reports all call
    ``visible_to`` / ``editable_by`` and never filter on centre themselves.
    """

    def _restrict(self, centre_ids):
        if centre_ids is access.ALL_CENTRES:
            return self
        return self.filter(**{f"{self.model.centre_lookup}__in": centre_ids})

    def visible_to(self, user):
        return self._restrict(access.visible_centre_ids(user))

    def readable_by(self, user):
        """What the API may return to this user (investigators: every centre, de-identified by the serializer)."""
        return self._restrict(access.readable_centre_ids(user))

    def editable_by(self, user):
        return self._restrict(access.editable_centre_ids(user))
