"""Log lines that can be followed across the web app and the Celery workers (issue 17, item 2).

Every request gets an id (``RequestIdMiddleware``): the incoming ``X-Request-ID`` when it looks like one,
else a new one. It is sent back in the response's ``X-Request-ID``, written on every log line of the
request (``ContextFilter``) and carried in the message of every Celery task the request queues, so the
worker's lines for that task show the same id (``remember_request_id_in_task`` and the two handlers after
it, connected in ``registry.celery``).

Production writes one JSON object a line (``JsonFormatter``), for the log collector; development writes
plain lines. ``LOG_FORMAT`` in the settings chooses.

Log messages must never hold a patient identifier (name, birth date, hospital number, a date of the
record): they leave the registry's database for log collectors that are not access-controlled like it.
"""

import json
import logging
import re
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from django.core.signals import request_finished

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy or a client may hand us as an id: it is written into every log line and echoed in a
# header, so nothing that could break a line (newline), a header or a log query gets through.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")

request_id_var = ContextVar("request_id", default=None)
# (task id, task name) while a Celery task runs in this process.
task_var = ContextVar("task", default=None)


def safe_request_id(value):
    """``value`` when it can be trusted as a request id, else None."""
    if isinstance(value, str) and SAFE_REQUEST_ID.fullmatch(value):
        return value
    return None


def new_request_id():
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE, so that every other middleware's log lines carry the id too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = safe_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
        request.request_id = request_id
        # Not reset when this returns: a streamed export and the read log (sites.reads) still run, and log,
        # until the server closes the response; ``forget_request_id`` resets it then.
        request_id_var.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def forget_request_id(**kwargs):
    """Django sends request_finished when the server closes the response: after it the thread may serve
    another request, or log outside one, and must not write this request's id."""
    request_id_var.set(None)


request_finished.connect(forget_request_id, dispatch_uid="registry.logs.forget_request_id")


class ContextFilter(logging.Filter):
    """Adds ``request_id`` (None outside a request) and, in a Celery task, ``task_id`` and ``task_name``."""

    def filter(self, record):
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        task = task_var.get()
        record.task_id, record.task_name = task if task else (None, None)
        return True


class PlainFormatter(logging.Formatter):
    """Development: ``2026-03-04 10:15:02,114 INFO reports.tasks [4f1c0b9e...] Report run 12 started.``"""

    def __init__(self, fmt="%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s", **kwargs):
        super().__init__(fmt, **kwargs)

    def format(self, record):
        # "-" outside a request, only on this line: another handler may be given the same record.
        request_id = getattr(record, "request_id", None)
        record.request_id = request_id or "-"
        try:
            return super().format(record)
        finally:
            record.request_id = request_id


class JsonFormatter(logging.Formatter):
    """Production: one JSON object a line, the traceback (if any) inside it rather than on lines of its own."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if getattr(record, "task_id", None):
            entry["task_id"] = record.task_id
            entry["task_name"] = record.task_name
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


# --- Celery: the request id travels in the task message's headers.

TASK_HEADER = "request_id"


def remember_request_id_in_task(headers=None, **kwargs):
    """before_task_publish: the id of the request (or of the task) that queues a task goes with it."""
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


_tokens_by_task = {}


def enter_task(task_id=None, task=None, **kwargs):
    """task_prerun: the worker's lines for this task carry the request's id, the task's id and name.

    A task run eagerly (no broker) runs inside the request and keeps its id: no message, no header.
    """
    header = getattr(getattr(task, "request", None), TASK_HEADER, None)
    request_id = safe_request_id(header) or request_id_var.get()
    _tokens_by_task[task_id] = (
        request_id_var.set(request_id),
        task_var.set((task_id, getattr(task, "name", None))),
    )


def leave_task(task_id=None, **kwargs):
    """task_postrun: the next task this worker process runs must not show this one's ids."""
    tokens = _tokens_by_task.pop(task_id, None)
    if tokens is None:
        return
    request_token, task_token = tokens
    try:
        task_var.reset(task_token)
        request_id_var.reset(request_token)
    except ValueError:  # set in another context (a thread of its own): nothing of ours to restore here
        task_var.set(None)
        request_id_var.set(None)
