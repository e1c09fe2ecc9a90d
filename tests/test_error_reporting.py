"""Error reports (issue 17, item 2): an error in a request that handled a patient's record reaches Sentry
with what finds the bug (type, stack, path, request id) and none of the patient's data."""

import json
import logging

import pytest
import sentry_sdk
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.urls import path
from sentry_sdk.transport import Transport

from registry import error_reporting

# The patient in the request. Far from the view below on purpose: a frame's source lines are sent (code,
# not data), and these values must appear in no event.
HOSPITAL_NUMBER = "MRN-123456"
BIRTH_DATE = "1950-03-14"
SURNAME = "Featherstonehaugh"
IMPLANT_DATE = "2024-02-29"
PATIENT_STRINGS = [HOSPITAL_NUMBER, BIRTH_DATE, SURNAME, IMPLANT_DATE]


class KeptEnvelopes(Transport):
    """Sentry's transport, keeping what it would send."""

    def __init__(self, options=None):
        super().__init__(options)
        self.envelopes = []

    def capture_envelope(self, envelope):
        self.envelopes.append(envelope)

    def events(self):
        return [envelope.get_event() for envelope in self.envelopes if envelope.get_event() is not None]

    def sent_text(self):
        return b"".join(envelope.serialize() for envelope in self.envelopes).decode("utf-8", "replace")


@pytest.fixture
def sentry():
    transport = KeptEnvelopes()
    error_reporting.init_error_reporting(
        dsn="https://0123456789abcdef@sentry.example.org/1", environment="test", transport=transport
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        # No client any more: every other test runs as without SENTRY_DSN.
        sentry_sdk.get_global_scope().set_client(None)


logger = logging.getLogger("tests.error_view")


def view_that_fails(request):
    record = {
        "hospital_number": request.POST["hospital_number"],
        "birth_date": request.POST["birth_date"],
        "surname": request.GET["surname"],
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s, %s", [record["hospital_number"], record["birth_date"]])
    # Against the rule (never a patient identifier in a log message), to show the scrubbing holds anyway.
    logger.warning("Looked up %s", record["hospital_number"])
    logger.error("No match for %s born %s", record["surname"], record["birth_date"])
    raise ValueError(f"duplicate key: Key (hospital_number)=({record['hospital_number']}) already exists")


def view_that_works(request):
    return HttpResponse("ok")


urlpatterns = [path("fails/", view_that_fails), path("works/", view_that_works)]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_an_error_in_a_request_reaches_sentry_without_the_patients_data(sentry):
    client = Client(raise_request_exception=False)
    client.cookies["last_patient"] = HOSPITAL_NUMBER
    response = client.post(
        f"/fails/?surname={SURNAME}&implanted={IMPLANT_DATE}",
        {"hospital_number": HOSPITAL_NUMBER, "birth_date": BIRTH_DATE, "implant_date": IMPLANT_DATE},
        headers={
            "X-Request-ID": "sentry-test-request-01",
            "Referer": f"https://registry.example.org/admin/?q={SURNAME}",
            "X-Patient": HOSPITAL_NUMBER,
            "User-Agent": "test-browser/1.0",
        },
    )
    assert response.status_code == 500
    sent = sentry.sent_text()
    for value in PATIENT_STRINGS:
        assert value not in sent, f"{value} was sent to Sentry"

    errors = [event for event in sentry.events() if event.get("exception")]
    assert errors, "the exception was not reported"
    event = errors[0]
    # Still enough to find the bug.
    (exception,) = event["exception"]["values"]
    assert exception["type"] == "ValueError"
    assert "view_that_fails" in [frame["function"] for frame in exception["stacktrace"]["frames"]]
    assert all("vars" not in frame for frame in exception["stacktrace"]["frames"])
    assert event["tags"]["request_id"] == "sentry-test-request-01"
    assert {"data", "cookies", "query_string", "env"}.isdisjoint(event.get("request", {}))
    # The logged error is reported as written in the code.
    logged = [e for e in sentry.events() if e.get("logentry", {}).get("message") == "No match for %s born %s"]
    assert logged and logged[0]["tags"]["request_id"] == "sentry-test-request-01"
    crumbs = [crumb["message"] for crumb in event["breadcrumbs"]["values"]]
    assert "Looked up %s" in crumbs and "SELECT %s, %s" in crumbs


@pytest.mark.urls(__name__)
def test_a_request_that_works_sends_nothing(sentry):
    assert Client().get("/works/").status_code == 200
    assert sentry.events() == []


def test_an_exception_captured_outside_a_request_has_no_request_id_and_no_message(sentry):
    try:
        raise ValueError(f"could not read the birth date {BIRTH_DATE}")
    except ValueError:
        sentry_sdk.capture_exception()
    (event,) = sentry.events()
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert BIRTH_DATE not in sentry.sent_text()
    assert "request_id" not in event.get("tags", {})


def test_before_send_keeps_the_user_as_an_id_and_drops_the_tasks_arguments():
    event = {
        "user": {"id": 42, "username": "j.smith", "email": "j.smith@hospital.example.org", "ip_address": "10.0.0.9"},
        "extra": {
            "celery-job": {"task_name": "reports.tasks.produce_centre_report", "args": [HOSPITAL_NUMBER], "kwargs": {}},
            "sys.argv": ["manage.py", "import_records", f"{SURNAME}.csv"],
        },
        "request": {"url": f"https://registry.example.org/a/?q={SURNAME}", "headers": {"Cookie": "sessionid=x"}},
        "threads": {"values": [{"stacktrace": {"frames": [{"function": "f", "vars": {"dob": BIRTH_DATE}}]}}]},
    }
    scrubbed = error_reporting.before_send(event, {})
    assert scrubbed["user"] == {"id": 42}
    assert scrubbed["extra"] == {"celery-job": {"task_name": "reports.tasks.produce_centre_report"}}
    assert scrubbed["request"] == {"url": "https://registry.example.org/a/", "headers": {}}
    assert scrubbed["threads"]["values"][0]["stacktrace"]["frames"] == [{"function": "f"}]
    assert not any(value in json.dumps(scrubbed) for value in PATIENT_STRINGS)


def test_a_user_without_an_id_is_dropped():
    assert "user" not in error_reporting.before_send({"user": {"username": "j.smith"}}, {})


def test_breadcrumbs_lose_their_data_and_log_breadcrumbs_their_arguments():
    query = {"category": "query", "message": "SELECT 1 WHERE x = %s", "data": {"db.params": [HOSPITAL_NUMBER]}}
    assert error_reporting.before_breadcrumb(query, {}) == {"category": "query", "message": "SELECT 1 WHERE x = %s"}
    record = logging.LogRecord("tests", logging.INFO, __file__, 1, "Saved %s", (SURNAME,), None)
    record.message = record.getMessage()
    crumb = {"type": "log", "category": "tests", "message": record.message, "data": {"patient": SURNAME}}
    assert error_reporting.before_breadcrumb(crumb, {"log_record": record}) == {
        "type": "log",
        "category": "tests",
        "message": "Saved %s",
    }
