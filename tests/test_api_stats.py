"""Statistics endpoints: hand-computed answers, the same filters and scope as the lists, and suppression."""

import pytest
from rest_framework.test import APIClient
from scipy.stats import binomtest

from registry.models import ComplicationType
from sites.models import Centre

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import release_codec


def wilson(x, n):
    ci = binomtest(x, n).proportion_ci(method="wilson")
    return [ci.low, ci.high]


@pytest.fixture
def registry(centre_a, centre_b):
    """Centre A: 10 implantations (2 biliary sclerosis at day 20 and 200, 6 treated); centre B: 6, none."""
    expert = factories.SurgeonFactory(centre=centre_a, prior_pump_count=24)
    a = [
        factories.ImplantationFactory(patient__centre=centre_a, surgeon=expert, implanted_on=days_after(i))
        for i in range(10)
    ]
    b = [
        factories.ImplantationFactory(patient__centre=centre_b, implanted_on=days_after(i), indication="adjuvant")
        for i in range(6)
    ]
    factories.ComplicationFactory(implantation=a[0], onset_on=days_after(20, a[0].implanted_on))
    factories.ComplicationFactory(implantation=a[1], onset_on=days_after(200, a[1].implanted_on))
    for index, implantation in enumerate(a[:6]):
        factories.TreatmentFactory(
            implantation=implantation, given_on=days_after(10 + index, implantation.implanted_on)
        )
    return {"a": a, "b": b}


def test_complication_rate_uses_every_implantation_as_denominator(registry, coordinator):
    body = client_for(coordinator).get("/api/v1/stats/complications/", {"type": "any"}).json()
    assert body["groups"] == [
        {"group": "all", "implantations": 16, "events": 2, "rate": 2 / 16, "ci": pytest.approx(wilson(2, 16))}
    ]


def test_a_toxicity_is_counted_over_treated_implantations(registry, coordinator):
    body = client_for(coordinator).get("/api/v1/stats/complications/", {"type": "biliary_sclerosis"}).json()
    assert body["groups"] == [
        {"group": "all", "implantations": 6, "events": 2, "rate": 2 / 6, "ci": pytest.approx(wilson(2, 6))}
    ]


def test_within_days_and_group_by_centre(registry, coordinator):
    for implantation in registry["a"] + registry["b"]:
        factories.FollowUpFactory(implantation=implantation, contact_on=days_after(400, implantation.implanted_on))
    body = (
        client_for(coordinator)
        .get("/api/v1/stats/complications/", {"type": "biliary_sclerosis", "within_days": 30, "group_by": "centre"})
        .json()
    )
    # A toxicity from the first dose, over treated implantations: A's first case, 10 days after its dose.
    assert [(g["group"], g["implantations"], g["events"], g["rate"]) for g in body["groups"]] == [
        ("CENTRE-A", 6, 1, pytest.approx(1 / 6)),
        ("CENTRE-B", 0, 0, None),
    ]


def test_surgeon_experience_counts_pre_registry_pumps(registry, coordinator):
    client = client_for(coordinator)
    body = client.get("/api/v1/stats/complications/", {"type": "any", "group_by": "surgeon_experience"}).json()
    # The expert's registry pumps are numbers 25..34: pump 25 had 24 placed before, pumps 26..34 had 25 or more.
    groups = {g["group"]: (g["implantations"], g["events"]) for g in body["groups"]}
    assert groups == {"fewer than 25 before": (1 + 6, 1), "25 or more before": (9, 1)}
    # The coordinator may move the threshold: 26 before means pump number 27 or later.
    body = client.get(
        "/api/v1/stats/complications/", {"type": "any", "group_by": "surgeon_experience", "experience_threshold": 26}
    ).json()
    groups = {g["group"]: (g["implantations"], g["events"]) for g in body["groups"]}
    assert groups == {"fewer than 26 before": (2 + 6, 2), "26 or more before": (8, 0)}


def test_surgeon_volume_bands(registry, coordinator):
    body = (
        client_for(coordinator)
        .get("/api/v1/stats/pump-use/", {"group_by": "surgeon_volume", "surgeon_volume_bands": "3,8"})
        .json()
    )
    # The expert placed 10 pumps on consecutive days: volumes 0..9 in the year before each.
    assert [(g["group"], g["implantations"]) for g in body["groups"]] == [("0-2", 3 + 6), ("3-7", 5), ("8+", 2)]


def test_pump_use_and_days_to_first_dose(registry, coordinator):
    body = client_for(coordinator).get("/api/v1/stats/pump-use/", {"group_by": "centre"}).json()
    a, b = body["groups"]
    assert (a["implantations"], a["treated"], a["rate"], a["median_days_to_first_dose"]) == (10, 6, 0.6, 12.5)
    assert a["ci"] == pytest.approx(wilson(6, 10))
    assert (b["treated"], b["median_days_to_first_dose"]) == (0, None)


def test_same_filters_as_the_implantation_list(registry, coordinator):
    body = client_for(coordinator).get("/api/v1/stats/pump-use/", {"indication": "adjuvant"}).json()
    assert body["groups"][0]["implantations"] == 6
    body = client_for(coordinator).get("/api/v1/stats/pump-use/", {"treated": "true", "centre": "CENTRE-A"}).json()
    assert body["groups"][0]["implantations"] == 6


def test_data_managers_get_statistics_of_their_own_centres_only(registry, data_manager_a):
    body = client_for(data_manager_a).get("/api/v1/stats/pump-use/", {"group_by": "centre"}).json()
    assert [g["group"] for g in body["groups"]] == ["CENTRE-A"]


def test_overall_survival_kaplan_meier(centre_a, coordinator):
    """Deaths on days 100, 200, 300; censored on 150 and 400: S = 0.8, 0.533, 0.267; median 300."""
    for died, last_contact in ((100, 100), (200, 200), (300, 300), (None, 150), (None, 400)):
        implantation = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
        factories.FollowUpFactory(
            implantation=implantation,
            contact_on=days_after(last_contact),
            vital_status="dead" if died else "alive",
            died_on=days_after(died) if died else None,
        )
    group = client_for(coordinator).get("/api/v1/stats/survival/", {"endpoint": "overall"}).json()["groups"][0]
    assert (group["n"], group["events"], group["median_days"]) == (5, 3, 300)
    assert [(r["day"], r["at_risk"], r["events"]) for r in group["table"]] == [
        (100, 5, 1),
        (150, 4, 0),
        (200, 3, 1),
        (300, 2, 1),
        (400, 1, 0),
    ]
    assert [r["survival"] for r in group["table"]] == pytest.approx(
        [0.8, 0.8, 0.8 * 2 / 3, 0.8 * 2 / 3 / 2, 0.8 * 2 / 3 / 2]
    )


def test_freedom_from_pump_failure_has_death_competing(centre_a, coordinator):
    """Death on day 10 competes; an occlusion loses the pump on day 40; one followed to day 90.
    1 − Aalen-Johansen: 1 − (2/3 × 1/2) = 2/3 (1 − Kaplan-Meier, censoring the death, would say 1/2)."""
    died = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    factories.FollowUpFactory(implantation=died, contact_on=days_after(10), vital_status="dead", died_on=days_after(10))
    lost = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    factories.ComplicationFactory(implantation=lost, type=occlusion, onset_on=days_after(40), pump_lost=True)
    followed = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    factories.FollowUpFactory(implantation=followed, contact_on=days_after(90))
    group = client_for(coordinator).get("/api/v1/stats/survival/", {"endpoint": "pump_failure"}).json()["groups"][0]
    assert [(r["day"], r["at_risk"], r["events"]) for r in group["table"]] == [(10, 3, 0), (40, 2, 1), (90, 1, 0)]
    assert [r["survival"] for r in group["table"]] == pytest.approx([1.0, 2 / 3, 2 / 3])
    # A pump lost to a toxicity is not a pump failure: its use ended (a competing event).
    factories.ComplicationFactory(implantation=followed, onset_on=days_after(50), pump_lost=True)
    group = client_for(coordinator).get("/api/v1/stats/survival/", {"endpoint": "pump_failure"}).json()["groups"][0]
    assert group["events"] == 1


def test_small_cells_are_suppressed_for_everyone_but_the_coordinator(registry, investigator):
    body = (
        client_for(investigator)
        .get("/api/v1/stats/complications/", {"type": "biliary_sclerosis", "group_by": "centre"})
        .json()
    )
    # Investigators see centres by their opaque codes (tests/test_api_deidentification.py).
    codec = release_codec("centre")
    groups = {g["group"]: g for g in body["groups"]}
    a, b = (groups[codec.encode(centre.pk)] for centre in Centre.objects.order_by("code"))
    # Hidden as a unit (implantations, events and non-events together): STATISTICS.md, "Small cells".
    assert a == {
        "group": codec.encode(Centre.objects.get(code="CENTRE-A").pk),
        "implantations": None,
        "events": None,
        "rate": None,
        "ci": None,
        "suppressed": True,
    }
    assert (b["events"], b["suppressed"]) == (0, False)  # zero is not suppressed


def test_a_suppressed_cell_cannot_be_recovered_from_the_total(centre_a, centre_b, investigator):
    # Treated: 9 of 20 in A, 3 of 8 in B. B's 3 is small; the ungrouped query shows 12 of 28, so A goes too
    # (hidden whole, implantations included), or 28 - 20 and 12 - 9 give B back.
    for centre, count, treated in ((centre_a, 20, 9), (centre_b, 8, 3)):
        for index in range(count):
            implantation = factories.ImplantationFactory(patient__centre=centre)
            if index < treated:
                factories.TreatmentFactory(implantation=implantation)
    groups = client_for(investigator).get("/api/v1/stats/pump-use/", {"group_by": "centre"}).json()["groups"]
    assert [g["treated"] for g in groups] == [None, None]
    assert [g["implantations"] for g in groups] == [None, None]


def test_survival_is_suppressed_and_coarsened_for_investigators(centre_a, investigator):
    for died in (100, 200, 300, None, None, None):
        implantation = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
        factories.FollowUpFactory(
            implantation=implantation,
            contact_on=days_after(died or 400),
            vital_status="dead" if died else "alive",
            died_on=days_after(died) if died else None,
        )
    group = client_for(investigator).get("/api/v1/stats/survival/").json()["groups"][0]
    assert group["suppressed"] and group["events"] is None and group["table"] == []


@pytest.mark.parametrize(
    "path,params,field",
    [
        ("complications", {}, "type"),
        ("complications", {"type": "nonsense"}, "type"),
        ("pump-use", {"group_by": "planet"}, "group_by"),
        ("pump-use", {"group_by": "surgeon_volume", "surgeon_volume_bands": "9,3"}, "surgeon_volume_bands"),
        ("survival", {"endpoint": "eternal"}, "endpoint"),
        ("pump-use", {"implanted_after": "soon"}, "implanted_after"),
    ],
)
def test_bad_parameters_are_400_with_the_field(registry, coordinator, path, params, field):
    response = client_for(coordinator).get(f"/api/v1/stats/{path}/", params)
    assert response.status_code == 400 and field in response.json()["errors"]


def test_statistics_need_a_role(registry):
    client = client_for(factories.UserFactory())
    assert client.get("/api/v1/stats/pump-use/").status_code == 403
    assert APIClient().get("/api/v1/stats/pump-use/").status_code == 401


def test_statistics_follow_every_committed_change(registry, coordinator, django_capture_on_commit_callbacks):
    client = client_for(coordinator)
    before = client.get("/api/v1/stats/complications/", {"type": "any"}).json()["groups"][0]["events"]
    with django_capture_on_commit_callbacks(execute=True):
        factories.ComplicationFactory(implantation=registry["b"][0])
    after = client.get("/api/v1/stats/complications/", {"type": "any"}).json()["groups"][0]["events"]
    assert (before, after) == (2, 3)
    with django_capture_on_commit_callbacks(execute=True):
        registry["a"][0].complications.all().delete()
    assert client.get("/api/v1/stats/complications/", {"type": "any"}).json()["groups"][0]["events"] == 2


def test_cached_statistics_are_per_scope_and_role(registry, coordinator, data_manager_a, investigator):
    params = {"type": "biliary_sclerosis", "group_by": "centre"}
    everyone = client_for(coordinator).get("/api/v1/stats/complications/", params).json()["groups"]
    own = client_for(data_manager_a).get("/api/v1/stats/complications/", params).json()["groups"]
    suppressed = client_for(investigator).get("/api/v1/stats/complications/", params).json()["groups"]
    assert [g["group"] for g in everyone] == ["CENTRE-A", "CENTRE-B"] and everyone[0]["events"] == 2
    assert [g["group"] for g in own] == ["CENTRE-A"]
    centre_a = release_codec("centre").encode(Centre.objects.get(code="CENTRE-A").pk)
    assert {g["group"]: g for g in suppressed}[centre_a]["events"] is None
