"""The schema and its documentation page are for logged-in users only (issue 10, item 5)."""

import pytest

from sites.models import Role

from .factories import user_with_role


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/"])
def test_anonymous_visitors_get_no_schema(client, db, path):
    response = client.get(path)
    assert response.status_code in (401, 403)
    assert b"openapi" not in response.content.lower()


@pytest.mark.parametrize("path", ["/api/v1/schema/", "/api/v1/docs/"])
def test_logged_in_users_read_it(client, db, path):
    client.force_login(user_with_role(Role.INVESTIGATOR))
    response = client.get(path)
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/schema/?formt=json", "/api/v1/docs/?x=1"])
def test_they_take_no_unknown_parameter(client, db, path):
    client.force_login(user_with_role(Role.INVESTIGATOR))
    response = client.get(path)
    assert response.status_code == 400


def test_token_endpoints_take_no_unknown_parameter(client, db):
    response = client.post("/api/v1/auth/token/?usrname=x", {"username": "x", "password": "y"})
    assert response.status_code == 400
    assert "usrname" in response.json()["errors"]
