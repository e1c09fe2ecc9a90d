"""Real Celery workers for the tests: their environment, start, kill, and what they emailed.

Used by tests/test_report_worker.py (a worker killed mid-run) and tests/test_report_faults.py (Redis
restarted mid-run, two workers on one Redis). Each test's workers have a queue and a key prefix of their
own, so nothing else in the Redis they use is touched.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def wait_for(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(message() if callable(message) else message)


def require_redis(url):
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not running at {url}")
    return client


def worker_environment(tmp_path, redis_url, **overrides):
    """The environment of a worker (and of the manage.py commands that feed it) on this test's database."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "CELERY_KEY_PREFIX": f"hai-test-{uuid.uuid4().hex[:8]}:",
        "CELERY_TASK_DEFAULT_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        # A dead worker's unacknowledged tasks come back after this many seconds.
        "CELERY_VISIBILITY_TIMEOUT": "4",
        "CELERY_UNACKED_RESTORE_SECONDS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "DATABASE_CONN_MAX_AGE": "0",
        **overrides,
    }


def forget_keys(env):
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        for key in client.scan_iter(match=f"{env['CELERY_KEY_PREFIX']}*"):
            client.delete(key)
    except redis.ConnectionError:
        pass  # a private Redis already stopped


def start_worker(env, name, log, concurrency=2):
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
            str(concurrency),
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


def manage(env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=timeout
    )


def kill(process):
    """SIGKILL the process and its children: no warm shutdown, no acknowledgement of running tasks."""
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


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that the test may restart.

    Configured as the registry's Redis is (nothing kept on disk), so a restart loses every queued and
    unacknowledged task, as a real one would.
    """

    def __init__(self):
        if not shutil.which("redis-server"):
            if os.environ.get("CI"):
                raise RuntimeError("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def answers():
            try:
                return client.ping()
            except redis.ConnectionError:
                return False

        wait_for(answers, 20, "the private redis-server did not start")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash: nothing saved, nothing handed back
            self.process.wait(timeout=10)

    def restart(self, down_seconds=1.0):
        self.stop()
        time.sleep(down_seconds)
        self.start()
