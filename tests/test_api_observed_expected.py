"""/api/v1/stats/observed-expected/: the case-mix adjusted comparison, with the usual suppression."""

import pytest

from registry.models import ComplicationType
from reports import comparisons
from sites.models import Centre

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import release_codec

URL = "/api/v1/stats/observed-expected/"


@pytest.fixture
def registry(centre_a, centre_b):
    """Two centres of 20 adjuvant implantations, a year before today, followed a year: A has 8 technical
    complications within 90 days, B 2."""
    import datetime

    from registry.rules import today

    start = today() - datetime.timedelta(days=500)
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    for centre, events in ((centre_a, 8), (centre_b, 2)):
        surgeon = factories.SurgeonFactory(centre=centre)
        for i in range(20):
            implanted = factories.ImplantationFactory(
                patient__centre=centre, surgeon=surgeon, implanted_on=days_after(i, start), indication="adjuvant"
            )
            factories.FollowUpFactory(implantation=implanted, contact_on=days_after(400, implanted.implanted_on))
            if i < events:
                factories.ComplicationFactory(
                    implantation=implanted, type=occlusion, onset_on=days_after(30, implanted.implanted_on)
                )
    comparisons._live["version"] = None


def test_observed_against_expected_per_centre(registry, coordinator):
    body = client_for(coordinator).get(URL, {"outcome": "technical_90d"}).json()
    groups = {g["group"]: g for g in body["groups"]}
    a, b = groups["CENTRE-A"], groups["CENTRE-B"]
    assert (a["n"], a["observed"], b["observed"]) == (20, 8, 2)
    # Identical case mix: each centre expects half of the 10 events (the logistic model's intercept).
    assert a["expected"] == pytest.approx(5.0, abs=1e-6) and b["expected"] == pytest.approx(5.0, abs=1e-6)
    assert a["ratio"] == pytest.approx(1.6, abs=1e-6)
    low, high = a["ci"]
    assert low < 1.6 < high
    assert a["flag"] is None and b["flag"] is None  # 8 against 5 is not beyond the 95% limit


def test_surgeon_level_is_for_the_coordinator_and_the_surgeons_own_centre(
    registry, coordinator, data_manager_a, investigator
):
    def surgeons(user):
        response = client_for(user).get(URL, {"outcome": "technical_90d", "group_by": "surgeon"})
        assert response.status_code == 200
        return [g["group"] for g in response.json()["groups"]]

    assert len(surgeons(coordinator)) == 2
    assert len(surgeons(data_manager_a)) == 1  # their own centre's surgeon only (and only their rows)
    assert surgeons(investigator) == []


def test_small_observed_counts_are_suppressed_with_their_derived_figures(registry, investigator):
    groups = {g["group"]: g for g in client_for(investigator).get(URL, {"outcome": "technical_90d"}).json()["groups"]}
    b = groups[release_codec("centre").encode(Centre.objects.get(code="CENTRE-B").pk)]
    assert b["suppressed"] and b["observed"] is None and b["expected"] is None and b["ratio"] is None
    assert b["ci"] is None and b["flag"] is None


def test_unknown_outcome_is_a_400(registry, coordinator):
    response = client_for(coordinator).get(URL, {"outcome": "nonsense"})
    assert response.status_code == 400 and "outcome" in response.json()["errors"]
