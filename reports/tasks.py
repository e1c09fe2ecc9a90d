"""Thin Celery tasks: they take ids and call ``reports.services``.

acks_late + reject_on_worker_lost (settings): a task whose worker dies is
delivered again; the services make a second delivery harmless.
"""

import logging
import smtplib
import threading

from celery import shared_task
from django.db import OperationalError, connection, connections

from . import services

TRANSIENT = (OSError, smtplib.SMTPException, OperationalError, ConnectionError)
logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def execute_run(self, run_id):
    report_ids = services.prepare_run(run_id)
    services.mark_dispatched(report_ids=report_ids)
    for report_id in report_ids:
        produce_centre_report.delay(report_id, run_id)
    services.finish_run_if_done(run_id)


@shared_task(bind=True, acks_late=True, autoretry_for=TRANSIENT, retry_backoff=5, retry_backoff_max=300, max_retries=8)
def produce_centre_report(self, report_id, run_id):
    services.mark_dispatched(report_ids=[report_id])  # at work now: the sweeper waits a full time limit from here
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
def sweep_unfinished_runs():
    """Every few minutes (beat): send again what the broker lost (``services.work_to_send_again``)."""
    runs, reports = services.work_to_send_again()
    for run_id in runs:
        execute_run.delay(run_id)
    for report_id, run_id in reports:
        produce_centre_report.delay(report_id, run_id)
    return len(runs), len(reports)


@shared_task
def start_monthly_run():
    """Started by beat on the 1st of each month: the previous month, every active centre; once per month."""
    run, _ = services.start_scheduled_run(services.previous_month())
    return run.pk


# --- Dispatch: to the workers, or to a thread of this process when tasks run eagerly.

_background_threads = set()
_background_lock = threading.Lock()
# One run at a time, like a single worker: runs share the per-process snapshot cache
# (``services._load_snapshot``), and SQLite takes one writer at a time anyway.
_one_run_at_a_time = threading.Lock()


def dispatch_run(run_id, *, background=False):
    """Hand a committed run to the workers (``services.start_run`` calls this on commit).

    With a broker, ``.delay()`` only queues the run. When tasks run eagerly (no
    Redis), ``.delay()`` would do the whole run in the caller; with
    ``background=True`` a daemon thread of this process does it instead, so a
    web request returns at once. That thread has its own database connection
    and sees committed rows only: if the caller is still inside a transaction
    (a test wrapped in one), the run stays in the caller.
    """
    if background and execute_run.app.conf.task_always_eager and not connection.in_atomic_block:
        thread = threading.Thread(
            target=_execute_in_background, args=(run_id,), name=f"report-run-{run_id}", daemon=True
        )
        with _background_lock:
            _background_threads.add(thread)
        thread.start()
        return thread
    services.mark_dispatched(run_id=run_id)
    return execute_run.delay(run_id)


def _execute_in_background(run_id):
    """``execute_run`` as a worker would do it: one centre's failure does not stop the others."""
    try:
        with _one_run_at_a_time:
            for report_id in services.prepare_run(run_id):
                result = produce_centre_report.apply(args=[report_id, run_id], throw=False)
                if not result.successful():  # failed (marked so), or a transient error a worker would retry
                    logger.error("Run %s: centre report %s: %s %r", run_id, report_id, result.state, result.result)
            services.finish_run_if_done(run_id)
    except Exception:
        logger.exception("Report run %s stopped in its background thread.", run_id)
    finally:
        connections.close_all()  # this thread's connections only
        with _background_lock:
            _background_threads.discard(threading.current_thread())


def wait_for_background_runs(timeout=None):
    """Wait for the eager runs' threads (tests, before their database goes); True if none is left."""
    with _background_lock:
        threads = list(_background_threads)
    for thread in threads:
        thread.join(timeout)
    return not any(thread.is_alive() for thread in threads)
