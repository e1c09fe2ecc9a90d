"""Who may do what through the API: role × own/other centre × every endpoint × list/retrieve/create/update/delete.

Each cell is judged by its effect (the row is listed, shown, created, changed or deleted in the database), not
by a status code alone. Every write goes through ``api_world.write`` (``If-Match`` and the deletion reason).
A patient who has clinical records (implantations, systemic therapy lines) is deleted by the coordinator only;
a data manager may delete their own centre's patient who has none ("bare-patient").
"""

import pytest
from rest_framework.test import APIClient

from registry.models import Patient
from sites import access
from sites.models import Role, Surgeon

from . import factories
from .api_world import CENTRE_ENDPOINTS, ENDPOINTS, world, world_once, write  # noqa: F401
from .release_codes import release_codec

ROLES = [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR]
ACTIONS = ["list", "retrieve", "create", "update", "delete"]
READ = {"list", "retrieve"}
VOCABULARY = "vocabularies/complication-types"

# Refusals (a list leaves the row out): anything but a precondition failure (412/428 would mean the write never reached the permission check).
REFUSED = {"list": (200, 403), "retrieve": (403, 404), "create": (400, 403, 405), "update": (400, 403, 404, 405)}
REFUSED["delete"] = (400, 403, 404, 405, 409)
SUCCESS = {"list": 200, "retrieve": 200, "create": 201, "update": 200, "delete": 204}


def expected(role, where, endpoint, action, record_key):
    if endpoint == VOCABULARY:
        # Everyone with a role reads the vocabulary; the coordinator extends it; nobody deletes a type.
        return action in READ or (role == Role.COORDINATOR and action in {"create", "update"})
    if role == Role.COORDINATOR:
        return True
    if role == Role.INVESTIGATOR:
        return action in READ
    if where == "other":
        return False
    if role == Role.CENTRE_LEAD:
        return action in READ
    # Data manager, own centre: clinical records and the centre's surgeons; centres are read-only.
    if endpoint == "centres":
        return action in READ
    if record_key == "patient" and action == "delete":
        return False  # the patient has clinical records: the coordinator's decision
    return True


MATRIX = [
    (role, where, endpoint, action, ENDPOINTS[endpoint].key)
    for role in ROLES
    for where in ("own", "other")
    for endpoint in CENTRE_ENDPOINTS
    for action in ACTIONS
]
MATRIX += [(role, where, "patients", "delete", "bare-patient") for role in ROLES for where in ("own", "other")]
MATRIX += [(role, "registry-wide", VOCABULARY, action, "complication-type") for role in ROLES for action in ACTIONS]


def _cell_id(cell):
    role, where, endpoint, action, key = cell
    return f"{role}-{where}-{endpoint.split('/')[-1]}-{action}" + ("-without-records" if key == "bare-patient" else "")


def attempt(client, endpoint, action, target, user, record_key=None):
    """Try ``action`` on ``target``'s record of ``endpoint``; return whether it took effect."""
    spec = ENDPOINTS[endpoint]
    record = target[record_key or spec.key]
    identifier, lookup_key = getattr(record, spec.lookup), ("code" if spec.lookup == "code" else "id")
    if spec.kind and access.must_deidentify(user):
        # Investigators know every row by its opaque code only (tests/test_api_deidentification.py).
        identifier, lookup_key = release_codec(spec.kind).encode(record.pk), "code"
    base, model = f"/api/v1/{endpoint}/", type(record)
    url = f"{base}{identifier}/"
    if action == "list":
        response = client.get(base, {"page_size": 1000})
        took = response.status_code == 200 and any(row[lookup_key] == identifier for row in response.json()["results"])
    elif action == "retrieve":
        response = client.get(url)
        took = response.status_code == 200 and response.json()[lookup_key] == identifier
    elif action == "create":
        before = model.objects.count()
        response = write(client, "post", base, spec.create(target))
        took = model.objects.count() == before + 1
        assert took is (response.status_code == 201), response.content
    elif action == "update":
        response = write(client, "patch", url, spec.patch)
        record.refresh_from_db()
        field, value = spec.check
        took = str(getattr(record, field)) == str(value)
    elif action == "delete":
        if endpoint == "surgeons":
            target["implantation"].delete()  # a surgeon with implantations is protected
        if endpoint == "centres":
            Patient.objects.filter(centre=record).delete()
            Surgeon.objects.filter(centre=record).delete()
        response = write(client, "delete", url)
        took = not model.objects.filter(pk=record.pk).exists()
    else:
        raise AssertionError(action)
    allowed_codes = (SUCCESS[action],) if took else REFUSED[action]
    assert response.status_code in allowed_codes, (response.status_code, response.content)
    return took


@pytest.mark.parametrize("role,where,endpoint,action,record_key", MATRIX, ids=map(_cell_id, MATRIX))
def test_api_permission_matrix(world, role, where, endpoint, action, record_key):  # noqa: F811
    client = APIClient()
    user = factories.user_with_role(role, world["own"]["centre"])
    client.force_authenticate(user)
    took = attempt(client, endpoint, action, world[where], user, record_key)
    assert took is expected(role, where, endpoint, action, record_key)


CLINICAL = [
    "patients",
    "implantations",
    "treatments",
    "complications",
    "follow-ups",
    "liver-tests",
    "perfusion-checks",
    "systemic-therapy-lines",
    "systemic-toxicities",
    "readmissions",
]


@pytest.mark.parametrize("endpoint", CLINICAL)
def test_data_manager_cannot_point_a_record_at_another_centre(world, endpoint):  # noqa: F811
    """Create in one's own centre but reference the other centre's patient/implantation: 400, nothing saved."""
    if endpoint == "patients":
        payload = ENDPOINTS[endpoint].create(world["other"])
    else:
        payload = ENDPOINTS[endpoint].create(world["own"])
        for key in ("patient", "implantation"):
            if key in payload:
                payload[key] = world["other"][key].pk
        if "surgeon" in payload:
            payload["surgeon"] = world["other"]["surgeon"].code
    client = APIClient()
    client.force_authenticate(factories.user_with_role(Role.DATA_MANAGER, world["own"]["centre"]))
    model = type(world["own"][ENDPOINTS[endpoint].key])
    before = model.objects.count()
    response = write(client, "post", f"/api/v1/{endpoint}/", payload)
    assert response.status_code == 400 and model.objects.count() == before
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


# --- Data queries (issue 12): read-only, the centre's users and the coordinator; investigators 403 ----------

DATA_QUERY_CELLS = [(role, where, action) for role in ROLES for where in ("own", "other") for action in ACTIONS]


def data_query_expected(role, where, action):
    if action not in READ or role == Role.INVESTIGATOR:
        return False
    return role == Role.COORDINATOR or where == "own"


@pytest.mark.parametrize("role,where,action", DATA_QUERY_CELLS, ids=lambda v: str(v))
def test_data_query_permission_matrix(world, role, where, action):  # noqa: F811
    queries = {
        name: factories.DataQueryFactory(implantation=world[name]["implantation"], rule="follow_up_overdue")
        for name in ("own", "other")
    }
    query = queries[where]
    client = APIClient()
    client.force_authenticate(factories.user_with_role(role, world["own"]["centre"]))
    url = f"/api/v1/data-queries/{query.pk}/"
    if action == "list":
        response = client.get("/api/v1/data-queries/", {"page_size": 1000})
        took = response.status_code == 200 and query.pk in {row["id"] for row in response.json()["results"]}
    elif action == "retrieve":
        response = client.get(url)
        took = response.status_code == 200 and response.json()["id"] == query.pk
    elif action == "create":
        before = type(query).objects.count()
        response = write(client, "post", "/api/v1/data-queries/", {"message": "x", "rule": "manual"})
        took = type(query).objects.count() == before + 1
    elif action == "update":
        response = write(client, "patch", url, {"status": "closed"})
        query.refresh_from_db()
        took = query.status == "closed"
    else:
        response = write(client, "delete", url)
        took = not type(query).objects.filter(pk=query.pk).exists()
    assert response.status_code in ((SUCCESS[action],) if took else REFUSED[action]), response.content
    assert took is data_query_expected(role, where, action)
    if role == Role.INVESTIGATOR:
        assert response.status_code == 403
    assert APIClient().get("/api/v1/data-queries/").status_code == 401
