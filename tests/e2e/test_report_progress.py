"""The coordinator starts a report run from the admin in a real browser and watches it progress.

Tasks run eagerly here (no Redis), as in the embedded demo: the run happens in a
thread of the live server's process, so the page comes back at once. Each centre
report waits at a gate until the test opens it, so the page is seen at 0, 1 and
2 of 2 reports without depending on how fast a report renders.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e -q``
"""

import re
import threading

import pytest
from django.core import mail
from playwright.sync_api import expect

from registry.services import restore_complication_types
from reports import services, tasks
from reports.models import ReportRun
from tests import report_world

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]  # live_server needs committed rows

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
REFRESHED = 30_000  # ms: a few automatic reloads (every 3 s) plus one report's rendering


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def vocabulary(transactional_db):
    """An earlier transactional test may have emptied every table: put the migrations' complication types back.

    (A serialized rollback would not: the browser, started first, leaves this test
    a database connection of another context, without the serialized contents.)
    """
    restore_complication_types()


@pytest.fixture
def gate(monkeypatch):
    """Every centre report waits here before it is rendered, until the test lets one through."""
    gate = threading.Semaphore(0)
    real_render = services.render_report

    def held_render(report_id):
        assert gate.acquire(timeout=120), "the test never let the report through"
        return real_render(report_id)

    monkeypatch.setattr(services, "render_report", held_render)
    yield gate
    gate.release(100)
    # The run's thread must be done before the test database is flushed.
    assert tasks.wait_for_background_runs(timeout=120), "the background run did not finish"


def test_coordinator_starts_a_run_and_sees_its_progress(live_server, page, vocabulary, coordinator, media, gate):
    report_world.build(centres=2, per_centre=2)
    admin = f"{live_server.url}/admin/"

    page.goto(admin)
    page.locator("#id_username").fill(coordinator.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)

    # --- Report runs → Add: the period only; the data cut defaults to the end of the month.
    page.goto(f"{admin}reports/reportrun/add/")
    page.locator("#id_period").fill("2024-06-01")  # ISO only (registry.dates)
    page.locator('input[name="_save"]').click()

    # --- Back at once, on the run's page, while no report could be rendered yet.
    run = ReportRun.objects.get()
    expect(page).to_have_url(f"{admin}reports/reportrun/{run.pk}/change/")
    expect(page.locator(".messagelist .success")).to_contain_text(f"Started run {run.pk} for 2024-06")
    progress = page.locator("#run-progress")
    expect(progress.locator("#run-progress-status")).to_have_text(re.compile(r"^(Pending|Running)$"))
    expect(progress.locator("#run-progress-done")).to_have_text("0 of 2 done")
    expect(progress.locator("#run-progress-counts")).to_have_text("2 centre reports: 0 rendered, 0 sent, 0 failed")
    expect(progress).to_contain_text("refreshes itself")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)

    # --- One report through: the page reloads itself and shows it.
    gate.release()
    expect(progress.locator("#run-progress-done")).to_have_text("1 of 2 done", timeout=REFRESHED)
    expect(progress.locator("#run-progress-counts")).to_have_text("2 centre reports: 1 rendered, 1 sent, 0 failed")
    expect(progress.locator("#run-progress-status")).to_have_text("Running")

    # --- The other one: finished, and the page stops reloading.
    gate.release()
    expect(progress.locator("#run-progress-done")).to_have_text("2 of 2 done", timeout=REFRESHED)
    expect(progress.locator("#run-progress-status")).to_have_text("Completed")
    expect(progress.locator("#run-progress-counts")).to_have_text("2 centre reports: 2 rendered, 2 sent, 0 failed")
    expect(progress).to_contain_text("Finished")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    expect(page.locator(".inline-group")).to_contain_text("RPT-2")

    # --- The list of runs shows the same.
    page.goto(f"{admin}reports/reportrun/")
    expect(page.locator("#result_list .field-progress")).to_have_text(["2/2 rendered, 2/2 sent"])

    assert tasks.wait_for_background_runs(timeout=60)
    run.refresh_from_db()
    assert run.status == ReportRun.Status.COMPLETED and len(mail.outbox) == 2
    assert page.problems == []
