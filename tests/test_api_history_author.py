"""Writes through the API are in the audit trail with their author: after a POST, PATCH or DELETE the record's
history row carries ``history_user`` = the requesting user and ``history_user_name`` = their username.

Made with a real API token, as clients do (the author comes from the token's user, not from a browser session).
"""

import pytest
from rest_framework.test import APIClient

from api.tokens import create_token
from sites.models import Role

from . import factories
from .api_world import CENTRE_ENDPOINTS, ENDPOINTS, world, world_once, write  # noqa: F401


def token_client(user, role):
    _, token = create_token(user, role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def authored(model, pk, history_type):
    rows = model.history.filter(id=pk, history_type=history_type)
    return [(row.history_user_id, row.history_user_name) for row in rows]


@pytest.mark.parametrize("endpoint", CENTRE_ENDPOINTS)
def test_api_create_change_and_delete_are_in_the_history_with_their_author(world, endpoint):  # noqa: F811
    # Centres are the coordinator's; everything else a data manager of the centre enters.
    role = Role.COORDINATOR if endpoint == "centres" else Role.DATA_MANAGER
    user = factories.user_with_role(role, world["own"]["centre"], username=f"author-{role}")
    client = token_client(user, role)
    spec = ENDPOINTS[endpoint]
    model = type(world["own"][spec.key])
    author = [(user.pk, user.username)]

    response = write(client, "post", f"/api/v1/{endpoint}/", spec.create(world["own"]))
    assert response.status_code == 201, response.content
    identifier = response.json()["code" if spec.lookup == "code" else "id"]
    pk = model.objects.get(**{spec.lookup: identifier}).pk
    assert authored(model, pk, "+") == author

    url = f"/api/v1/{endpoint}/{identifier}/"
    assert write(client, "patch", url, spec.patch).status_code == 200
    assert authored(model, pk, "~") == author

    response = write(client, "delete", url)
    assert response.status_code == 204, response.content
    assert not model.objects.filter(pk=pk).exists()
    assert authored(model, pk, "-") == author
