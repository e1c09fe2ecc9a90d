"""Error reports to Sentry (or a service speaking its protocol), on only when SENTRY_DSN is set (settings).

An error report leaves the registry for a service outside its access control, so it must never carry
patient data: no name, birth date, hospital record number, nor any date or value of a patient's record.
Sentry's own options keep most of it out (no personal data, no local variables, no request bodies); the
hooks below remove, from every event and breadcrumb, whatever an integration could still attach. What is
left is enough to find the bug: the exception's type, the stack of files, lines and functions, the
request's method and path, the user's id and the request id (the same as in the logs, registry.logs).
"""

from urllib.parse import urlsplit, urlunsplit

import sentry_sdk

from registry.logs import request_id_var

# Request headers that say nothing about a patient. Everything else goes: Cookie and Authorization are
# credentials, Referer carries the previous page's query string (an admin search for a patient's name),
# and a client may send any header it likes.
SAFE_HEADERS = {"user-agent", "x-request-id", "accept", "content-type", "content-length"}


def init_error_reporting(dsn, environment=None, release=None, traces_sample_rate=0.0, **options):
    """``options`` go to sentry_sdk.init as they are (the tests give a transport that keeps the events)."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        # Performance traces only when asked for: their spans name queries and pages.
        traces_sample_rate=traces_sample_rate or None,
        # No user's email, name or address, no cookies, no client IP address.
        send_default_pii=False,
        # A frame's local variables are a patient's record more often than not (the form, the row).
        include_local_variables=False,
        # A request's body is a patient's record (a form posted, a file imported).
        max_request_body_size="never",
        # Log lines stay in the registry's own log collector.
        enable_logs=False,
        before_send=before_send,
        before_send_transaction=before_send_transaction,
        before_breadcrumb=before_breadcrumb,
        **options,
    )


def before_send(event, hint):
    _scrub_request(event)
    _scrub_user(event)
    _scrub_exceptions(event)
    _scrub_log_entry(event, (hint or {}).get("log_record"))
    _scrub_extra(event)
    for crumb in _values(event.get("breadcrumbs")):
        _scrub_breadcrumb(crumb)
    _tag_request_id(event)
    return event


def before_send_transaction(event, hint):
    before_send(event, hint)
    for span in event.get("spans") or []:
        # A span's data can hold a query's parameters or a URL's query string.
        span.pop("data", None)
    return event


def before_breadcrumb(crumb, hint):
    record = (hint or {}).get("log_record")
    if record is not None:
        crumb["message"] = _written_message(record)
    return _scrub_breadcrumb(crumb)


def _written_message(record):
    """A log call's message as written in the code, without the values formatted into it: "Centre report %s
    failed: %s" is followed by an exception's text, which can quote a row. ``logger.error(error)`` logs
    an exception itself: its type only."""
    return record.msg if isinstance(record.msg, str) else type(record.msg).__name__


def _values(container):
    """Sentry's lists come as {"values": [...]} or bare."""
    if isinstance(container, dict):
        container = container.get("values")
    return container if isinstance(container, list) else []


def _scrub_request(event):
    request = event.get("request")
    if not isinstance(request, dict):
        return
    # Body, cookies and query string: a posted form, a session, a search for a patient's name or number.
    # The environment: the client's address and the server's internals.
    for key in ("data", "cookies", "query_string", "env"):
        request.pop(key, None)
    if request.get("url"):
        request["url"] = _without_query(request["url"])
    headers = request.get("headers")
    if isinstance(headers, dict):
        request["headers"] = {name: value for name, value in headers.items() if name.lower() in SAFE_HEADERS}


def _without_query(url):
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _scrub_user(event):
    # Who met the error is found from the id in the registry's own tables; a username or an email is
    # often a clinician's name.
    user = event.get("user")
    if user is None:
        return
    if isinstance(user, dict) and user.get("id") is not None:
        event["user"] = {"id": user["id"]}
    else:
        event.pop("user", None)


def _scrub_exceptions(event):
    for exception in _values(event.get("exception")):
        # An exception's text quotes the value that failed: a database error names the row ("Key
        # (hospital_number)=(...) already exists"), a parse error the birth date it could not read.
        if exception.get("value"):
            exception["value"] = ""
        _scrub_frames(exception.get("stacktrace"))
    for thread in _values(event.get("threads")):
        _scrub_frames(thread.get("stacktrace"))
    _scrub_frames(event.get("stacktrace"))


def _scrub_frames(stacktrace):
    if not isinstance(stacktrace, dict):
        return
    for frame in stacktrace.get("frames") or []:
        # Should include_local_variables ever be turned on, or an integration add them regardless.
        frame.pop("vars", None)


def _scrub_log_entry(event, record):
    # An error logged with logger.error("... %s", error): the arguments can be the error's text.
    entry = event.get("logentry")
    if isinstance(entry, dict):
        entry.pop("params", None)
        entry.pop("formatted", None)
        if record is not None:
            entry["message"] = _written_message(record)


def _scrub_extra(event):
    # Extra data: a log call's extra=, the command line, a Celery task's arguments. Only the task's name
    # is needed to find the bug.
    extra = event.get("extra")
    if not isinstance(extra, dict):
        return
    job = extra.get("celery-job")
    kept = {"celery-job": {"task_name": job["task_name"]}} if isinstance(job, dict) and "task_name" in job else {}
    event["extra"] = kept


def _scrub_breadcrumb(crumb):
    # A breadcrumb's data: an SQL query's parameters (a name searched for, a birth date written), a log
    # call's extra=, an outgoing URL's query string. The SQL itself has placeholders, not values.
    crumb.pop("data", None)
    return crumb


def _tag_request_id(event):
    request_id = request_id_var.get()
    if not request_id:
        return
    tags = event.get("tags")
    if isinstance(tags, dict):
        tags["request_id"] = request_id
    elif isinstance(tags, list):
        tags.append(["request_id", request_id])
    else:
        event["tags"] = {"request_id": request_id}
