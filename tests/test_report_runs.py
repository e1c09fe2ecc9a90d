"""Report runs in eager mode: one report and one email per centre, idempotent tasks, frozen data cut."""

import datetime
import smtplib
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from reports import rendering, services, tasks
from reports.models import CentreReport, ReportRun
from sites.models import Role

from . import factories, report_world

PERIOD = datetime.date(2024, 6, 1)
REAL_RENDER_PDF = rendering.render_pdf


@pytest.fixture
def media(settings, tmp_path, print_stand_in):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def real_pdf(media, monkeypatch):
    """This module's one run printed by WeasyPrint itself, end to end."""
    monkeypatch.setattr(rendering, "render_pdf", REAL_RENDER_PDF)


@pytest.fixture
def centres(db, media):
    return report_world.build()


def run_now(django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(PERIOD, **kwargs)
    return ReportRun.objects.get(pk=run.pk)


def test_run_reports_command_makes_and_sends_one_report_per_centre(
    real_pdf, centres, django_capture_on_commit_callbacks, capsys
):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_reports", "--period", "2024-06")
    run = ReportRun.objects.get()
    assert run.status == ReportRun.Status.COMPLETED and run.finished_at >= run.started_at
    assert run.snapshot.name.endswith(".json.gz")
    reports = list(run.centre_reports.select_related("centre"))
    assert [(r.centre.code, r.status, r.delivery_state, r.attempts) for r in reports] == [
        (c.code, "rendered", "sent", 1) for c in centres
    ]
    assert len(mail.outbox) == 3
    for message, centre in zip(sorted(mail.outbox, key=lambda m: m.to[0]), centres, strict=True):
        assert message.to == [f"lead@{centre.code.lower()}.example.org"]
        assert centre.code in message.subject and "June 2024" in message.subject
        ((name, content, mimetype),) = message.attachments
        assert mimetype == "application/pdf" and content.startswith(b"%PDF")
    assert f"Run {run.pk}" in capsys.readouterr().out


def test_one_centre_on_demand(centres, django_capture_on_commit_callbacks):
    run = run_now(django_capture_on_commit_callbacks, centre_codes=["RPT-2"])
    assert list(run.centre_reports.values_list("centre__code", flat=True)) == ["RPT-2"]
    assert [m.to for m in mail.outbox] == [["lead@rpt-2.example.org"]]


def test_unknown_centre_or_period_is_a_clear_error(centres):
    with pytest.raises(ValueError, match="No centre with code NOPE"):
        services.start_run(PERIOD, centre_codes=["NOPE"])
    with pytest.raises(ValueError, match="use YYYY-MM"):
        services.parse_period("June")


def test_tasks_run_twice_make_and_send_once(centres, django_capture_on_commit_callbacks):
    run = run_now(django_capture_on_commit_callbacks)
    report = run.centre_reports.first()
    checksum = report.checksum
    tasks.produce_centre_report.apply(args=[report.pk, run.pk])
    tasks.execute_run.apply(args=[run.pk])
    report.refresh_from_db()
    assert len(mail.outbox) == 3 and report.checksum == checksum and report.attempts == 1


def test_transient_smtp_failure_is_retried_and_sent_once(centres, django_capture_on_commit_callbacks):
    real_send = mail.EmailMessage.send
    calls = {"n": 0}

    def flaky(message, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise smtplib.SMTPServerDisconnected("connection lost")
        return real_send(message, *args, **kwargs)

    with mock.patch.object(mail.EmailMessage, "send", flaky):
        # Eager mode hands the retry back instead of sleeping; a worker would run it after the backoff.
        with pytest.raises(Retry):
            run_now(django_capture_on_commit_callbacks, centre_codes=["RPT-1"])
        report = CentreReport.objects.get()
        assert (report.delivery_state, report.attempts, "connection lost" in report.error) == ("pending", 1, True)
        tasks.produce_centre_report.apply(args=[report.pk, report.run_id])
    report.refresh_from_db()
    assert (report.delivery_state, report.attempts, len(mail.outbox)) == ("sent", 2, 1)
    assert ReportRun.objects.get().status == ReportRun.Status.COMPLETED


def test_a_centre_without_recipients_does_not_block_the_run(db, media, django_capture_on_commit_callbacks):
    report_world.build(centres=1, recipients=False)
    run = run_now(django_capture_on_commit_callbacks)
    assert run.centre_reports.get().delivery_state == "no_recipients" and run.status == "completed"
    assert mail.outbox == []


def test_rows_entered_after_the_cut_are_excluded_and_rerendering_gives_the_same_numbers(
    centres, django_capture_on_commit_callbacks
):
    cut = timezone.now()
    late = factories.ImplantationFactory(patient__centre=centres[0])
    late.created_at = cut + datetime.timedelta(minutes=5)
    late.save()
    run = run_now(django_capture_on_commit_callbacks, data_cut=cut)
    report = run.centre_reports.get(centre=centres[0])
    first = report.numbers
    # Data corrected after the run: the run's numbers must not move.
    factories.ImplantationFactory(patient__centre=centres[0])
    CentreReport.objects.filter(pk=report.pk).update(status="pending")
    services.render_report(report.pk)
    report.refresh_from_db()
    assert report.numbers == first
    from reports import snapshot

    with run.snapshot.open("rb") as handle:
        rows, _ = snapshot.load(handle.read())
    assert late.pk not in {row.id for row in rows} and len(rows) == 18


def test_monthly_schedule_starts_the_previous_month(centres, django_capture_on_commit_callbacks):
    task = PeriodicTask.objects.get(task="reports.tasks.start_monthly_run")
    assert (task.crontab.day_of_month, task.crontab.hour, task.crontab.minute, task.enabled) == ("1", "6", "0", True)
    with mock.patch("reports.services.timezone.localdate", return_value=datetime.date(2026, 11, 1)):
        with django_capture_on_commit_callbacks(execute=True):
            run_id = tasks.start_monthly_run.apply().get()
    assert ReportRun.objects.get(pk=run_id).period == datetime.date(2026, 10, 1)


def test_a_monthly_beat_delivered_twice_gives_one_run(centres, django_capture_on_commit_callbacks, mailoutbox):
    with mock.patch("reports.services.timezone.localdate", return_value=datetime.date(2026, 11, 1)):
        with django_capture_on_commit_callbacks(execute=True):
            first = tasks.start_monthly_run.apply().get()
        sent = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            second = tasks.start_monthly_run.apply().get()
    assert first == second
    assert ReportRun.objects.filter(period=datetime.date(2026, 10, 1)).count() == 1
    assert sent > 0 and len(mailoutbox) == sent  # no centre is emailed twice


def test_the_database_refuses_a_second_scheduled_run_of_a_period(centres):
    services.start_run(PERIOD, dispatch=False, scheduled=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        services.start_run(PERIOD, dispatch=False, scheduled=True)
    services.start_run(PERIOD, dispatch=False)  # a coordinator's re-run of the period stays possible
    assert ReportRun.objects.filter(period=PERIOD).count() == 2


def test_racing_deliveries_share_the_winners_run(centres):
    winner = services.start_run(PERIOD, dispatch=False, scheduled=True)
    # The loser looked before the winner committed: it finds nothing, then meets the constraint.
    with mock.patch("reports.services.scheduled_run_of", side_effect=[None, winner]):
        run, created = services.start_scheduled_run(PERIOD)
    assert (run.pk, created) == (winner.pk, False)
    assert ReportRun.objects.filter(period=PERIOD).count() == 1


@pytest.mark.parametrize(
    "role,centre_index,sees",
    [
        (Role.COORDINATOR, None, {"RPT-1", "RPT-2", "RPT-3"}),
        (Role.DATA_MANAGER, 0, {"RPT-1"}),
        (Role.CENTRE_LEAD, 1, {"RPT-2"}),
        (Role.INVESTIGATOR, None, set()),
    ],
)
def test_reports_api_lists_a_centres_reports_to_its_users_only(
    centres, django_capture_on_commit_callbacks, role, centre_index, sees
):
    run_now(django_capture_on_commit_callbacks)
    user = factories.user_with_role(role, centres[centre_index] if centre_index is not None else None)
    client = APIClient()
    client.force_authenticate(user)
    rows = client.get("/api/v1/reports/").json()["results"]
    assert {row["centre"] for row in rows} == sees
    for report in CentreReport.objects.select_related("centre"):
        response = client.get(f"/api/v1/reports/{report.pk}/pdf/")
        if report.centre.code in sees:
            assert response.status_code == 200 and b"".join(response.streaming_content).startswith(b"%PDF")
        else:
            assert response.status_code == 404


def test_coordinator_starts_a_run_from_the_admin(centres, client, coordinator, django_capture_on_commit_callbacks):
    client.force_login(coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/reports/reportrun/add/", {"period": "2024-06-01", "data_cut_0": "", "data_cut_1": ""}
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert ReportRun.objects.get().triggered_by == coordinator and len(mail.outbox) == 3


def test_data_managers_cannot_start_runs(centres, client, data_manager_a):
    client.force_login(data_manager_a)
    assert client.get("/admin/reports/reportrun/add/").status_code == 403


def test_queries_per_centre_report_do_not_grow_with_the_registry(db, media, django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_one_report(per_centre):
        CentreReport.objects.all().delete()
        ReportRun.objects.all().delete()
        with django_capture_on_commit_callbacks(execute=False):
            run = services.start_run(PERIOD, dispatch=False)
        services.prepare_run(run.pk)
        report = run.centre_reports.order_by("centre__code").first()
        with CaptureQueriesContext(connection) as queries:
            services.render_report(report.pk)
            services.deliver_report(report.pk)
        return len(queries)

    report_world.build(centres=2, per_centre=3)
    small = queries_for_one_report(3)
    report_world.build(centres=2, per_centre=27, recipients=False)  # ten times the patients, same centres
    assert queries_for_one_report(30) == small


def test_centre_users_download_their_report_from_the_admin_page(centres, client, django_capture_on_commit_callbacks):
    run_now(django_capture_on_commit_callbacks)
    user = factories.user_with_role(Role.CENTRE_LEAD, centres[0])
    client.force_login(user)
    page = client.get("/admin/reports/centrereport/").content.decode()
    own = CentreReport.objects.get(centre=centres[0])
    assert f'href="/api/v1/reports/{own.pk}/pdf/"' in page and "/media/" not in page
    assert client.get(f"/api/v1/reports/{own.pk}/pdf/").status_code == 200
    other = CentreReport.objects.get(centre=centres[1])
    assert f"/api/v1/reports/{other.pk}/pdf/" not in page
    assert client.get(f"/api/v1/reports/{other.pk}/pdf/").status_code == 404
