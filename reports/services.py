"""Report runs: start, snapshot, render, deliver. Every step is idempotent.

Celery tasks (``reports.tasks``) only pass ids to these functions. A task that
runs twice (a retry, or a redelivery after a worker died) finds the work done
and does nothing, so each centre's report is made once and emailed once.
"""

import calendar
import datetime
import hashlib
import logging
import time

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sites.models import Centre

from . import snapshot
from .models import CentreReport, ReportRun

logger = logging.getLogger(__name__)

METHOD_VERSION = "2026.12-1"  # issue 8: fixed windows, competing risks, delayed entry, suppression


def parse_period(text):
    """'2026-10' -> date(2026, 10, 1); a clear error otherwise."""
    try:
        return datetime.datetime.strptime(text, "%Y-%m").date()
    except ValueError as error:
        raise ValueError(f"'{text}' is not a month; use YYYY-MM, e.g. 2026-10.") from error


def period_end(period):
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


def default_data_cut(period):
    """The cut is the first moment after the period, or now if that is still to come."""
    first_of_next = period_end(period) + datetime.timedelta(days=1)
    cut = timezone.make_aware(datetime.datetime.combine(first_of_next, datetime.time.min))
    return min(cut, timezone.now())


def previous_month(today=None):
    today = today or timezone.localdate()
    return (today.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)


@transaction.atomic
def start_run(period, *, centre_codes=None, data_cut=None, user=None, dispatch=True):
    """Create a run and one report per active centre (or the named ones), then hand it to the workers."""
    if period.day != 1:
        raise ValueError("A run's period is a month: give its first day.")
    centres = Centre.objects.filter(active=True)
    if centre_codes:
        centres = Centre.objects.filter(code__in=centre_codes)
        missing = set(centre_codes) - set(centres.values_list("code", flat=True))
        if missing:
            raise ValueError(f"No centre with code {', '.join(sorted(missing))}.")
    run = ReportRun.objects.create(
        period=period,
        data_cut=data_cut or default_data_cut(period),
        method_version=METHOD_VERSION,
        triggered_by=user,
    )
    CentreReport.objects.bulk_create([CentreReport(run=run, centre=centre) for centre in centres])
    if dispatch:
        from .tasks import execute_run

        transaction.on_commit(lambda: execute_run.delay(run.pk))
    return run


def prepare_run(run_id):
    """Freeze the cohort (once) and mark the run running; returns the reports still to do."""
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().get(pk=run_id)
        if run.status == ReportRun.Status.PENDING:
            run.status = ReportRun.Status.RUNNING
            run.started_at = timezone.now()
        if not run.snapshot:
            run.snapshot.save(f"run-{run.pk}.json.gz", ContentFile(snapshot.build(run.data_cut)), save=False)
        run.save()
    return list(
        run.centre_reports.exclude(delivery_state__in=[CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS])
        .exclude(status=CentreReport.Status.FAILED)
        .values_list("pk", flat=True)
    )


_snapshot_cache = {}


def _load_snapshot(run):
    """Each worker reads a run's snapshot once, not once per centre."""
    key = (run.pk, run.snapshot.name)
    if key not in _snapshot_cache:
        _snapshot_cache.clear()
        with run.snapshot.open("rb") as handle:
            _snapshot_cache[key] = snapshot.load(handle.read())
    return _snapshot_cache[key]


def render_report(report_id):
    """Render one centre's HTML and PDF from the run's snapshot, unless already done."""
    from .rendering import render_centre_report

    report = CentreReport.objects.select_related("run", "centre").get(pk=report_id)
    if report.status == CentreReport.Status.RENDERED:
        return report
    run = report.run
    rows, complication_types = _load_snapshot(run)
    started = time.monotonic()
    numbers, html, pdf = render_centre_report(
        rows,
        centre_code=report.centre.code,
        period_start=run.period,
        period_end=period_end(run.period),
        data_cut=run.data_cut,
        complication_types=complication_types,
        method_version=run.method_version,
    )
    name = f"{run.period:%Y-%m}-{report.centre.code}-run{run.pk}"
    with transaction.atomic():
        report = CentreReport.objects.select_for_update().get(pk=report_id)
        if report.status == CentreReport.Status.RENDERED:
            return report  # another delivery of this task got here first
        report.html.save(f"{name}.html", ContentFile(html.encode()), save=False)
        report.pdf.save(f"{name}.pdf", ContentFile(pdf), save=False)
        report.checksum = hashlib.sha256(pdf).hexdigest()
        report.numbers = numbers
        report.status = CentreReport.Status.RENDERED
        report.render_seconds = time.monotonic() - started
        report.rendered_at = timezone.now()
        report.save()
    return report


def _message(report, recipients):
    run = report.run
    month = f"{run.period:%B %Y}"
    message = EmailMessage(
        subject=f"HAI Registry benchmark report - {report.centre.code} - {month}",
        body=(
            f"Attached is the HAI Registry benchmark report for {report.centre.name} ({report.centre.code}), {month}.\n\n"
            f"Data cut: {run.data_cut:%Y-%m-%d %H:%M %Z}. Method version {run.method_version}.\n"
            f"Other centres appear under anonymous codes; small counts are suppressed.\n"
            f"SHA-256 of the PDF: {report.checksum}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        # The same report always carries the same Message-ID, so a mail system can drop a duplicate.
        headers={"Message-ID": f"<hai-report-{report.pk}-{report.checksum[:16]}@hai-registry>"},
    )
    with report.pdf.open("rb") as handle:
        message.attach(f"hai-benchmark-{report.centre.code}-{run.period:%Y-%m}.pdf", handle.read(), "application/pdf")
    return message


def deliver_report(report_id):
    """Email the PDF to the centre's recipients, exactly once.

    The report's row stays locked from the check through the SMTP exchange to
    the "sent" mark, all in one transaction: a second delivery of the task
    waits for the lock and then finds the report sent. If the worker dies
    before the commit, the transaction rolls back and the redelivered task
    sends; only a death after the mail server accepted the message and before
    the commit could send twice, and then both copies carry the same
    Message-ID so the mail system can drop one.
    """
    with transaction.atomic():
        report = CentreReport.objects.select_for_update().select_related("run", "centre").get(pk=report_id)
        if report.delivery_state in (CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS):
            return report
        if report.status != CentreReport.Status.RENDERED:
            raise RuntimeError(f"Report {report_id} is not rendered yet.")
        recipients = sorted(report.centre.report_recipients.values_list("email", flat=True))
        if not recipients:
            report.delivery_state = CentreReport.Delivery.NO_RECIPIENTS
            report.save(update_fields=["delivery_state"])
            return report
        _message(report, recipients).send()
        report.delivery_state = CentreReport.Delivery.SENT
        report.recipients = recipients
        report.attempts += 1
        report.sent_at = timezone.now()
        report.error = ""
        report.save(update_fields=["delivery_state", "recipients", "attempts", "sent_at", "error"])
    return report


def record_failed_attempt(report_id, error):
    """A transient failure (SMTP down): count it, keep the report pending for the retry."""
    CentreReport.objects.filter(pk=report_id).update(attempts=F("attempts") + 1, error=str(error)[:2000])


def mark_failed(report_id, error):
    CentreReport.objects.filter(pk=report_id).exclude(delivery_state=CentreReport.Delivery.SENT).update(
        status=CentreReport.Status.FAILED, delivery_state=CentreReport.Delivery.FAILED, error=str(error)[:2000]
    )
    logger.error("Centre report %s failed: %s", report_id, error)


def finish_run_if_done(run_id):
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().get(pk=run_id)
        if run.finished_at:
            return run
        states = list(run.centre_reports.values_list("status", "delivery_state"))
        done = all(
            status == CentreReport.Status.FAILED
            or delivery in (CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS)
            for status, delivery in states
        )
        if done:
            failed = any(status == CentreReport.Status.FAILED for status, _ in states)
            run.status = ReportRun.Status.FAILED if failed else ReportRun.Status.COMPLETED
            run.started_at = run.started_at or timezone.now()
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "started_at", "finished_at"])
    return run
