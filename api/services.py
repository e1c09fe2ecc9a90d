"""Writes of the API app that are not a record's: token housekeeping."""

from django.utils import timezone
from knox.models import get_token_model


def delete_expired_tokens(now=None):
    """Delete every expired API token; the number deleted."""
    token_model = get_token_model()
    _, deleted = token_model.objects.filter(expiry__lt=now or timezone.now()).delete()
    return deleted.get(token_model._meta.label, 0)
