"""Tasks of the sites app: the nightly pruning of expired login sessions (beat; migration sites 0006)."""

from celery import shared_task
from django.db import OperationalError

TRANSIENT = (OSError, OperationalError, ConnectionError)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def delete_expired_sessions():
    from .services import delete_expired_sessions as delete

    return delete()
