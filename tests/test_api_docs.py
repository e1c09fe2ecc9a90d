"""The schema and its documentation page are for logged-in users only (issue 10, item 5); every operation has a
summary and no description carries developer notes (issue 15, item 5)."""

import json
import re

import pytest
from django.db import transaction
from django.test import Client

from api.schema import without_internal_notes
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


# --- What the docs say (issue 15, item 5): a summary per operation, no developer notes ------------------

# Where the code lives, which issue brought it, notes to self: nothing an API user can act on.
INTERNAL_NOTE = re.compile(r"\b(registry|reports|api|sites)\.[a-z_]+|\bissue \d+|\bTODO\b|\bFIXME\b|\bXXX\b", re.I)


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    """The schema as a logged-in user downloads it, generated once (it costs seconds); the user is rolled back."""
    with django_db_blocker.unblock(), transaction.atomic():
        client = Client()
        client.force_login(user_with_role(Role.INVESTIGATOR, username="schema-reader"))
        response = client.get("/api/v1/schema/", {"format": "json"})
        transaction.set_rollback(True)
    assert response.status_code == 200
    return json.loads(response.content)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def descriptions(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                yield where, value
            else:
                yield from descriptions(value, f"{where}/{key}")
    elif isinstance(node, list):
        for number, item in enumerate(node):
            yield from descriptions(item, f"{where}[{number}]")


def test_every_operation_has_a_summary_of_its_own(schema):
    summaries = {name: operation.get("summary", "").strip() for name, operation in operations(schema)}
    assert len(summaries) > 90
    assert [name for name, summary in summaries.items() if not summary] == []
    assert len(set(summaries.values())) == len(summaries), "two operations with the same summary"
    assert summaries["GET /api/v1/implantations/"] == "List implantations"
    assert summaries["PATCH /api/v1/treatments/{id}/"] == "Change fields of an HAI dose"
    assert summaries["GET /api/v1/stats/survival/"] == "Survival and freedom from pump failure"


def test_no_description_carries_developer_notes(schema):
    found = [
        (where, INTERNAL_NOTE.search(text)[0]) for where, text in descriptions(schema) if INTERNAL_NOTE.search(text)
    ]
    assert found == []


def test_the_statistics_keep_their_descriptions_without_the_notes(schema):
    operation = schema["paths"]["/api/v1/stats/cumulative-incidence/"]["get"]
    assert operation["description"] == (
        "Aalen-Johansen cumulative incidence by `at_days`, with competing events and delayed entry."
    )


@pytest.mark.parametrize(
    "written,shown",
    [
        ("Rates per group (registry.selectors.readmission_rates): among", "Rates per group: among"),
        (
            "by that day (the denominator, origin and competing events, reports.outcomes).",
            "by that day (the denominator, origin and competing events).",
        ),
        ("The dictionary (``registry.data_dictionary``).", "The dictionary."),
        ("Data queries (issue 12): raised", "Data queries: raised"),
        ("Late entries (issue 13, reports.late_entries) are flagged", "Late entries are flagged"),
        # Text for users stays as it is.
        (
            "GET /api/v1/patients/{id}/ (day 0, e.g. 2024-03-01; 95% Wilson CI)",
            "GET /api/v1/patients/{id}/ (day 0, e.g. 2024-03-01; 95% Wilson CI)",
        ),
    ],
)
def test_notes_are_taken_out_not_the_sentence_around_them(written, shown):
    assert without_internal_notes(written) == shown


def test_expand_is_documented_on_the_implantations_reads_only(schema):
    def expand(path, method):
        parameters = schema["paths"][path][method].get("parameters", [])
        return [parameter for parameter in parameters if parameter["name"] == "expand"]

    for path in ("/api/v1/implantations/", "/api/v1/implantations/{id}/"):
        [parameter] = expand(path, "get")
        assert parameter["in"] == "query" and parameter["schema"]["enum"] == ["patient"]
    assert expand("/api/v1/implantations/", "post") == []
    assert expand("/api/v1/patients/", "get") == []
