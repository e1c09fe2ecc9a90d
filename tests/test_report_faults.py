"""Monthly runs against real faults: Redis restarted mid-run, and two workers sharing one Redis (issue 17).

Real Celery workers (separate processes) and the test's PostgreSQL database. The Redis restarted here
is a redis-server of the test's own (tests/workers.py PrivateRedis), so the machine's Redis, which the
other tests use, is never touched.
"""

import re
import time

import pytest

from reports.models import CentreReport, ReportRun

from . import report_world
from .workers import (
    REDIS_URL,
    PrivateRedis,
    emails_per_centre,
    forget_keys,
    kill,
    manage,
    require_redis,
    start_worker,
    wait_for,
    worker_environment,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def vocabulary():
    from registry.services import restore_complication_types

    restore_complication_types()


@pytest.fixture
def private_redis():
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


def sent(run):
    return CentreReport.objects.filter(run=run, delivery_state="sent").count()


def assert_every_report_made_and_sent_once(env, run, centres):
    run.refresh_from_db()
    assert run.status == ReportRun.Status.COMPLETED
    reports = list(CentreReport.objects.filter(run=run))
    assert len(reports) == len(centres)
    assert all(r.status == "rendered" and r.delivery_state == "sent" and r.pdf and r.checksum for r in reports)
    assert emails_per_centre(env["EMAIL_FILE_PATH"]) == {c.code: 1 for c in centres}


def test_redis_restarted_in_the_middle_of_a_run_every_report_still_made_and_sent_once(
    private_redis, vocabulary, tmp_path, settings
):
    """The restart drops every queued task; the sweeper, reading what is unfinished from the database, sends
    them again. It runs as beat would start it (a task on the queue), only every few seconds, not minutes."""
    settings.MEDIA_ROOT = tmp_path / "media"
    env = worker_environment(
        tmp_path,
        private_redis.url,
        # Redis's own redelivery would not help (a restarted Redis has forgotten the tasks): only the sweeper.
        CELERY_VISIBILITY_TIMEOUT="3600",
        REPORT_RESEND_AFTER_SECONDS="6",
    )
    centres = report_world.build(centres=6, per_centre=8)
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = start_worker(env, "only", log, concurrency=1)
        try:
            manage(env, "run_reports", "--period", "2024-06")
            run = ReportRun.objects.get()
            wait_for(lambda: sent(run) >= 1, 120, lambda: "no report was sent:\n" + log_path.read_text()[-3000:])
            assert sent(run) < len(centres), "the run finished before Redis was restarted"
            private_redis.restart()
            sent_when_redis_came_back = sent(run)

            def finished_after_sweeping():
                if ReportRun.objects.get(pk=run.pk).finished_at is not None:
                    return True
                manage(
                    env, "shell", "-c", "from reports.tasks import sweep_unfinished_runs; sweep_unfinished_runs.delay()"
                )
                time.sleep(3)
                return False

            wait_for(finished_after_sweeping, 240, lambda: "the run never finished:\n" + log_path.read_text()[-3000:])
        finally:
            kill(worker)
    assert sent_when_redis_came_back < len(centres)
    assert_every_report_made_and_sent_once(env, run, centres)
    assert "sweep_unfinished_runs" in log_path.read_text()


@pytest.fixture
def shared_redis_env(tmp_path, settings):
    require_redis(REDIS_URL)
    settings.MEDIA_ROOT = tmp_path / "media"
    # Production's visibility timeout: a render running longer than the tests' 4 s is not handed out again.
    env = worker_environment(tmp_path, REDIS_URL, CELERY_VISIBILITY_TIMEOUT="3600")
    yield env
    forget_keys(env)


def test_two_workers_on_one_redis_make_each_report_exactly_once(shared_redis_env, vocabulary, tmp_path):
    """``docker compose up --scale worker=2``: both take reports from the one queue, none is made twice."""
    env = shared_redis_env
    centres = report_world.build(centres=6, per_centre=8)
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second")}
    handles = {name: open(path, "w") for name, path in logs.items()}
    workers = [start_worker(env, name, handles[name], concurrency=1) for name in logs]
    try:
        manage(env, "run_reports", "--period", "2024-06")
        run = ReportRun.objects.get()
        wait_for(
            lambda: ReportRun.objects.get(pk=run.pk).finished_at is not None,
            240,
            lambda: "the run did not finish:\n" + "\n".join(p.read_text()[-2000:] for p in logs.values()),
        )
    finally:
        for worker in workers:
            kill(worker)
        for handle in handles.values():
            handle.close()
    assert_every_report_made_and_sent_once(env, run, centres)
    made = {
        name: len(re.findall(r"produce_centre_report\[[^\]]+\] succeeded", path.read_text()))
        for name, path in logs.items()
    }
    assert sum(made.values()) == len(centres), made  # one task per report, run once
    assert all(count >= 1 for count in made.values()), made  # and both workers did some
