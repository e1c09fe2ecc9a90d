"""``/api/v1/stats/concordance/`` and ``/api/v1/stats/readmissions/``: known answers, scope per role,
investigators' opaque codes and small-cell suppression, as the other statistics endpoints."""

import pytest
from rest_framework.test import APIClient
from scipy.stats import binomtest

from sites.models import Centre

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import release_codec

CONCORDANCE = "/api/v1/stats/concordance/"
READMISSIONS = "/api/v1/stats/readmissions/"


def wilson(x, n):
    ci = binomtest(x, n).proportion_ci(method="wilson")
    return pytest.approx([ci.low, ci.high])


def treated(centre, *, with_line=True, **fields):
    implantation = factories.ImplantationFactory(patient__centre=centre, **fields)
    factories.TreatmentFactory(implantation=implantation, given_on=days_after(17, implantation.implanted_on))
    if with_line:
        factories.SystemicTherapyLineFactory(
            patient=implantation.patient, started_on=implantation.implanted_on, ended_on=None
        )
    return implantation


@pytest.fixture
def registry(centre_a, centre_b):
    """A: 8 implantations, 6 treated (5 with systemic therapy during HAI), 2 with extrahepatic disease outside a
    trial, 2 readmitted within 30 days. B: 6 treated, all with systemic therapy; 1 extrahepatic in a trial."""
    a = [treated(centre_a, with_line=index < 5) for index in range(6)]
    a += [factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=True) for _ in range(2)]
    b = [treated(centre_b) for _ in range(5)]
    b.append(treated(centre_b, patient__extrahepatic_disease=True, trial="NCT01234567"))
    for implantation in a[:2]:
        factories.ReadmissionFactory(implantation=implantation)
    return {"a": a, "b": b}


def test_systemic_therapy_during_hai_for_the_coordinator(registry, coordinator):
    client = client_for(coordinator)
    body = client.get(CONCORDANCE, {"measure": "systemic_with_hai"}).json()
    assert body["groups"] == [
        {"group": "all", "implantations": 12, "events": 11, "rate": 11 / 12, "ci": wilson(11, 12)}
    ]
    groups = client.get(CONCORDANCE, {"measure": "systemic_with_hai", "group_by": "centre"}).json()["groups"]
    assert [(g["group"], g["events"], g["implantations"]) for g in groups] == [("CENTRE-A", 5, 6), ("CENTRE-B", 6, 6)]


def test_extrahepatic_disease_outside_a_trial_for_the_coordinator(registry, coordinator):
    body = client_for(coordinator).get(CONCORDANCE, {"measure": "extrahepatic_outside_trial"}).json()
    # The trial patient at B is not counted; the 11 others outside a trial have no status recorded (the
    # factory's default): counted apart, not as "no".
    assert body["groups"] == [
        {"group": "all", "implantations": 14, "events": 2, "unknown_status": 11, "rate": 2 / 14, "ci": wilson(2, 14)}
    ]


def test_a_data_manager_sees_their_own_centre_only(registry, data_manager_a):
    groups = (
        client_for(data_manager_a)
        .get(CONCORDANCE, {"measure": "extrahepatic_outside_trial", "group_by": "centre"})
        .json()["groups"]
    )
    assert [g["group"] for g in groups] == ["CENTRE-A"]
    readmissions = client_for(data_manager_a).get(READMISSIONS, {"measure": "readmission_30d"}).json()["groups"]
    # Only A's 8 implantations; 2 readmitted is a small cell, hidden with the group.
    assert readmissions == [
        {"group": "all", "implantations": None, "events": None, "rate": None, "ci": None, "suppressed": True}
    ]


def test_investigators_get_opaque_codes_and_small_cells_suppressed(registry, investigator):
    response = client_for(investigator).get(CONCORDANCE, {"measure": "systemic_with_hai", "group_by": "centre"})
    codec = release_codec("centre")
    a, b = (codec.encode(c.pk) for c in Centre.objects.order_by("code"))
    groups = {g["group"]: g for g in response.json()["groups"]}
    assert set(groups) == {a, b}
    assert b"CENTRE-A" not in response.content and b"CENTRE-B" not in response.content
    # A: 5 and 1 (small), hidden whole. B (6 of 6) stays: the registry's total (11 of 12) has a small part
    # and is not published either, so nothing gives A back.
    assert groups[a] == {
        "group": a,
        "implantations": None,
        "events": None,
        "rate": None,
        "ci": None,
        "suppressed": True,
    }
    assert (groups[b]["events"], groups[b]["implantations"], groups[b]["suppressed"]) == (6, 6, False)
    [total] = client_for(investigator).get(CONCORDANCE, {"measure": "systemic_with_hai"}).json()["groups"]
    assert total["suppressed"] is True and total["events"] is None


def test_readmission_rates_over_complete_windows(registry, coordinator):
    client = client_for(coordinator)
    groups = client.get(READMISSIONS, {"measure": "readmission_30d", "group_by": "centre"}).json()["groups"]
    assert groups == [
        {"group": "CENTRE-A", "implantations": 8, "events": 2, "rate": 2 / 8, "ci": wilson(2, 8)},
        {"group": "CENTRE-B", "implantations": 6, "events": 0, "rate": 0.0, "ci": wilson(0, 6)},
    ]
    assert client.get(READMISSIONS, {"measure": "reoperation_90d"}).json()["groups"][0]["events"] == 0


def test_a_new_readmission_shows_in_the_cached_statistics(registry, coordinator, django_capture_on_commit_callbacks):
    client = client_for(coordinator)
    assert client.get(READMISSIONS, {"measure": "readmission_90d"}).json()["groups"][0]["events"] == 2
    with django_capture_on_commit_callbacks(execute=True):
        factories.ReadmissionFactory(implantation=registry["b"][0])
    assert client.get(READMISSIONS, {"measure": "readmission_90d"}).json()["groups"][0]["events"] == 3


def test_csv_and_bad_parameters(registry, coordinator):
    client = client_for(coordinator)
    response = client.get(CONCORDANCE, {"measure": "systemic_with_hai", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    for path, params in ((CONCORDANCE, {}), (CONCORDANCE, {"measure": "nope"}), (READMISSIONS, {"measure": "45d"})):
        response = client.get(path, params)
        assert response.status_code == 400 and "measure" in response.json()["errors"]


def test_the_endpoints_need_a_role(registry):
    assert APIClient().get(CONCORDANCE, {"measure": "systemic_with_hai"}).status_code == 401
    nobody = client_for(factories.UserFactory())
    assert nobody.get(READMISSIONS, {"measure": "readmission_30d"}).status_code == 403
