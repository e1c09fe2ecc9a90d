"""A list's count is capped and its export log written after the response (issue 16)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api import pagination
from api.models import ExportLog

from . import factories
from .clients import client_for


@pytest.fixture
def twelve(centre_a):
    for _ in range(12):
        factories.ImplantationFactory(patient=factories.PatientFactory(centre=centre_a))


@pytest.fixture
def cap_of_five(monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_CAP", 5)


def test_a_count_past_the_cap_is_a_floor_and_the_next_page_is_still_linked(twelve, coordinator, cap_of_five):
    body = client_for(coordinator).get("/api/v1/implantations/", {"page_size": 2}).json()
    assert (body["count"], body["count_is_exact"], len(body["results"])) == (5, False, 2)
    assert body["next"] and "page=2" in body["next"]
    # Page 4 starts after row 6: 5 more are counted, short of the end, so the floor moves with the page.
    body = client_for(coordinator).get("/api/v1/implantations/", {"page_size": 2, "page": 4}).json()
    assert (body["count"], body["count_is_exact"]) == (11, False)
    # Page 5 starts after row 8: counting 5 more reaches the end, so the count is exact.
    body = client_for(coordinator).get("/api/v1/implantations/", {"page_size": 2, "page": 5}).json()
    assert (body["count"], body["count_is_exact"]) == (12, True)
    # Page 6 is the last: rows 11 and 12, and no next page.
    body = client_for(coordinator).get("/api/v1/implantations/", {"page_size": 2, "page": 6}).json()
    assert (body["count"], body["count_is_exact"], body["next"], len(body["results"])) == (12, True, None, 2)


def test_under_the_cap_the_count_is_exact(twelve, coordinator):
    body = client_for(coordinator).get("/api/v1/implantations/").json()
    assert (body["count"], body["count_is_exact"], body["next"]) == (12, True, None)


def test_the_count_reads_no_further_than_the_cap(twelve, coordinator, cap_of_five):
    with CaptureQueriesContext(connection) as queries:
        client_for(coordinator).get("/api/v1/implantations/", {"page_size": 2, "page": 2})
    counts = [q["sql"] for q in queries if q["sql"].startswith("SELECT COUNT(*) FROM (")]
    assert len(counts) == 1 and "LIMIT 8" in counts[0]  # offset 2 + cap 5 + the one row that says "more"


def test_the_export_log_is_written_once_the_response_is_closed(twelve, coordinator, monkeypatch):
    closed = []
    real_close = pagination.PageNumberPagination.get_paginated_response

    def keep_open(self, data):
        response = real_close(self, data)
        closed.append(response)
        return response

    monkeypatch.setattr(pagination.PageNumberPagination, "get_paginated_response", keep_open)
    # The test client closes the response before it returns, as a server does after sending it.
    client_for(coordinator).get("/api/v1/implantations/", {"page_size": 3})
    response = closed[0]
    assert response.closed
    log = ExportLog.objects.get(endpoint="/api/v1/implantations/")
    assert (log.row_count, log.format, log.completed) == (3, "json", True)


def test_before_the_response_is_closed_no_export_log_is_written(twelve, coordinator):
    from django.core.signals import request_finished
    from django.db import close_old_connections
    from django.test import RequestFactory
    from rest_framework.test import force_authenticate

    from api.views import ImplantationViewSet

    request = RequestFactory().get("/api/v1/implantations/")
    force_authenticate(request, user=coordinator)
    response = ImplantationViewSet.as_view({"get": "list"})(request)
    response.render()
    assert ExportLog.objects.count() == 0
    # As the test client does: closing fires request_finished, which would close the test's connection.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert ExportLog.objects.get().row_count == 12
