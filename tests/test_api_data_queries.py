"""``GET /api/v1/data-queries/`` (issue 12): the contract's fields, the status/rule/centre filters, scoping like
every other list, strict parameters; investigators get a 403 (data queries are operational, not research data)."""

import pytest
from rest_framework.test import APIClient

from registry.data_quality_services import answer_query, close_query, raise_query, run_checks
from sites.models import Role

from . import factories
from .clients import client_for

URL = "/api/v1/data-queries/"
FIELDS = ["id", "centre", "implantation", "rule", "message", "status", "raised_on", "answer"]


@pytest.fixture
def queries(centre_a, centre_b, coordinator, data_manager_a):
    """In A: a rule's open query, a hand-raised answered one, a closed one, one about the patient; in B: one."""
    untreated = factories.ImplantationFactory(patient__centre=centre_a)
    factories.ImplantationFactory(patient__centre=centre_b)
    run_checks(rule_codes=["no_first_dose_28_days"])
    dose = factories.TreatmentFactory(implantation=factories.ImplantationFactory(patient__centre=centre_a))
    answered = raise_query(dose, user=coordinator, message="Dose unit?", field_name="dose_unit")
    answered = answer_query(answered, user=data_manager_a, answer="mg/kg/day, as entered.")
    closed = close_query(raise_query(dose, user=coordinator, message="Date?"), user=coordinator)
    about_patient = raise_query(untreated.patient, user=coordinator, message="Birth year?", field_name="birth_year")
    return {"untreated": untreated, "dose": dose, "answered": answered, "closed": closed, "patient": about_patient}


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(row["id"] for row in response.json()["results"])


def test_fields_are_the_contract(queries, coordinator):
    rows = {row["id"]: row for row in client_for(coordinator).get(URL).json()["results"]}
    answered = rows[queries["answered"].pk]
    assert list(answered) == FIELDS
    assert answered == {
        "id": queries["answered"].pk,
        "centre": "CENTRE-A",
        "implantation": queries["dose"].implantation_id,
        "rule": "manual",
        "message": "Dose unit?",
        "status": "answered",
        "raised_on": answered["raised_on"],
        "answer": "mg/kg/day, as entered.",
    }
    assert answered["raised_on"].startswith(str(queries["answered"].raised_on.date()))
    assert rows[queries["patient"].pk]["implantation"] is None
    detail = client_for(coordinator).get(f"{URL}{queries['closed'].pk}/").json()
    assert list(detail) == FIELDS and detail["status"] == "closed"


def test_filters_by_status_rule_and_centre(queries, coordinator):
    from registry.models import DataQuery

    client = client_for(coordinator)
    rule_queries = sorted(DataQuery.objects.filter(rule="no_first_dose_28_days").values_list("pk", flat=True))
    assert len(rule_queries) == 2
    assert ids(client.get(URL, {"status": "answered"})) == [queries["answered"].pk]
    assert ids(client.get(URL, {"status": "closed"})) == [queries["closed"].pk]
    assert ids(client.get(URL, {"rule": "no_first_dose_28_days"})) == rule_queries
    in_b = sorted(DataQuery.objects.filter(patient__centre__code="CENTRE-B").values_list("pk", flat=True))
    assert ids(client.get(URL, {"centre": "CENTRE-B"})) == in_b
    assert ids(client.get(URL, {"centre": "CENTRE-A", "status": "open", "rule": "manual"})) == [queries["patient"].pk]


@pytest.mark.parametrize(
    "params,name",
    [
        ({"statu": "open"}, "statu"),  # a misspelt filter
        ({"status": "pending"}, "status"),
        ({"rule": "no_such_rule"}, "rule"),
        ({"centre": "NOPE"}, "centre"),
        ({"ordering": "message"}, "ordering"),
    ],
)
def test_unknown_parameters_and_values_are_a_400_naming_them(queries, coordinator, params, name):
    response = client_for(coordinator).get(URL, params)
    assert response.status_code == 400, response.content
    assert name in response.json()["errors"]


def test_scoped_like_everything_else(queries, centre_a, centre_b, data_manager_a, centre_lead_a):
    from registry.models import DataQuery

    own = sorted(DataQuery.objects.filter(patient__centre=centre_a).values_list("pk", flat=True))
    assert ids(client_for(data_manager_a).get(URL)) == own
    assert ids(client_for(centre_lead_a).get(URL)) == own
    other_dm = factories.user_with_role(Role.DATA_MANAGER, centre_b)
    in_b = DataQuery.objects.get(patient__centre=centre_b)
    assert ids(client_for(other_dm).get(URL)) == [in_b.pk]
    assert client_for(other_dm).get(f"{URL}{queries['answered'].pk}/").status_code == 404
    # A centre filter names a centre the user cannot see: unknown, not an empty list.
    assert client_for(other_dm).get(URL, {"centre": "CENTRE-A"}).status_code == 400


def test_investigators_and_anonymous_are_refused(queries, investigator):
    assert client_for(investigator).get(URL).status_code == 403
    assert client_for(investigator).get(f"{URL}{queries['answered'].pk}/").status_code == 403
    assert APIClient().get(URL).status_code == 401


def test_read_only(queries, coordinator):
    client = client_for(coordinator)
    assert client.post(URL, {"message": "x"}, format="json").status_code == 405
    assert client.patch(f"{URL}{queries['answered'].pk}/", {"status": "closed"}, format="json").status_code == 405
    assert client.delete(f"{URL}{queries['answered'].pk}/").status_code == 405
