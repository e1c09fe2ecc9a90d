"""A centre report that cannot be made or sent is recorded as failed, with its error (``services.mark_failed``),
and its run then finishes as "completed with failures" instead of waiting for it forever. A report already
sent is never turned into a failure."""

import datetime
import logging
from unittest import mock

import pytest
from django.utils import timezone

from reports import services, tasks
from reports.models import CentreReport, ReportRun

from . import factories

PERIOD = datetime.date(2024, 6, 1)


@pytest.fixture
def run(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    for code in ("RPT-1", "RPT-2"):
        factories.CentreFactory(code=code)
    return services.start_run(PERIOD, dispatch=False)


def states(run):
    return list(run.centre_reports.order_by("centre__code").values_list("status", "delivery_state", "error"))


def test_a_failed_report_records_its_state_and_error(run, caplog):
    first, second = run.centre_reports.order_by("centre__code")
    with caplog.at_level(logging.ERROR, logger="reports.services"):
        services.mark_failed(first.pk, ValueError("no surgeon for pump 12"))
    assert states(run) == [
        ("failed", "failed", "no surgeon for pump 12"),
        ("pending", "pending", ""),  # the other centre's report is not touched
    ]
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert f"Centre report {first.pk} failed" in caplog.records[0].getMessage()


def test_a_long_error_is_kept_to_its_first_2000_characters(run):
    report = run.centre_reports.first()
    services.mark_failed(report.pk, "x" * 5000)
    report.refresh_from_db()
    assert report.error == "x" * 2000 and report.status == CentreReport.Status.FAILED


def test_a_sent_report_is_never_marked_failed(run):
    report = run.centre_reports.first()
    sent_at = timezone.now()
    CentreReport.objects.filter(pk=report.pk).update(
        status=CentreReport.Status.RENDERED, delivery_state=CentreReport.Delivery.SENT, sent_at=sent_at
    )
    services.mark_failed(report.pk, "a late retry that failed")
    report.refresh_from_db()
    assert (report.status, report.delivery_state, report.error, report.sent_at) == ("rendered", "sent", "", sent_at)


def test_the_run_finishes_as_failed_once_its_reports_have_failed(run):
    for report in run.centre_reports.all():
        services.mark_failed(report.pk, "bad data")
    run = services.finish_run_if_done(run.pk)
    assert run.status == ReportRun.Status.FAILED and run.finished_at is not None


def test_a_report_whose_rendering_raises_is_marked_failed_by_its_task(run):
    first, second = run.centre_reports.order_by("centre__code")
    with mock.patch.object(services, "render_report", side_effect=ValueError("bad data")):
        for report in (first, second):
            with pytest.raises(ValueError):
                tasks.produce_centre_report.apply(args=(report.pk, run.pk), throw=True)
    assert states(run) == [("failed", "failed", "ValueError('bad data')")] * 2
    run.refresh_from_db()
    assert run.status == ReportRun.Status.FAILED and run.finished_at is not None
