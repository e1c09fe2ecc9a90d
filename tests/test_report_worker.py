"""A run survives a worker killed mid-way: every report made and emailed exactly once.

Real Celery workers (separate processes) against a real Redis and the test's
PostgreSQL database; emails go to files so both workers' sends can be counted.
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.db import connection

from reports.models import CentreReport, ReportRun

from . import report_world

ROOT = Path(__file__).resolve().parent.parent
# The workers' keys carry a prefix of their own; nothing else in this Redis is touched.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def vocabulary():
    """A transactional test may run after another one emptied every table: put the
    migration-made complication types back (the workers must see them committed)."""
    from registry.services import restore_complication_types

    restore_complication_types()


def wait_for(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(message)


@pytest.fixture
def worker_env(tmp_path, settings):
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    prefix = f"hai-test-{uuid.uuid4().hex[:8]}:"
    settings.MEDIA_ROOT = tmp_path / "media"
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": REDIS_URL,
        "CELERY_KEY_PREFIX": prefix,
        "CELERY_TASK_DEFAULT_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        # A dead worker's unacknowledged tasks come back after this many seconds.
        "CELERY_VISIBILITY_TIMEOUT": "4",
        "CELERY_UNACKED_RESTORE_SECONDS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "DATABASE_CONN_MAX_AGE": "0",
    }
    yield env
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


def start_worker(env, name, log):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "registry",
            "worker",
            "-Q",
            env["CELERY_TASK_DEFAULT_QUEUE"],
            "-c",
            "2",
            "-P",
            "prefork",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill(process):
    """SIGKILL the worker and its pool: no warm shutdown, no acknowledgement of running tasks."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


def emails_per_centre(mail_dir):
    counts = {}
    for path in Path(mail_dir).glob("*.log"):
        for code in re.findall(r"^Subject: HAI Registry benchmark report - (\S+) - ", path.read_text(), flags=re.M):
            counts[code] = counts.get(code, 0) + 1
    return counts


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
