"""A run survives a worker killed mid-way: every report made and emailed exactly once.

Real Celery workers (separate processes) against a real Redis and the test's
PostgreSQL database; emails go to files so both workers' sends can be counted.
"""

import subprocess
import sys
import time

import pytest

from reports.models import CentreReport, ReportRun

from . import report_world
from .workers import (
    REDIS_URL,
    ROOT,
    emails_per_centre,
    forget_keys,
    kill,
    require_redis,
    start_worker,
    wait_for,
    worker_environment,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def vocabulary():
    """A transactional test may run after another one emptied every table: put the
    migration-made complication types back (the workers must see them committed)."""
    from registry.services import restore_complication_types

    restore_complication_types()


@pytest.fixture
def worker_env(tmp_path, settings):
    require_redis(REDIS_URL)
    settings.MEDIA_ROOT = tmp_path / "media"
    env = worker_environment(tmp_path, REDIS_URL)
    yield env
    forget_keys(env)


def start_run_and_kill_worker_midway(worker_env, centres, log, log_path):
    first = start_worker(worker_env, "first", log)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "run_reports", "--period", "2024-06"],
            cwd=ROOT,
            env=worker_env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        run = ReportRun.objects.get()

        def some_but_not_all_sent():
            sent = CentreReport.objects.filter(run=run, delivery_state="sent").count()
            return 1 <= sent < len(centres)

        wait_for(some_but_not_all_sent, 120, "the first worker never got going:\n" + log_path.read_text()[-3000:])
    finally:
        kill(first)
    sent_before_restart = CentreReport.objects.filter(run=run, delivery_state="sent").count()
    assert sent_before_restart < len(centres), "the run finished before the worker was killed"
    return run


def finish_with_second_worker(worker_env, run, log, log_path):
    second = start_worker(worker_env, "second", log)
    try:
        wait_for(
            lambda: ReportRun.objects.get(pk=run.pk).finished_at is not None,
            180,
            "the run did not finish after the restart:\n" + log_path.read_text()[-3000:],
        )
    finally:
        kill(second)


def assert_every_report_sent_once(worker_env, run, centres):
    run.refresh_from_db()
    assert run.status == ReportRun.Status.COMPLETED
    reports = list(CentreReport.objects.filter(run=run).select_related("centre"))
    assert all(r.status == "rendered" and r.delivery_state == "sent" and r.pdf and r.checksum for r in reports)
    assert emails_per_centre(worker_env["EMAIL_FILE_PATH"]) == {c.code: 1 for c in centres}


def test_a_killed_workers_tasks_are_delivered_again_by_the_broker(worker_env, vocabulary, tmp_path):
    """Nothing dispatched again by hand: only acks_late + reject-on-worker-lost bring the lost tasks back."""
    centres = report_world.build(centres=6, per_centre=8)
    log_path = tmp_path / "workers.log"
    with open(log_path, "w") as log:
        run = start_run_and_kill_worker_midway(worker_env, centres, log, log_path)
        finish_with_second_worker(worker_env, run, log, log_path)
    assert_every_report_sent_once(worker_env, run, centres)


def test_killed_worker_run_finishes_with_every_report_sent_exactly_once(worker_env, vocabulary, tmp_path):
    centres = report_world.build(centres=6, per_centre=8)
    log_path = tmp_path / "workers.log"
    with open(log_path, "w") as log:
        run = start_run_and_kill_worker_midway(worker_env, centres, log, log_path)
        # Redis hands a dead worker's unacknowledged tasks to the next worker
        # once their visibility timeout has passed.
        time.sleep(int(worker_env["CELERY_VISIBILITY_TIMEOUT"]) + 1)
        # As if the fan-out task itself were delivered again: every centre,
        # sent or not, gets another task, and none may be emailed twice.
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                f"from reports.tasks import execute_run; execute_run.delay({run.pk})",
            ],
            cwd=ROOT,
            env=worker_env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        finish_with_second_worker(worker_env, run, log, log_path)
    assert_every_report_sent_once(worker_env, run, centres)
