"""Tasks of the API: the nightly pruning of expired tokens (beat; migration api 0003)."""

from celery import shared_task
from django.db import OperationalError

TRANSIENT = (OSError, OperationalError, ConnectionError)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def delete_expired_tokens():
    """Expired API tokens, deleted in one statement (a request refuses its own expired token on sight)."""
    from .services import delete_expired_tokens as delete

    return delete()
