"""/api/v1/stats/cumulative-incidence/ and the statistics' fixed cut points (issue 8)."""

from fractions import Fraction

import pytest

from registry.models import ComplicationType
from sites.models import Centre, Surgeon

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import release_codec

URL = "/api/v1/stats/cumulative-incidence/"


def implantation(centre, *, followed=400, died=None, **kwargs):
    implanted = factories.ImplantationFactory(patient__centre=centre, implanted_on=days_after(0), **kwargs)
    contact = died if died is not None else followed
    factories.FollowUpFactory(
        implantation=implanted,
        contact_on=days_after(contact),
        vital_status="dead" if died is not None else "alive",
        died_on=days_after(died) if died is not None else None,
    )
    return implanted


def complication(implanted, code, day, **kwargs):
    return factories.ComplicationFactory(
        implantation=implanted, type=ComplicationType.objects.get(code=code), onset_on=days_after(day), **kwargs
    )


@pytest.fixture
def registry(centre_a):
    """Six implantations: an infection on day 30 and a death on day 30; a death on day 20; an
    occlusion on day 60; two followed a year; one followed 45 days only."""
    a = implantation(centre_a, died=30)
    complication(a, "pocket_infection", 30, grade=3, clavien_dindo="IIIa")
    implantation(centre_a, died=20)
    b = implantation(centre_a)
    complication(b, "catheter_occlusion", 60, grade=2, clavien_dindo="II")
    implantation(centre_a)
    implantation(centre_a)
    implantation(centre_a, followed=45)


def test_technical_complication_within_90_days_is_aalen_johansen_with_death_competing(registry, coordinator):
    body = client_for(coordinator).get(URL, {"event": "technical", "at_days": 90}).json()
    [group] = body["groups"]
    # Day 20: a death (1 of 6); day 30: the infection (1 of 5, the same-day death does not come first);
    # day 45: one censored; day 60: the occlusion (1 of 3).
    s20 = Fraction(5, 6)
    f30 = s20 * Fraction(1, 5)
    s30 = s20 * Fraction(4, 5)
    f60 = f30 + s30 * Fraction(1, 3)
    assert group["group"] == "all"
    assert (group["implantations"], group["events"], group["competing_events"]) == (6, 2, 1)
    assert group["estimate"] == pytest.approx(float(f60))
    low, high = group["ci"]
    assert 0 <= low < group["estimate"] < high <= 1


def test_severe_only_counts_clavien_dindo_3a_and_above(registry, coordinator):
    [group] = client_for(coordinator).get(URL, {"event": "technical", "at_days": 90, "severe": "true"}).json()["groups"]
    assert group["events"] == 1


def test_a_type_code_and_pump_failure_are_events_too(registry, coordinator):
    client = client_for(coordinator)
    [occlusion] = client.get(URL, {"event": "catheter_occlusion", "at_days": 90}).json()["groups"]
    assert occlusion["events"] == 1
    [failure] = client.get(URL, {"event": "pump_failure", "at_days": 365}).json()["groups"]
    assert (failure["events"], failure["competing_events"], failure["estimate"]) == (0, 2, 0.0)


def test_complications_within_days_uses_the_same_estimator(registry, coordinator):
    client = client_for(coordinator)
    [incidence] = client.get(URL, {"event": "technical", "at_days": 90}).json()["groups"]
    [rate] = client.get("/api/v1/stats/complications/", {"type": "technical", "within_days": 90}).json()["groups"]
    assert rate["rate"] == pytest.approx(incidence["estimate"])
    assert rate["ci"] == pytest.approx(incidence["ci"])


@pytest.mark.parametrize("at_days", ["0", "45", "89", "91", "1000", "abc"])
def test_windows_are_fixed(registry, coordinator, at_days):
    response = client_for(coordinator).get(URL, {"event": "technical", "at_days": at_days})
    assert response.status_code == 400
    assert "at_days" in response.json()["errors"]


def test_unknown_event_is_a_clear_400(registry, coordinator):
    response = client_for(coordinator).get(URL, {"event": "nonsense", "at_days": 90})
    assert response.status_code == 400
    assert response.json()["errors"]["event"] == ["Unknown event 'nonsense'."]


COORDINATOR_ONLY = [
    ("experience_threshold", "40"),
    ("surgeon_volume_bands", "3,8"),
    ("centre_volume_bands", "10,20"),
    ("surgeon", "S0001"),
    ("patient", "1"),
    ("implanted_after", "2024-03-02"),
    ("implanted_before", "2024-03-02"),
    ("min_surgeon_sequence", "40"),
    ("max_surgeon_sequence", "41"),
    ("surgeon_experience", "below"),
    ("treated", "true"),
    ("complication_type", "pocket_infection"),
]
STATS_PATHS = [
    ("complications", {"type": "technical"}),
    ("pump-use", {}),
    ("survival", {}),
    ("cumulative-incidence", {"event": "technical", "at_days": "90"}),
]


@pytest.mark.parametrize("role", ["investigator", "data_manager_a", "centre_lead_a"])
@pytest.mark.parametrize("path, params", STATS_PATHS)
@pytest.mark.parametrize("name, value", COORDINATOR_ONLY)
def test_free_cut_points_and_patient_filters_are_coordinator_only(registry, request, role, path, params, name, value):
    user = request.getfixturevalue(role)
    response = client_for(user).get(f"/api/v1/stats/{path}/", {**params, name: value})
    assert response.status_code == 400, response.content
    assert name in response.json()["errors"]


@pytest.mark.parametrize("path, params", STATS_PATHS)
@pytest.mark.parametrize("name, value", COORDINATOR_ONLY)
def test_the_coordinator_may_set_them(registry, coordinator, path, params, name, value):
    if name == "surgeon":  # an unknown surgeon is a 400 (tests/test_api_strict_parameters.py): name one
        value = Surgeon.objects.first().code
    response = client_for(coordinator).get(f"/api/v1/stats/{path}/", {**params, name: value})
    assert response.status_code == 200, response.content


PUBLIC = [
    ("centre", "CENTRE-A"),
    ("indication", "adjuvant"),
    ("device", "constant_flow_pump"),
    ("approach", "laparotomy"),
    ("sex", "female"),
    ("implanted_from", "2024-03"),
    ("implanted_to", "2024-03"),
]


@pytest.mark.parametrize("role", ["data_manager_a", "centre_lead_a"])
@pytest.mark.parametrize("name, value", PUBLIC)
def test_everyone_may_filter_by_the_public_fields(registry, request, role, name, value):
    user = request.getfixturevalue(role)
    response = client_for(user).get(URL, {"event": "technical", "at_days": 90, name: value})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("name, value", PUBLIC)
def test_investigators_filter_by_them_with_their_codes_and_whole_years(registry, investigator, name, value):
    """Investigators name centres by their opaque codes and give whole years (tests/test_api_deidentification.py)."""
    if name == "centre":
        value = release_codec("centre").encode(Centre.objects.get(code=value).pk)
    if name.startswith("implanted_"):
        value = value[:4]
    response = client_for(investigator).get(URL, {"event": "technical", "at_days": 90, name: value})
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("role", ["investigator", "data_manager_a"])
@pytest.mark.parametrize("value", ["2024-03-01", "2024-3", "03-2024", "2024-13", "24"])
def test_dates_are_whole_months(registry, request, role, value):
    response = client_for(request.getfixturevalue(role)).get("/api/v1/stats/pump-use/", {"implanted_from": value})
    assert response.status_code == 400
    assert "implanted_from" in response.json()["errors"]


def test_investigators_give_whole_years_only(registry, investigator):
    response = client_for(investigator).get("/api/v1/stats/pump-use/", {"implanted_from": "2024-03"})
    assert response.status_code == 400
    assert "Whole years only" in response.json()["errors"]["implanted_from"][0]


def test_month_filters_take_whole_months(centre_a, coordinator):
    for day in (-1, 0, 30, 31):  # 29 Feb, 1 and 31 March, 1 April 2024
        factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(day))
    client = client_for(coordinator)
    body = client.get("/api/v1/stats/pump-use/", {"implanted_from": "2024-03", "implanted_to": "2024-03"}).json()
    assert body["groups"][0]["implantations"] == 2
    body = client.get("/api/v1/stats/pump-use/", {"implanted_from": "2024", "implanted_to": "2024"}).json()
    assert body["groups"][0]["implantations"] == 4
    body = client.get("/api/v1/stats/pump-use/", {"implanted_from": "2025"}).json()
    assert body["groups"] == []


def test_investigators_get_small_groups_suppressed(registry, investigator):
    [group] = client_for(investigator).get(URL, {"event": "technical", "at_days": 90}).json()["groups"]
    # 2 events, 1 competing: small counts hide the group's counts and its estimate together.
    assert group["suppressed"] is True
    assert group["events"] is None and group["competing_events"] is None and group["estimate"] is None
