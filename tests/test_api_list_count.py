"""A list's count is capped (issue 16); a page is no export (issue 17)."""

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


def test_a_page_of_json_is_no_export(twelve, coordinator):
    """Issue 17: the export log keeps exports (CSV, the analysis dataset); a page is in the read log."""
    from sites.models import RecordRead

    client_for(coordinator).get("/api/v1/implantations/", {"page_size": 3})
    assert not ExportLog.objects.exists()
    assert RecordRead.objects.get().record_count == 3
