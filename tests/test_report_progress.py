"""Progress people can see: runs started from the admin never block, and their progress is counted and shown.

Tests that need a background thread to see committed rows are transactional
(a thread has its own database connection).
"""

import datetime
import io
import re
import threading
from unittest import mock

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from registry import demo
from registry.rules import today
from registry.services import restore_complication_types
from reports import services, tasks
from reports.models import CentreReport, ReportRun
from sites.models import Role

from . import factories, report_world

PERIOD = datetime.date(2024, 6, 1)


def transactional(test):
    return pytest.mark.django_db(transaction=True)(pytest.mark.usefixtures("vocabulary")(test))


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def vocabulary(transactional_db):
    """An earlier transactional test may have emptied every table: put the migrations' complication types back."""
    restore_complication_types()


@pytest.fixture
def gate(monkeypatch):
    """Holds every centre report before it is rendered until the test lets it through (``gate.release()``)."""
    gate = threading.Semaphore(0)
    real_render = services.render_report

    def held_render(report_id):
        assert gate.acquire(timeout=60), "the test never let the report through"
        return real_render(report_id)

    monkeypatch.setattr(services, "render_report", held_render)
    yield gate
    gate.release(100)  # never leave a thread waiting
    assert tasks.wait_for_background_runs(timeout=120), "a background run did not finish"


def wait_until(condition, timeout=60):
    event = threading.Event()
    for _ in range(int(timeout * 10)):
        if condition():
            return
        event.wait(0.1)
    raise AssertionError("condition not reached in time")


# --- Counting


def test_progress_counts_every_state_in_one_query(db, media, django_assert_num_queries):
    report_world.build(centres=5, per_centre=1)
    run = services.start_run(PERIOD, dispatch=False)
    reports = list(run.centre_reports.order_by("centre__code"))
    CentreReport.objects.filter(pk=reports[0].pk).update(status="rendered")
    CentreReport.objects.filter(pk=reports[1].pk).update(
        status="rendered", delivery_state="sent", sent_at=timezone.now()
    )
    CentreReport.objects.filter(pk=reports[2].pk).update(status="rendered", delivery_state="no_recipients")
    CentreReport.objects.filter(pk=reports[3].pk).update(status="failed", delivery_state="failed")
    with django_assert_num_queries(1):
        progress = services.run_progress(run.pk)
    assert progress == services.RunProgress(total=5, rendered=3, sent=1, no_recipients=1, failed=1)
    assert progress.done == 3
    assert str(progress) == "5 centre reports: 3 rendered, 1 sent, 1 failed, 1 without recipients"
    assert progress.short == "3/5 rendered, 1/5 sent, 1 without recipients, 1 failed"
    assert str(services.RunProgress(1, 1, 1, 0, 0)) == "1 centre report: 1 rendered, 1 sent, 0 failed"


# --- Not blocking


@transactional
def test_a_background_start_returns_before_any_report_is_made(media, gate):
    report_world.build(centres=2, per_centre=2)
    run = services.start_run(PERIOD, background=True)  # commits, then hands the run to a thread
    assert services.run_progress(run.pk).done == 0 and mail.outbox == []
    gate.release()
    wait_until(lambda: services.run_progress(run.pk).sent == 1)
    assert ReportRun.objects.get(pk=run.pk).finished_at is None
    gate.release()
    assert tasks.wait_for_background_runs(timeout=60)
    run.refresh_from_db()
    assert run.status == ReportRun.Status.COMPLETED and len(mail.outbox) == 2
    assert services.run_progress(run.pk) == services.RunProgress(2, 2, 2, 0, 0)


@transactional
def test_in_the_background_a_failing_centre_does_not_stop_the_others(media):
    centres = report_world.build(centres=2, per_centre=2)
    real_render = services.render_report

    def render(report_id):
        if CentreReport.objects.get(pk=report_id).centre == centres[0]:
            raise ValueError("bad data")
        return real_render(report_id)

    with mock.patch.object(services, "render_report", render):
        run = services.start_run(PERIOD, background=True)
        assert tasks.wait_for_background_runs(timeout=60)
    run.refresh_from_db()
    assert run.status == ReportRun.Status.FAILED and run.finished_at
    assert services.run_progress(run.pk) == services.RunProgress(2, 1, 1, 0, 1)


def test_inside_an_open_transaction_a_background_start_stays_in_the_caller(
    db, media, django_capture_on_commit_callbacks
):
    """A thread could not see the uncommitted run, so the run is made in the caller (tests wrapped in a transaction)."""
    report_world.build(centres=1, per_centre=2)
    with mock.patch.object(threading.Thread, "start") as start:
        with django_capture_on_commit_callbacks(execute=True):
            run = services.start_run(PERIOD, background=True)
    start.assert_not_called()
    assert ReportRun.objects.get(pk=run.pk).status == ReportRun.Status.COMPLETED


# --- The admin


@transactional
def test_admin_add_returns_at_once_to_a_self_refreshing_run_page(media, gate, client):
    report_world.build(centres=2, per_centre=2)
    client.force_login(factories.user_with_role(Role.COORDINATOR, username="coordinator"))
    response = client.post(
        "/admin/reports/reportrun/add/", {"period": "2024-06-01", "data_cut_0": "", "data_cut_1": ""}
    )
    run = ReportRun.objects.get()
    assert response.status_code == 302 and response.url == f"/admin/reports/reportrun/{run.pk}/change/"
    page = client.get(response.url).content.decode()
    assert "Started run" in page and '<meta http-equiv="refresh" content="3">' in page
    assert "0 of 2 done" in page and "2 centre reports: 0 rendered, 0 sent, 0 failed" in page
    listing = client.get("/admin/reports/reportrun/").content.decode()
    assert "0/2 rendered, 0/2 sent" in listing

    gate.release(2)
    assert tasks.wait_for_background_runs(timeout=60)
    page = client.get(response.url).content.decode()
    assert "2 of 2 done" in page and "2 centre reports: 2 rendered, 2 sent, 0 failed" in page
    assert 'http-equiv="refresh"' not in page and "Completed" in page
    assert "2/2 rendered, 2/2 sent" in client.get("/admin/reports/reportrun/").content.decode()


@transactional
def test_admin_action_starts_again_in_the_background_one_run_at_a_time(media, gate, client):
    report_world.build(centres=2, per_centre=2)
    client.force_login(factories.user_with_role(Role.COORDINATOR, username="coordinator"))
    earlier = [services.start_run(PERIOD, centre_codes=[code], dispatch=False) for code in ("RPT-1", "RPT-2")]
    response = client.post(
        "/admin/reports/reportrun/",
        {"action": "start_again", "_selected_action": [run.pk for run in earlier]},
        follow=True,
    )
    started = list(ReportRun.objects.exclude(pk__in=[run.pk for run in earlier]).order_by("pk"))
    assert len(started) == 2
    for run in started:
        assert f'href="/admin/reports/reportrun/{run.pk}/change/"' in response.content.decode()
        assert services.run_progress(run.pk) == services.RunProgress(2, 0, 0, 0, 0)
    gate.release(2)
    # Like a single worker: the first run is done before the second one starts.
    wait_until(lambda: ReportRun.objects.filter(pk=started[0].pk, finished_at__isnull=False).exists())
    assert services.run_progress(started[1].pk).done == 0
    gate.release(2)
    assert tasks.wait_for_background_runs(timeout=60)
    assert [r.status for r in ReportRun.objects.filter(pk__in=[r.pk for r in started])] == ["completed"] * 2
    assert len(mail.outbox) == 4


# --- Terminals


@transactional
def test_run_reports_prints_progress_of_an_eager_run(media):
    report_world.build(centres=2, per_centre=2)
    out = io.StringIO()
    call_command("run_reports", "--period", "2024-06", stdout=out)
    lines = out.getvalue().splitlines()
    run = ReportRun.objects.get()
    assert lines[0] == f"Run {run.pk}: freezing the cohort at the data cut…"
    assert lines[1:3] == [f"Run {run.pk}: 1/2 rendered, 1/2 sent", f"Run {run.pk}: 2/2 rendered, 2/2 sent"]
    assert lines[3].startswith(f"Run {run.pk} for 2024-06, data cut ") and lines[3].endswith(": Completed")
    assert lines[4:] == ["  RPT-1: Rendered, Sent", "  RPT-2: Rendered, Sent"]

    out = io.StringIO()
    call_command("run_reports", "--period", "2024-06", "--centre", "RPT-1", verbosity=0, stdout=out)
    assert not re.search(r"^Run \d+: ", out.getvalue(), flags=re.M)  # no progress lines, only the summary


@pytest.fixture
def workers(media):
    """As with a broker: dispatch only queues the run, and "a worker" makes one report per poll of the command."""
    queued = []
    conf = tasks.execute_run.app.conf
    eager, conf.task_always_eager = conf.task_always_eager, False
    try:
        with mock.patch.object(tasks.execute_run, "delay", side_effect=queued.append):
            yield queued
    finally:
        conf.task_always_eager = eager


def a_worker_makes_the_next_report(seconds):
    report = CentreReport.objects.filter(delivery_state="pending").order_by("centre__code").first()
    if report is not None:
        services.prepare_run(report.run_id)
        services.render_report(report.pk)
        services.deliver_report(report.pk)
        services.finish_run_if_done(report.run_id)


def test_run_reports_wait_follows_a_run_on_the_workers(db, workers, django_capture_on_commit_callbacks):
    report_world.build(centres=2, per_centre=2)
    out = io.StringIO()
    with (
        django_capture_on_commit_callbacks(execute=True),
        mock.patch("reports.management.commands.run_reports.sleep", side_effect=a_worker_makes_the_next_report),
    ):
        call_command("run_reports", "--period", "2024-06", "--wait", "--poll-interval", "0.01", stdout=out)
    run = ReportRun.objects.get()
    assert workers == [run.pk]
    lines = out.getvalue().splitlines()
    assert lines[:3] == [f"Run {run.pk}: {n}/2 rendered, {n}/2 sent" for n in (0, 1, 2)]
    assert lines[3].endswith(": Completed")


def test_run_reports_wait_gives_up_at_the_timeout(db, workers):
    report_world.build(centres=1, per_centre=1)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"not finished after 0.2 s; it goes on on the workers"):
        call_command(
            "run_reports", "--period", "2024-06", "--wait", "--timeout", "0.2", "--poll-interval", "0.05", stdout=out
        )
    run = ReportRun.objects.get()
    assert out.getvalue().splitlines()[0] == f"Run {run.pk}: 0/1 rendered, 0/1 sent"
    assert f"Run {run.pk} for 2024-06" in out.getvalue()


def test_run_reports_without_wait_leaves_a_worker_run_alone(db, workers):
    report_world.build(centres=1, per_centre=1)
    out = io.StringIO()
    call_command("run_reports", "--period", "2024-06", stdout=out)
    assert re.fullmatch(r"Run \d+ for 2024-06, data cut .*: Pending\n  RPT-1: Pending, Not sent\n", out.getvalue())


@pytest.mark.parametrize("verbosity,lines", [(0, []), (1, ["0 / 25", "10 / 25", "20 / 25", "25 / 25"])])
def test_seed_demo_prints_progress_per_chunk(db, verbosity, lines):
    out = io.StringIO()
    reference = min(demo.REFERENCE_DATE, today())
    call_command(
        "seed_demo",
        *("--centres", "2", "--implantations", "25", "--batch-size", "10", "--reference-date", str(reference)),
        verbosity=verbosity,
        stdout=out,
    )
    text = out.getvalue()
    found = re.findall(r"^  (?:planned )?(\d+)(?: / (\d+))? implantations", text, flags=re.M)
    assert [f"{a} / {b}" if b else f"0 / {a}" for a, b in found] == lines
    if verbosity:
        assert text.startswith("Seeding 25 implantations in 2 centres (seed 1)…\n")
        assert "Seeded 25 implantations in 2 centres" in text and "demo-password-1" in text
    else:
        assert "Seeding" not in text
