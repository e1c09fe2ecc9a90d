"""A person who is an investigator and also a centre's data manager gets de-identified data whenever they act as
investigator (``access.must_deidentify``): no id, pseudonym, calendar date or real code, only their opaque codes.

A token acts in the one role it was made for (api.tokens): their investigator token is an investigator's, their
data-manager token a data manager's. A browser session, which names no role, holds both, and the API then
de-identifies too: one rule, no mixed views (sites.access).
"""

import re

import pytest
from rest_framework.test import APIClient

from api.tokens import create_token
from registry.models import Implantation
from sites.models import Membership, Role

from . import factories
from .api_world import ENDPOINTS, world, world_once  # noqa: F401
from .release_codes import release_codec

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
OPAQUE = re.compile(r"^[A-Z]{1,2}-[A-Z2-7]{13}$")
RECORD_ENDPOINTS = [name for name, spec in ENDPOINTS.items() if spec.kind]


@pytest.fixture
def person(world):  # noqa: F811
    """An investigator who is also the data manager of the "own" centre."""
    user = factories.user_with_role(Role.INVESTIGATOR, username="inv-and-dm")
    Membership.objects.create(user=user, role=Role.DATA_MANAGER, centre=world["own"]["centre"])
    return user


def acting_as(user, role):
    """A client as the person uses it: a token for ``role``, or (None) a browser session naming no role."""
    client = APIClient()
    if role is None:
        client.force_login(user)
    else:
        _, token = create_token(user, role)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def rows(client, endpoint):
    response = client.get(f"/api/v1/{endpoint}/", {"page_size": 1000})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def assert_identifiers_hidden(world, listed):  # noqa: F811
    text = str(listed)
    for where in ("own", "other"):
        assert world[where]["patient"].pseudonym not in text and world[where]["surgeon"].code not in text
    assert not DATE.search(text)
    for row in listed:  # references are the person's opaque codes too, never the centre's real code
        for name in ("centre", "surgeon", "patient", "implantation"):
            assert name not in row or OPAQUE.match(row[name]), row


@pytest.mark.parametrize("endpoint", RECORD_ENDPOINTS)
@pytest.mark.parametrize("role", [Role.INVESTIGATOR, None], ids=["investigator token", "browser session"])
def test_acting_as_investigator_the_person_gets_de_identified_rows(world, person, role, endpoint):  # noqa: F811
    spec = ENDPOINTS[endpoint]
    listed = rows(acting_as(person, role), endpoint)
    # Every centre's rows (the investigator's reach), each known by the person's opaque code only.
    codec = release_codec(spec.kind)
    assert {row["code"] for row in listed} == {codec.encode(r.pk) for r in type(world["own"][spec.key]).objects.all()}
    assert all("id" not in row and "pseudonym" not in row for row in listed)
    assert_identifiers_hidden(world, listed)


@pytest.mark.parametrize("role", [Role.INVESTIGATOR, None], ids=["investigator token", "browser session"])
def test_acting_as_investigator_the_person_cannot_write(world, person, role):  # noqa: F811
    implantation = world["own"]["implantation"]  # of the centre the person is also the data manager of
    client = acting_as(person, role)
    code = release_codec("implantation").encode(implantation.pk)
    response = client.patch(f"/api/v1/implantations/{code}/", {"approach": "robotic"}, format="json")
    assert response.status_code == 403
    assert Implantation.objects.get(pk=implantation.pk).approach == implantation.approach


@pytest.mark.parametrize("role", [Role.INVESTIGATOR, None], ids=["investigator token", "browser session"])
def test_acting_as_investigator_the_person_gets_statistics_by_opaque_centre(world, person, role):  # noqa: F811
    response = acting_as(person, role).get("/api/v1/stats/pump-use/", {"group_by": "centre"})
    assert response.status_code == 200
    codec = release_codec("centre")
    assert {g["group"] for g in response.json()["groups"]} == {
        codec.encode(world[where]["centre"].pk) for where in ("own", "other")
    }


def test_acting_as_data_manager_the_same_person_gets_their_centres_identifiable_rows(world, person):  # noqa: F811
    listed = rows(acting_as(person, Role.DATA_MANAGER), "patients")
    own = world["own"]
    assert {row["id"] for row in listed} == {own["patient"].pk, own["bare-patient"].pk}
    assert {row["pseudonym"] for row in listed} == {own["patient"].pseudonym, own["bare-patient"].pseudonym}
