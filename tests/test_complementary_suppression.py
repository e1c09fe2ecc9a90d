"""No hidden count can be worked out from the others (reports.disclosure, complementary suppression).

The ungrouped statistic publishes the registry's margins, so a grouped answer with one small group hidden
would give it back by subtraction (margins − the shown groups). Whenever one group is hidden, another one is
too, for every statistic of the API and everyone but the coordinator.

Centres A, B and C (in that order): 20, 12 and 10 implantations, of which 9, 3 and 5 had the event (a
complication on day 20, a dose, a death on day 200). B's 3 is small: hidden; C, the next group after it, is its
complement.
"""

import copy

import pytest
from rest_framework.test import APIClient

from sites.models import Membership, Role

from . import factories
from .api_world import built_once
from .factories import days_after
from .release_codes import release_codec

CENTRES = {"CENTRE-A": (20, 9), "CENTRE-B": (12, 3), "CENTRE-C": (10, 5)}
STATISTICS = [
    ("complications", {"type": "any"}, "implantations", "events"),
    ("complications", {"type": "any", "within_days": "90"}, "implantations", "events"),
    ("cumulative-incidence", {"event": "any", "at_days": "90"}, "implantations", "events"),
    ("pump-use", {}, "implantations", "treated"),
    ("survival", {"endpoint": "overall"}, "n", "events"),
]
STATISTIC_IDS = ["complications", "complications-within-90-days", "cumulative-incidence", "pump-use", "survival"]
READERS = ["investigator", "data manager of the three centres"]


def build():
    centres = {}
    for code, (count, with_event) in CENTRES.items():
        centre = centres[code] = factories.CentreFactory(code=code)
        surgeon = factories.SurgeonFactory(centre=centre)
        for index in range(count):
            implantation = factories.ImplantationFactory(
                patient__centre=centre, surgeon=surgeon, implanted_on=days_after(0)
            )
            if index < with_event:
                factories.TreatmentFactory(implantation=implantation, given_on=days_after(10))
                factories.ComplicationFactory(implantation=implantation, onset_on=days_after(20))
                factories.FollowUpFactory(
                    implantation=implantation, contact_on=days_after(200), vital_status="dead", died_on=days_after(200)
                )
            else:
                factories.FollowUpFactory(implantation=implantation, contact_on=days_after(400))
    manager = factories.user_with_role(Role.DATA_MANAGER, centres["CENTRE-A"], username="dm-abc")
    for code in ("CENTRE-B", "CENTRE-C"):
        Membership.objects.create(user=manager, role=Role.DATA_MANAGER, centre=centres[code])
    return {
        "centres": centres,
        "investigator": factories.user_with_role(Role.INVESTIGATOR, username="investigator"),
        "data manager of the three centres": manager,
        "coordinator": factories.user_with_role(Role.COORDINATOR, username="coordinator"),
    }


registry_once = built_once(build)


@pytest.fixture
def registry(registry_once, db):
    return copy.deepcopy(registry_once)


def groups(user, path, params):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/stats/{path}/", params)
    assert response.status_code == 200, response.content
    return response.json()["groups"]


def label(registry, user, code):
    """The centre's group label as ``user`` reads it (investigators: their opaque code)."""
    centre = registry["centres"][code]
    return release_codec("centre").encode(centre.pk) if user.memberships.filter(role=Role.INVESTIGATOR) else code


@pytest.mark.parametrize("path,params,size,count", STATISTICS, ids=STATISTIC_IDS)
@pytest.mark.parametrize("reader", READERS)
def test_a_hidden_group_cannot_be_recovered_from_the_published_margins(registry, reader, path, params, size, count):
    user = registry[reader]
    [margins] = groups(user, path, params)
    assert margins["suppressed"] is False and (margins[size], margins[count]) == (42, 17)  # published

    by_centre = {g["group"]: g for g in groups(user, path, {**params, "group_by": "centre"})}
    hidden = {code for code in CENTRES if by_centre[label(registry, user, code)]["suppressed"]}
    # B is small; alone it would be 42 − 20 − 10 and 17 − 9 − 5. C, the next group, is hidden with it.
    assert hidden == {"CENTRE-B", "CENTRE-C"}
    for code in hidden:
        group = by_centre[label(registry, user, code)]
        assert group[size] is None and group[count] is None
    shown = by_centre[label(registry, user, "CENTRE-A")]
    assert (shown[size], shown[count]) == CENTRES["CENTRE-A"]


@pytest.mark.parametrize("path,params,size,count", STATISTICS, ids=STATISTIC_IDS)
def test_the_coordinator_sees_every_group(registry, path, params, size, count):
    by_centre = {g["group"]: g for g in groups(registry["coordinator"], path, {**params, "group_by": "centre"})}
    assert {code: (g[size], g[count]) for code, g in by_centre.items()} == CENTRES
