"""``?expand=patient`` on implantations (issue 15, item 4): rows that read on their own.

Each row's patient becomes the object GET /api/v1/patients/<id>/ gives the same role: the pseudonym for the
coordinator and the centres' own users, the opaque code (never the pseudonym) for investigators. The rows
are the role's rows as without ``expand``, and expanding costs no query.
"""

import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from . import factories
from .clients import client_for
from .release_codes import release_codec

OPAQUE_PATIENT = re.compile(r"^P-[A-Z2-7]{13}$")
URL = "/api/v1/implantations/"


class Role:
    def __init__(self, fixture, centres, pseudonymised):
        self.fixture = fixture
        self.centres = centres  # the centres whose implantations the role lists
        self.pseudonymised = pseudonymised  # sees the pseudonym (else: the investigator's opaque code)

    def __repr__(self):
        return self.fixture


ROLES = [
    Role("coordinator", {"A", "B"}, pseudonymised=True),
    Role("data_manager_a", {"A"}, pseudonymised=True),
    Role("centre_lead_a", {"A"}, pseudonymised=True),
    Role("investigator", {"A", "B"}, pseudonymised=False),
]


@pytest.fixture
def registry(centre_a, centre_b):
    """Per centre, one implantation of a patient with a consent date (kept from investigators)."""
    return {
        name: factories.ImplantationFactory(
            patient__centre=centre,
            patient__consent_on=factories.days_after(-5),
            patient__ecog=1,
            patient__cea_ng_per_ml="12.5",
        )
        for name, centre in (("A", centre_a), ("B", centre_b))
    }


@pytest.fixture(params=ROLES, ids=repr)
def role(request):
    role = request.param
    return role, request.getfixturevalue(role.fixture)


def patient_key(role, user):
    """How the role names a patient: the id, or the investigator's own opaque code."""
    if role.pseudonymised:
        return lambda patient: patient.pk
    codec = release_codec("patient")
    return lambda patient: codec.encode(patient.pk)


def test_the_expanded_patient_is_what_the_patient_endpoint_gives_the_role(registry, role):
    role, user = role
    client = client_for(user)
    rows = client.get(URL, {"expand": "patient"}).json()["results"]
    assert len(rows) == len(role.centres)
    key = patient_key(role, user)
    by_key = {key(implantation.patient): implantation.patient for implantation in registry.values()}
    for row in rows:
        patient = row["patient"]
        name = patient["id"] if role.pseudonymised else patient["code"]
        assert patient == client.get(f"/api/v1/patients/{name}/").json()
        assert name in by_key
        assert patient["ecog"] == 1 and patient["cea_ng_per_ml"] == "12.5"


def test_the_pseudonym_for_the_roles_that_read_it_an_opaque_code_for_investigators(registry, role):
    role, user = role
    response = client_for(user).get(URL, {"expand": "patient"})
    expected = {registry[centre].patient for centre in role.centres}
    patients = [row["patient"] for row in response.json()["results"]]
    if role.pseudonymised:
        assert {patient["pseudonym"] for patient in patients} == {patient.pseudonym for patient in expected}
        assert {patient["id"] for patient in patients} == {patient.pk for patient in expected}
        assert all("consent_on" in patient for patient in patients)
    else:
        key = patient_key(role, user)
        assert {patient["code"] for patient in patients} == {key(patient) for patient in expected}
        assert all(OPAQUE_PATIENT.match(patient["code"]) for patient in patients)
        for patient in patients:
            assert not {"id", "pseudonym", "consent_on"} & set(patient)
            assert re.match(r"^C-[A-Z2-7]{13}$", patient["centre"])
        body = response.content.decode()
        for implantation in registry.values():
            assert implantation.patient.pseudonym not in body
            assert implantation.patient.centre.code not in body


def test_the_rows_are_the_roles_centres_only(registry, role):
    role, user = role
    rows = client_for(user).get(URL, {"expand": "patient"}).json()["results"]
    key = patient_key(role, user)
    expected = {key(registry[centre].patient) for centre in role.centres}
    field = "id" if role.pseudonymised else "code"
    assert {row["patient"][field] for row in rows} == expected
    if role.pseudonymised:
        assert {row["patient"]["centre"] for row in rows} == {f"CENTRE-{centre}" for centre in role.centres}


def test_without_expand_the_rows_are_as_before_with_the_patient_named(registry, role):
    role, user = role
    client = client_for(user)
    plain = client.get(URL).json()["results"]
    expanded = client.get(URL, {"expand": "patient"}).json()["results"]
    field = "id" if role.pseudonymised else "code"
    assert [{**row, "patient": row["patient"][field]} for row in expanded] == plain
    assert all(isinstance(row["patient"], int if role.pseudonymised else str) for row in plain)


def test_one_implantation_expanded(registry, role):
    role, user = role
    client = client_for(user)
    [listed] = client.get(URL, {"expand": "patient"}).json()["results"][:1]
    name = listed["id"] if role.pseudonymised else listed["code"]
    response = client.get(f"{URL}{name}/", {"expand": "patient"})
    assert response.status_code == 200
    assert response.json() == listed
    # The version a write names is the record's, however it was read.
    assert response.headers.get("ETag") == client.get(f"{URL}{name}/").headers.get("ETag")


def test_another_centres_implantation_is_not_found_expanded(registry, data_manager_a):
    response = client_for(data_manager_a).get(f"{URL}{registry['B'].pk}/", {"expand": "patient"})
    assert response.status_code == 404
    assert registry["B"].patient.pseudonym not in response.content.decode()


def test_queries_do_not_grow_with_the_rows_expanded(centre_a, role):
    role, user = role
    for _ in range(12):
        factories.ImplantationFactory(patient__centre=centre_a, surgeon=factories.SurgeonFactory(centre=centre_a))
    client = client_for(user)

    def count(page_size, **expand):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(URL, {"page_size": page_size, **expand})
            assert response.status_code == 200
            assert len(response.json()["results"]) == page_size
        return len(queries)

    count(1)  # the user's roles are read once and cached on the (reused) user object
    assert count(1, expand="patient") == count(12, expand="patient") == count(12)


@pytest.mark.parametrize("expand", ["surgeon", "patient,surgeon", "patients", ""])
def test_an_unknown_expansion_is_a_400_in_the_error_shape(registry, data_manager_a, expand):
    client = client_for(data_manager_a)
    for url in (URL, f"{URL}{registry['A'].pk}/"):
        response = client.get(url, {"expand": expand})
        assert response.status_code == 400
        body = response.json()
        assert set(body) == {"detail", "errors"} and body["detail"] == "Invalid input."
        [message] = body["errors"]["expand"]
        assert "This endpoint expands: patient." in message


def test_expand_is_for_reads_of_implantations_only(registry, data_manager_a):
    client = client_for(data_manager_a)
    response = client.get("/api/v1/patients/", {"expand": "patient"})
    assert response.status_code == 400 and "expand" in response.json()["errors"]
    payload = {"approach": "laparoscopic"}
    url = f"{URL}{registry['A'].pk}/?expand=patient"
    response = client.patch(url, payload, format="json", HTTP_IF_MATCH=client.get(url).headers["ETag"])
    assert response.status_code == 400 and "expand" in response.json()["errors"]


def test_the_csv_export_gives_the_patient_fields_as_columns(registry, role):
    role, user = role
    response = client_for(user).get(URL, {"expand": "patient", "format": "csv"})
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(role.centres)
    assert "patient" not in rows[0] and "patient.birth_year" in rows[0]
    assert "patient.confirmed_warnings" not in rows[0]
    if role.pseudonymised:
        expected = {registry[centre].patient.pseudonym for centre in role.centres}
        assert {row["patient.pseudonym"] for row in rows} == expected
    else:
        assert "patient.pseudonym" not in rows[0] and "patient.consent_on" not in rows[0]
        assert all(OPAQUE_PATIENT.match(row["patient.code"]) for row in rows)
        for implantation in registry.values():
            assert implantation.patient.pseudonym not in text
