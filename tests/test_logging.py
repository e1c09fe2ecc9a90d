"""Logs (issue 17, item 2): JSON lines in production, plain in development, and a request id on every
line of a request and of the Celery tasks it queued, in the web process and in a real worker."""

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import path

from registry import logs
from registry.celery import app

from .logging_tasks import log_one_line

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

logger = logging.getLogger("tests.logging_view")


def view_that_logs(request):
    logger.info("Inside the view.")
    return HttpResponse("ok")


urlpatterns = [path("logged/", view_that_logs)]


@pytest.fixture
def log_lines():
    """What the root logger writes, as production writes it (the JSON formatter, the context filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.ContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def lines_of(entries, logger_name):
    return [entry for entry in entries if entry["logger"] == logger_name]


# --- The formats.


def test_a_json_line_has_time_level_logger_message_and_request_id(log_lines):
    token = logs.request_id_var.set("request-0001")
    try:
        logging.getLogger("tests.format").warning("Run %s: %d centres.", 12, 3)
    finally:
        logs.request_id_var.reset(token)
    (entry,) = lines_of(log_lines(), "tests.format")
    assert entry == {
        "time": entry["time"],
        "level": "WARNING",
        "logger": "tests.format",
        "message": "Run 12: 3 centres.",
        "request_id": "request-0001",
    }
    written = datetime.fromisoformat(entry["time"])
    assert written.utcoffset() == timedelta(0)
    assert abs(datetime.now(written.tzinfo) - written) < timedelta(minutes=1)


def test_an_exception_is_inside_its_json_line(log_lines):
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("tests.format").exception("It failed.")
    (entry,) = lines_of(log_lines(), "tests.format")
    assert entry["message"] == "It failed."
    assert entry["request_id"] is None
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in entry["exception"]


def test_the_plain_line_shows_the_request_id_or_a_dash():
    record = logging.LogRecord("tests.format", logging.INFO, __file__, 1, "Run %s started.", (12,), None)
    logs.ContextFilter().filter(record)
    line = logs.PlainFormatter().format(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO tests\.format \[-\] Run 12 started\.", line)


def log_a_line_in_a_fresh_process(**env):
    full_env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "LOG_FORMAT", "SECRET_KEY", "REDIS_URL"}}
    full_env.update(DJANGO_SETTINGS_MODULE="registry.settings", EMAIL_HOST="smtp.example.org", **env)
    code = (
        "import django, logging; django.setup();"
        "logging.getLogger('registry.example').info('Ready.');"
        "logging.getLogger('django.request').warning('Not Found: /nowhere/')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "x7Rk2pLq9vNw4sTz8bYc1dFg6hJm3nQr5tUv0wXy2aBc4eDf6gHi8jKl0mNo"}


def test_production_writes_one_json_object_a_line():
    lines = log_a_line_in_a_fresh_process(**PRODUCTION)
    entries = [json.loads(line) for line in lines]  # every line, Django's own included, is JSON
    assert [(e["logger"], e["message"], e["request_id"]) for e in entries] == [
        ("registry.example", "Ready.", None),
        ("django.request", "Not Found: /nowhere/", None),
    ]


def test_development_writes_plain_lines_once_each():
    lines = log_a_line_in_a_fresh_process(DEBUG="1")
    assert len(lines) == 2, lines  # Django's own console handler would have printed its line twice
    assert re.fullmatch(r"\S+ \S+ INFO registry\.example \[-\] Ready\.", lines[0])
    assert lines[1].endswith("WARNING django.request [-] Not Found: /nowhere/")


def test_log_format_overrides_the_choice_by_debug():
    assert json.loads(log_a_line_in_a_fresh_process(DEBUG="1", LOG_FORMAT="json")[0])["message"] == "Ready."
    assert log_a_line_in_a_fresh_process(**PRODUCTION, LOG_FORMAT="plain")[0].endswith("[-] Ready.")


# --- The request id.


def test_the_request_id_middleware_comes_first():
    assert settings.MIDDLEWARE[0] == "registry.logs.RequestIdMiddleware"


@pytest.mark.urls(__name__)
def test_every_response_gets_a_new_request_id(log_lines):
    first, second = Client().get("/logged/"), Client().get("/logged/")
    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]
    assert [e["request_id"] for e in lines_of(log_lines(), "tests.logging_view")] == [
        first["X-Request-ID"],
        second["X-Request-ID"],
    ]


@pytest.mark.urls(__name__)
def test_a_safe_incoming_request_id_is_kept_on_the_response_and_the_log_lines(log_lines):
    response = Client().get("/logged/", headers={"X-Request-ID": "proxy-4f1c.0b9e_77"})
    assert response["X-Request-ID"] == "proxy-4f1c.0b9e_77"
    (entry,) = lines_of(log_lines(), "tests.logging_view")
    assert entry["request_id"] == "proxy-4f1c.0b9e_77"
    # Once the response is closed, lines are outside the request again.
    assert logs.request_id_var.get() is None


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    "incoming",
    ["a" * 200, "short", "abcdefgh\nforged log line", "abcdefgh\r\nSet-Cookie: x=1", "has spaces in it", "<id>1234567"],
)
def test_an_unsafe_incoming_request_id_is_replaced(log_lines, incoming):
    response = Client().get("/logged/", headers={"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    (entry,) = lines_of(log_lines(), "tests.logging_view")
    assert entry["request_id"] == response["X-Request-ID"]


# --- Celery: the id goes with the task.


@pytest.fixture
def in_a_request():
    token = logs.request_id_var.set("request-for-task-0001")
    yield "request-for-task-0001"
    logs.request_id_var.reset(token)


def test_a_task_queued_in_a_request_carries_its_id_in_the_message_headers(in_a_request, monkeypatch):
    """Sent through the (in-memory) broker, then read back from the queue as a worker would."""
    monkeypatch.setattr(app.conf, "task_always_eager", False)
    queue = f"test-logs-{uuid.uuid4().hex[:8]}"
    log_one_line.apply_async(queue=queue)
    with app.connection_for_read() as connection:
        messages = connection.SimpleQueue(queue)
        try:
            message = messages.get(timeout=5)
            message.ack()
        finally:
            messages.close()
    assert message.headers["task"] == "tests.log_one_line"
    assert message.headers["request_id"] == in_a_request


def test_a_task_queued_outside_a_request_carries_no_id():
    headers = {"id": "task-1", "task": "tests.log_one_line"}
    logs.remember_request_id_in_task(headers=headers)
    assert "request_id" not in headers


def fake_task(**request):
    return SimpleNamespace(name="tests.fake_task", request=SimpleNamespace(**request))


def test_the_worker_logs_a_task_under_its_request_id_then_forgets_it(log_lines):
    logs.enter_task(task_id="task-0001", task=fake_task(request_id="request-from-web-01"))
    logging.getLogger("tests.worker").info("During the task.")
    logs.leave_task(task_id="task-0001", task=None)
    logging.getLogger("tests.worker").info("Between tasks.")
    during, between = lines_of(log_lines(), "tests.worker")
    assert during["request_id"] == "request-from-web-01"
    assert (during["task_id"], during["task_name"]) == ("task-0001", "tests.fake_task")
    assert between["request_id"] is None and "task_id" not in between


def test_an_unsafe_request_id_in_a_task_message_is_not_logged(log_lines):
    logs.enter_task(task_id="task-0002", task=fake_task(request_id="forged\nline-0001"))
    logging.getLogger("tests.worker").info("During the task.")
    logs.leave_task(task_id="task-0002", task=None)
    (entry,) = lines_of(log_lines(), "tests.worker")
    assert entry["request_id"] is None


def test_an_eager_task_logs_under_the_request_that_ran_it(in_a_request, log_lines):
    """No broker (the SQLite demo): the task runs inside the request, and the request keeps its id after."""
    assert app.conf.task_always_eager
    log_one_line.delay()
    (entry,) = lines_of(log_lines(), "tests.logging_tasks")
    assert entry["request_id"] == in_a_request
    assert entry["task_name"] == "tests.log_one_line" and entry["task_id"]
    assert logs.request_id_var.get() == in_a_request


@pytest.mark.worker
def test_a_real_worker_logs_the_task_under_the_request_id_of_whoever_queued_it(tmp_path):
    """A worker process against Redis, with its own key prefix and queue: the message crosses the broker."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not running at {REDIS_URL}")
    prefix = f"hai-test-{uuid.uuid4().hex[:8]}:"
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "REDIS_URL": REDIS_URL,
        "CELERY_KEY_PREFIX": prefix,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "registry", "worker", "-I", "tests.logging_tasks", "-Q", queue]
            + ["-c", "1", "-P", "prefork", "-n", f"logs-{queue}@%h", "--without-gossip", "--without-mingle"]
            + ["--without-heartbeat"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # One task queued under a request id, then one outside any request: the second must not
            # inherit the first's id in the worker process that runs both.
            queue_tasks = (
                "from registry.logs import request_id_var; from tests.logging_tasks import log_one_line;"
                "request_id_var.set('request-end-to-end-01'); first = log_one_line.delay();"
                "request_id_var.set(None); second = log_one_line.delay(); print(first.id, second.id)"
            )
            queued = subprocess.run(
                [sys.executable, "manage.py", "shell", "-v", "0", "-c", queue_tasks],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=60,
            )
            first_id, second_id = queued.stdout.split()

            def task_lines():
                entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
                return [e for e in entries if e["logger"] == "tests.logging_tasks"]

            deadline = time.monotonic() + 20
            while len(task_lines()) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
    lines = task_lines()
    assert len(lines) == 2, log_path.read_text()[-3000:]
    by_task = {line["task_id"]: line for line in lines}
    assert by_task[first_id]["request_id"] == "request-end-to-end-01"
    assert by_task[first_id]["task_name"] == "tests.log_one_line"
    assert by_task[second_id]["request_id"] is None
