"""The sweeper: what the broker lost is sent again, from what the database says is unfinished (issue 17, item 6).

The end-to-end case, Redis restarted in the middle of a run with real workers, is in
tests/test_report_faults.py; here each rule of ``reports.services.work_to_send_again``.
"""

import datetime

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from registry import health
from reports import services, tasks
from reports.models import CentreReport, ReportRun

from . import factories

pytestmark = pytest.mark.django_db

LONG_AGO = datetime.timedelta(hours=2)


@pytest.fixture(autouse=True)
def resend_after_ten_minutes(settings):
    settings.REPORT_RESEND_AFTER_SECONDS = 600


def a_run(status=ReportRun.Status.RUNNING, dispatched_ago=LONG_AGO, started_ago=LONG_AGO):
    now = timezone.now()
    return ReportRun.objects.create(
        period=datetime.date(2026, 10, 1),
        data_cut=now - datetime.timedelta(days=20),
        method_version=services.METHOD_VERSION,
        status=status,
        started_at=None if status == ReportRun.Status.PENDING else now - started_ago,
        dispatched_at=None if dispatched_ago is None else now - dispatched_ago,
    )


def a_report(run, dispatched_ago=LONG_AGO, **fields):
    return CentreReport.objects.create(
        run=run,
        centre=factories.CentreFactory(),
        dispatched_at=None if dispatched_ago is None else timezone.now() - dispatched_ago,
        **fields,
    )


def test_a_report_sent_long_ago_and_not_done_is_sent_again():
    run = a_run()
    lost = a_report(run)
    runs, reports = services.work_to_send_again()
    assert (runs, reports) == ([], [(lost.pk, run.pk)])


def test_a_report_sent_recently_is_left_to_its_task():
    run = a_run()
    a_report(run, dispatched_ago=datetime.timedelta(minutes=5))
    assert services.work_to_send_again() == ([], [])


def test_what_was_sent_again_waits_a_full_period_before_the_next_time():
    run = a_run()
    a_report(run)
    assert services.work_to_send_again()[1]
    assert services.work_to_send_again() == ([], [])
    later = timezone.now() + datetime.timedelta(minutes=11)
    assert len(services.work_to_send_again(now=later)[1]) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"status": CentreReport.Status.RENDERED, "delivery_state": CentreReport.Delivery.SENT},
        {"status": CentreReport.Status.RENDERED, "delivery_state": CentreReport.Delivery.NO_RECIPIENTS},
        {"status": CentreReport.Status.FAILED, "delivery_state": CentreReport.Delivery.FAILED},
    ],
    ids=["sent", "no recipients", "failed"],
)
def test_a_finished_report_is_never_sent_again(fields):
    run = a_run()
    if fields["delivery_state"] == CentreReport.Delivery.SENT:
        fields = {**fields, "sent_at": timezone.now()}
    a_report(run, **fields)
    a_report(run, dispatched_ago=datetime.timedelta(minutes=1))  # keeps the run unfinished
    assert services.work_to_send_again() == ([], [])


def test_a_rendered_report_not_yet_emailed_is_sent_again():
    run = a_run()
    rendered = a_report(run, status=CentreReport.Status.RENDERED)
    assert services.work_to_send_again()[1] == [(rendered.pk, run.pk)]


def test_a_report_never_handed_over_counts_from_the_runs_start():
    run = a_run(started_ago=LONG_AGO)
    never = a_report(run, dispatched_ago=None)
    recent_run = a_run(started_ago=datetime.timedelta(minutes=1))
    a_report(recent_run, dispatched_ago=None)
    assert services.work_to_send_again()[1] == [(never.pk, run.pk)]


def test_a_pending_run_whose_fan_out_was_lost_is_sent_again():
    lost = a_run(status=ReportRun.Status.PENDING)
    a_report(lost, dispatched_ago=None)
    a_run(status=ReportRun.Status.PENDING, dispatched_ago=datetime.timedelta(minutes=1))
    runs, reports = services.work_to_send_again()
    assert (runs, reports) == ([lost.pk], [])


def test_a_finished_run_is_left_alone():
    run = a_run(status=ReportRun.Status.FAILED)
    run.finished_at = timezone.now()
    run.save()
    a_report(run)
    assert services.work_to_send_again() == ([], [])


def test_a_run_whose_reports_are_all_done_is_closed_by_the_sweep():
    run = a_run()
    a_report(
        run, status=CentreReport.Status.RENDERED, delivery_state=CentreReport.Delivery.SENT, sent_at=timezone.now()
    )
    services.work_to_send_again()
    run.refresh_from_db()
    assert run.finished_at is not None and run.status == ReportRun.Status.COMPLETED


def test_the_task_hands_each_lost_piece_to_the_broker(monkeypatch):
    pending, running = a_run(status=ReportRun.Status.PENDING), a_run()
    report = a_report(running)
    sent = []
    monkeypatch.setattr(tasks.execute_run, "delay", lambda run_id: sent.append(("run", run_id)))
    monkeypatch.setattr(tasks.produce_centre_report, "delay", lambda *args: sent.append(("report", *args)))
    assert tasks.sweep_unfinished_runs() == (1, 1)
    assert sent == [("run", pending.pk), ("report", report.pk, running.pk)]


def test_starting_work_on_a_report_restarts_its_clock(monkeypatch):
    run = a_run()
    report = a_report(run)
    monkeypatch.setattr(services, "render_report", lambda report_id: None)
    monkeypatch.setattr(services, "deliver_report", lambda report_id: None)
    tasks.produce_centre_report.apply(args=[report.pk, run.pk])
    report.refresh_from_db()
    assert timezone.now() - report.dispatched_at < datetime.timedelta(minutes=1)
    assert services.work_to_send_again() == ([], [])


def test_the_default_wait_is_longer_than_a_tasks_hard_time_limit():
    from registry import settings as defaults

    assert defaults.REPORT_RESEND_AFTER_SECONDS > defaults.CELERY_TASK_TIME_LIMIT


def test_beat_sends_the_sweeper_every_five_minutes():
    task = PeriodicTask.objects.get(task="reports.tasks.sweep_unfinished_runs")
    assert task.enabled and (task.interval.every, task.interval.period) == (5, "minutes")


# --- Beat's health check: is beat scheduling?


def sweeper_last_sent(ago):
    PeriodicTask.objects.filter(task=health.BEAT_HEARTBEAT_TASK).update(
        last_run_at=None if ago is None else timezone.now() - ago
    )


def test_beat_is_healthy_when_the_sweeper_went_out_recently():
    sweeper_last_sent(datetime.timedelta(minutes=6))
    assert health.beat_is_scheduling()
    call_command("check_beat")


@pytest.mark.parametrize("ago", [datetime.timedelta(minutes=16), None], ids=["late", "never"])
def test_beat_is_unhealthy_when_the_sweeper_is_late_or_never_sent(ago):
    sweeper_last_sent(ago)
    assert not health.beat_is_scheduling()
    with pytest.raises(CommandError, match="Beat has not sent"):
        call_command("check_beat")
