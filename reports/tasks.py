"""Thin Celery tasks: they take ids and call ``reports.services``.

acks_late + reject_on_worker_lost (settings): a task whose worker dies is
delivered again; the services make a second delivery harmless.
"""

import smtplib

from celery import shared_task
from django.db import OperationalError

from . import services

TRANSIENT = (OSError, smtplib.SMTPException, OperationalError, ConnectionError)


@shared_task(bind=True, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def execute_run(self, run_id):
    for report_id in services.prepare_run(run_id):
        produce_centre_report.delay(report_id, run_id)
    services.finish_run_if_done(run_id)


@shared_task(bind=True, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def produce_centre_report(self, report_id, run_id):
    try:
        services.render_report(report_id)
        services.deliver_report(report_id)
    except TRANSIENT as error:
        services.record_failed_attempt(report_id, error)
        if self.request.retries >= self.max_retries:
            services.mark_failed(report_id, "Gave up after repeated transient failures.")
            services.finish_run_if_done(run_id)
        raise
    except Exception as error:  # a bug or bad data: retrying will not help
        services.mark_failed(report_id, repr(error))
        services.finish_run_if_done(run_id)
        raise
    services.finish_run_if_done(run_id)


@shared_task
def start_monthly_run():
    """Started by beat on the 1st of each month: the previous month, every active centre."""
    run = services.start_run(services.previous_month())
    return run.pk
