"""Versioned writes: nothing is silently overwritten (issue 11).

Every record that people edit carries a version, 1 when created and one more at each save.
A save is a compare-and-swap: ``UPDATE ... SET version = v + 1 WHERE id = ... AND version = v``,
where ``v`` is the version the writer read. If someone else saved in between, no row matches and
the save raises ``StaleRecord`` instead of reverting their change (optimistic concurrency control,
Kung & Robinson 1981). This holds on every path that saves a model instance: the admin's forms and
inlines, the API, the import and the services.

The admin sets ``version`` from the form the user opened (``sites.admin_mixins``); the API from
the request's ``If-Match`` (RFC 9110 §13.1.1, ``api.preconditions``).
"""

from django.db import models


class StaleRecord(Exception):
    """The record was changed by someone else since the writer read it."""

    def __init__(self, record, read_version):
        self.record = record
        self.read_version = read_version
        super().__init__(f"{record._meta.verbose_name} {record.pk} was changed since version {read_version}.")


def last_change_of(record):
    """Who changed the record last and when, from its history: ``(username, datetime)`` or ``(None, None)``."""
    history = getattr(record, "history", None)
    last = history.order_by("-history_date", "-history_id").first() if history is not None else None
    if last is None:
        return None, None
    return (getattr(last, "history_user_name", "") or None), last.history_date


class Versioned(models.Model):
    version = models.PositiveIntegerField(
        # db_default: a row written without the ORM (a migration, a restore script) starts at 1 too.
        default=1,
        db_default=1,
        editable=False,
        help_text="1 when created, one more at each change; a write names the one it read.",
    )

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self._state.adding or self.pk is None:
            return super().save(*args, **kwargs)
        read_version = self.version
        claimed = type(self)._base_manager.filter(pk=self.pk, version=read_version).update(version=read_version + 1)
        if not claimed:
            raise StaleRecord(self, read_version)
        self.version = read_version + 1
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "version"}
        try:
            return super().save(*args, **kwargs)
        except BaseException:
            self.version = read_version  # the transaction rolls the claim back; the instance follows
            raise
