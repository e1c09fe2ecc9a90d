"""The statistics cache never answers one user with another's figures (api.stats, ``StatsView.cache_key``).

The key carries the user's scope (which centres' rows) and role (suppressed or not, opaque codes or not):
whoever asks first, a user with a narrower view never gets the broader figures from the cache, and a user
with a broader view never gets the narrower ones. The cache is the one tests/settings.py configures.
"""

import copy

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api import stats
from sites.models import Membership, Role

from . import factories
from .api_world import built_once
from .factories import days_after

QUERIES = [
    ("complications", {"type": "any"}),
    ("complications", {"type": "any", "group_by": "centre"}),
    ("pump-use", {"group_by": "centre"}),
]
# (broader, narrower) views of the same registry
PAIRS = [
    ("coordinator", "data manager of A"),  # every centre unsuppressed / one centre, small cells suppressed
    ("coordinator", "investigator"),  # every centre with real codes / every centre de-identified, suppressed
    ("data manager of A and B", "data manager of A"),  # same role, two centres / one of them
    ("data manager of A and B", "centre lead of B"),
    ("centre lead of B", "data manager of A"),  # same size, other centre
]


def build_registry():
    """Centre A: 10 implantations, 5 with a complication, 6 treated; centre B: 12, 6 and 7; centre C: 3, 1, 1."""
    centres = {}
    for code, count, complicated, treated in (("CENTRE-A", 10, 5, 6), ("CENTRE-B", 12, 6, 7), ("CENTRE-C", 3, 1, 1)):
        centre = centres[code] = factories.CentreFactory(code=code)
        surgeon = factories.SurgeonFactory(centre=centre)
        for index in range(count):
            implantation = factories.ImplantationFactory(
                patient__centre=centre, surgeon=surgeon, implanted_on=days_after(index)
            )
            if index < complicated:
                factories.ComplicationFactory(implantation=implantation)
            if index < treated:
                factories.TreatmentFactory(implantation=implantation)
    both = factories.user_with_role(Role.DATA_MANAGER, centres["CENTRE-A"], username="dm-a-b")
    Membership.objects.create(user=both, role=Role.DATA_MANAGER, centre=centres["CENTRE-B"])
    return {
        "coordinator": factories.user_with_role(Role.COORDINATOR, username="coordinator"),
        "investigator": factories.user_with_role(Role.INVESTIGATOR, username="investigator"),
        "another investigator": factories.user_with_role(Role.INVESTIGATOR, username="investigator-2"),
        "data manager of A and B": both,
        "data manager of A": factories.user_with_role(Role.DATA_MANAGER, centres["CENTRE-A"], username="dm-a"),
        "centre lead of B": factories.user_with_role(Role.CENTRE_LEAD, centres["CENTRE-B"], username="lead-b"),
    }


registry_once = built_once(build_registry)


@pytest.fixture
def users(registry_once, db):
    return copy.deepcopy(registry_once)


def ask(user, path, params):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/stats/{path}/", params)
    assert response.status_code == 200, response.content
    return response.json()


def alone(user, path, params):
    """What ``user`` is told with nothing cached."""
    cache.clear()
    answer = ask(user, path, params)
    cache.clear()
    return answer


@pytest.fixture
def computations(monkeypatch):
    """How many times a statistic was computed rather than read from the cache."""
    counted = []
    for view in (stats.ComplicationStatsView, stats.PumpUseStatsView):
        real = view.compute

        def compute(self, request, real=real):
            counted.append(request.user.pk)
            return real(self, request)

        monkeypatch.setattr(view, "compute", compute)
    return counted


@pytest.mark.parametrize("path,params", QUERIES, ids=lambda q: q if isinstance(q, str) else ",".join(q.values()))
@pytest.mark.parametrize("broader,narrower", PAIRS)
@pytest.mark.parametrize("first", ["broader first", "narrower first"])
def test_a_cached_statistic_is_never_served_to_a_user_of_another_scope_or_role(
    users, computations, broader, narrower, first, path, params
):
    order = [broader, narrower] if first == "broader first" else [narrower, broader]
    own_answers = {name: alone(users[name], path, params) for name in order}
    assert own_answers[broader] != own_answers[narrower]  # the two really see different figures

    computations.clear()
    for name in order:
        assert ask(users[name], path, params) == own_answers[name], f"{name} got another user's cached figures"
    # Each asked once and computed once: nothing shared between them.
    assert computations == [users[name].pk for name in order]


def test_the_same_user_asking_again_is_answered_from_the_cache(users, computations):
    """The test above is about a cache that is really used: a repeated question is not computed again."""
    user = users["data manager of A"]
    first = ask(user, "complications", {"type": "any"})
    assert ask(user, "complications", {"type": "any"}) == first
    assert computations == [user.pk]


def test_investigators_of_one_release_share_its_codes_and_the_cached_answer(users, computations):
    """Codes are drawn per release, not per investigator (issue 15): the answer is cached per release."""
    from reports import releases

    params = {"type": "any", "group_by": "centre"}
    first = ask(users["investigator"], "complications", params)
    assert ask(users["another investigator"], "complications", params) == first
    assert computations == [users["investigator"].pk]
    other = releases.freeze_release("another")
    answer = ask(users["another investigator"], "complications", {**params, "release": other.name})
    assert {g["group"] for g in answer["groups"]}.isdisjoint(g["group"] for g in first["groups"])
    assert computations == [users["investigator"].pk, users["another investigator"].pk]
