"""Tasks of the clinical record: after a withdrawal of consent, the stored reports rendered again; the nightly
data-quality checks (migration registry 0010) and pruning of temporary files (migration registry 0017)."""

from celery import shared_task
from django.db import OperationalError

TRANSIENT = (OSError, OperationalError, ConnectionError)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def rerender_stored_reports(report_ids):
    """The stored copies whose "Cases to review" lost an erased patient's cases (``registry.consent``)."""
    from .consent import rerender_stored_copy

    for report_id in report_ids:
        rerender_stored_copy(report_id)


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def check_data_quality(centre_id=None, rule_codes=None):
    """The data-quality rules (nightly, from Celery beat; migration registry 0010): raise, close, count."""
    from sites.models import Centre

    from .data_quality_services import run_checks

    centre = Centre.objects.get(pk=centre_id) if centre_id is not None else None
    counts = run_checks(centre=centre, rule_codes=rule_codes)
    return {code: vars(c) for code, c in counts.items()}


@shared_task(acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def prune_temporary_files():
    """Stale import uploads and report files no row refers to (``registry.services.prune_temporary_files``)."""
    from .services import prune_temporary_files as prune

    return prune()
