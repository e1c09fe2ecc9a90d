"""Who may do what through the API: role × own/other centre × endpoint × method, judged by effect."""

import pytest
from rest_framework.test import APIClient

from api.deidentify import Codec
from sites import access
from sites.models import Role

from . import factories
from .api_world import ENDPOINTS, world  # noqa: F401

ACTIONS = ["list", "retrieve", "create", "update", "delete"]
READ = {"list", "retrieve"}
ALL = set(ACTIONS)

CLINICAL = {"patients", "implantations", "treatments", "complications", "follow-ups"}


def expected(role, where, endpoint):
    if role == Role.COORDINATOR:
        return ALL
    if role == Role.INVESTIGATOR:
        return READ
    if where == "other":
        return set()
    if role == Role.CENTRE_LEAD:
        return READ
    # Data manager, own centre: clinical records and the centre's surgeons; centres are read-only.
    if endpoint == "centres":
        return READ
    return ALL


MATRIX = [
    (role, where, endpoint, action)
    for role in (Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR)
    for where in ("own", "other")
    for endpoint in ENDPOINTS
    for action in ACTIONS
]


def attempt(client, endpoint, action, target, user=None):
    key, lookup, create_payload, patch_payload, (field, value) = ENDPOINTS[endpoint]
    record = target[key]
    identifier = getattr(record, lookup)
    lookup_key = "code" if lookup == "code" else "id"
    if user is not None and access.must_deidentify(user):
        # Investigators know every row by its opaque code only (tests/test_api_deidentification.py).
        identifier, lookup_key = Codec(user.pk, key).encode(record.pk), "code"
    base = f"/api/v1/{endpoint}/"
    model = type(record)
    if action == "list":
        response = client.get(base, {"page_size": 1000})
        assert response.status_code in (200, 403), response.content
        results = response.json()["results"] if response.status_code == 200 else []
        return any(row[lookup_key] == identifier for row in results)
    if action == "retrieve":
        response = client.get(f"{base}{identifier}/")
        assert response.status_code in (200, 403, 404), response.content
        return response.status_code == 200
    if action == "create":
        before = model.objects.count()
        response = client.post(base, create_payload(target), format="json")
        assert response.status_code in (201, 400, 403), response.content
        created = model.objects.count() == before + 1
        assert created is (response.status_code == 201), response.content
        return created
    if action == "update":
        response = client.patch(f"{base}{identifier}/", patch_payload, format="json")
        assert response.status_code in (200, 400, 403, 404), response.content
        record.refresh_from_db()
        current = getattr(record, field)
        return str(current) == str(value)
    if action == "delete":
        if endpoint == "surgeons":
            target["implantation"].delete()  # a surgeon with implantations is protected
        if endpoint == "centres":
            target["patient"].delete()
            target["surgeon"].delete()
        response = client.delete(f"{base}{identifier}/")
        assert response.status_code in (204, 403, 404), response.content
        return not model.objects.filter(pk=record.pk).exists()
    raise AssertionError(action)


@pytest.mark.parametrize("role,where,endpoint,action", MATRIX)
def test_api_permission_matrix(world, role, where, endpoint, action):  # noqa: F811
    client = APIClient()
    user = factories.user_with_role(role, world["own"]["centre"])
    client.force_authenticate(user)
    assert attempt(client, endpoint, action, world[where], user) is (action in expected(role, where, endpoint))


@pytest.mark.parametrize("endpoint", sorted(CLINICAL))
def test_data_manager_cannot_point_a_record_at_another_centre(world, endpoint):  # noqa: F811
    """Create in one's own centre but reference the other centre's patient/implantation: 400, nothing saved."""
    if endpoint == "patients":
        payload = ENDPOINTS[endpoint][2](world["other"])
    else:
        payload = ENDPOINTS[endpoint][2](world["own"])
        for key in ("patient", "implantation"):
            if key in payload:
                payload[key] = world["other"][key].pk
        if "surgeon" in payload:
            payload["surgeon"] = world["other"]["surgeon"].code
    client = APIClient()
    client.force_authenticate(factories.user_with_role(Role.DATA_MANAGER, world["own"]["centre"]))
    response = client.post(f"/api/v1/{endpoint}/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Invalid input."
    assert set(body["errors"]) & {"patient", "implantation", "centre", "surgeon"}
    # The message must not tell whether the other centre's record exists.
    assert all("exist" in m or "Invalid" in m for field in body["errors"].values() for m in field)


def test_anonymous_requests_are_refused(world):  # noqa: F811
    for endpoint in ENDPOINTS:
        response = APIClient().get(f"/api/v1/{endpoint}/")
        assert response.status_code == 401 and response.json() == {
            "detail": "Authentication credentials were not provided."
        }


def test_a_user_without_a_role_sees_nothing(world):  # noqa: F811
    client = APIClient()
    client.force_authenticate(factories.UserFactory())
    assert client.get("/api/v1/patients/").status_code == 403
    assert client.get("/api/v1/stats/complications/", {"type": "biliary_sclerosis"}).status_code in (403, 404)
