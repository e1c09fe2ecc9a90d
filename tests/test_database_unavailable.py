"""While the database is down every request gets a 503 in the one error shape, never a 500 page (issue 17, item 6).

Here the failure is injected where it would surface (a view's query, the session middleware); the real
thing, PostgreSQL restarted under API load, is in tests/test_database_restart.py.
"""

import json

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import InterfaceError, OperationalError
from rest_framework.test import APIClient

from api import views

pytestmark = pytest.mark.django_db

URL = "/api/v1/implantations/"


@pytest.fixture
def browser(coordinator):
    client = APIClient(raise_request_exception=False)
    client.force_login(coordinator)
    return client


def assert_database_unavailable_json(response):
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert json.loads(response.content) == {
        "detail": "The registry's database is unavailable for a moment. Nothing was saved; try again shortly."
    }
    assert response["Retry-After"] == "30"


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_query_failing_in_an_api_view_is_a_503_in_the_error_shape(browser, monkeypatch, error):
    def down(self, request, *args, **kwargs):
        raise error("server closed the connection unexpectedly SELECT ... WHERE hospital_number = 'MRN-1'")

    monkeypatch.setattr(views.ImplantationViewSet, "list", down)
    assert_database_unavailable_json(browser.get(URL))


def test_the_log_names_the_failure_without_the_statement(browser, monkeypatch, caplog):
    def down(self, request, *args, **kwargs):
        raise OperationalError("terminating connection due to administrator command\nSELECT 'MRN-123456'")

    monkeypatch.setattr(views.ImplantationViewSet, "list", down)
    browser.get(URL)
    assert "terminating connection due to administrator command" in caplog.text
    assert "MRN-123456" not in caplog.text


@pytest.mark.parametrize("path, api", [(URL, True), ("/admin/", False)], ids=["api", "admin"])
def test_a_database_error_in_a_middleware_is_a_503_too(browser, monkeypatch, path, api):
    def down(self):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(SessionStore, "load", down)
    response = browser.get(path)
    if api:
        assert_database_unavailable_json(response)
    else:
        assert response.status_code == 503
        assert b"database is unavailable" in response.content
        assert response["Retry-After"] == "30"


def test_any_other_error_stays_a_500(browser, monkeypatch):
    def bug(self, request, *args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(views.ImplantationViewSet, "list", bug)
    response = browser.get(URL)
    assert response.status_code == 500
    assert json.loads(response.content) == {"detail": "Server error."}


def test_a_write_that_fails_on_the_database_is_a_503_and_saves_nothing(data_manager_a, centre_a, monkeypatch):
    from registry.models import Patient

    client = APIClient(raise_request_exception=False)
    client.force_authenticate(data_manager_a)

    def down(*args, **kwargs):
        raise OperationalError("the database system is shutting down")

    # The failure strikes after the patient's row is inserted, when its history row is: both or neither.
    monkeypatch.setattr(Patient.history.model, "save", down)
    payload = {"centre": centre_a.code, "birth_year": 1958, "sex": "female", "primary_tumour": "colorectal"}
    assert_database_unavailable_json(client.post("/api/v1/patients/", payload, format="json"))
    assert not Patient.objects.exists()
    monkeypatch.undo()
    assert client.post("/api/v1/patients/", payload, format="json").status_code == 201
    assert Patient.objects.count() == 1 and Patient.history.count() == 1
