"""Strict requests (issue 10): a query parameter a view does not take, an unknown centre or surgeon, a date
that is not ISO 8601: a 400 naming the parameter, for every role. Every documented parameter is accepted."""

import django_filters
import pytest
from rest_framework.test import APIClient

from api import filters as api_filters
from api import stats, views

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import release_codec

LISTS = {
    "centres": views.CentreViewSet,
    "surgeons": views.SurgeonViewSet,
    "patients": views.PatientViewSet,
    "implantations": views.ImplantationViewSet,
    "treatments": views.TreatmentViewSet,
    "complications": views.ComplicationViewSet,
    "follow-ups": views.FollowUpViewSet,
    "liver-tests": views.LiverTestViewSet,
    "perfusion-checks": views.PerfusionCheckViewSet,
    "systemic-therapy-lines": views.SystemicTherapyLineViewSet,
    "systemic-toxicities": views.SystemicToxicityViewSet,
    "readmissions": views.ReadmissionViewSet,
    "reports": views.CentreReportViewSet,
    "vocabularies/complication-types": views.ComplicationTypeViewSet,
}
STATS = {
    "stats/complications": (stats.ComplicationStatsView, {"type": "any"}),
    "stats/pump-use": (stats.PumpUseStatsView, {}),
    "stats/survival": (stats.SurvivalStatsView, {}),
    "stats/cumulative-incidence": (stats.CumulativeIncidenceStatsView, {"event": "technical", "at_days": "90"}),
    "stats/observed-expected": (stats.ObservedExpectedStatsView, {"outcome": "technical_90d"}),
}
ROLES = ["coordinator", "data_manager_a", "investigator"]


@pytest.fixture
def records(centre_a, centre_b):
    surgeon = factories.SurgeonFactory(centre=centre_a, code="SURG-A1")
    factories.SurgeonFactory(centre=centre_b, code="SURG-B1")
    implantation = factories.ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, indication="adjuvant")
    factories.TreatmentFactory(implantation=implantation)
    factories.ComplicationFactory(implantation=implantation)
    factories.FollowUpFactory(implantation=implantation)
    factories.LiverTestFactory(implantation=implantation)
    factories.PerfusionCheckFactory(implantation=implantation)
    factories.SystemicTherapyLineFactory(patient=implantation.patient)
    factories.ImplantationFactory(patient__centre=centre_b, implanted_on=days_after(5))
    return {"implantation": implantation, "surgeon": surgeon}


def assert_400_naming(response, name, text=None):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"] == "Invalid input." and name in body["errors"], body
    if text is not None:
        assert any(text in message for message in body["errors"][name]), body


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", [*LISTS, *STATS, "vocabularies"])
def test_a_misspelt_parameter_is_a_400_naming_it(records, request, role, path):
    params = {**STATS[path][1]} if path in STATS else {}
    response = client_for(request.getfixturevalue(role)).get(f"/api/v1/{path}/", {**params, "indicaton": "adjuvant"})
    assert_400_naming(response, "indicaton", "Unknown query parameter")
    assert list(response.json()["errors"]) == ["indicaton"]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_the_misspelling_is_refused_in_csv_too(records, coordinator, fmt):
    response = client_for(coordinator).get("/api/v1/implantations/", {"format": fmt, "indicaton": "adjuvant"})
    assert response.status_code == 400 and not getattr(response, "streaming", False)


def test_detail_urls_take_only_the_format(records, coordinator):
    client = client_for(coordinator)
    url = f"/api/v1/implantations/{records['implantation'].pk}/"
    assert client.get(url, {"format": "csv"}).status_code == 200
    assert_400_naming(client.get(url, {"centre": "CENTRE-A"}), "centre", "Unknown query parameter")
    assert_400_naming(client.get("/api/v1/vocabularies/", {"lang": "fr"}), "lang")


def test_anonymous_and_roleless_requests_are_refused_before_their_parameters_are_read(records):
    assert APIClient().get("/api/v1/implantations/", {"indicaton": "x"}).status_code == 401
    assert client_for(factories.UserFactory()).get("/api/v1/implantations/", {"indicaton": "x"}).status_code == 403


CENTRE_FILTERED = [
    "surgeons",
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
    *STATS,
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", CENTRE_FILTERED)
def test_an_unknown_centre_is_a_400_not_an_empty_list(records, request, role, path):
    user = request.getfixturevalue(role)
    params = {**STATS[path][1]} if path in STATS else {}
    response = client_for(user).get(f"/api/v1/{path}/", {**params, "centre": "NOPE"})
    assert_400_naming(response, "centre")
    if role == "investigator":  # an opaque code of no centre
        response = client_for(user).get(f"/api/v1/{path}/", {**params, "centre": release_codec("centre").encode(10**9)})
        assert_400_naming(response, "centre", "Unknown centre")


def test_a_centre_the_user_cannot_read_is_as_unknown_as_one_that_does_not_exist(records, data_manager_a):
    client = client_for(data_manager_a)
    assert client.get("/api/v1/implantations/", {"centre": "CENTRE-A"}).status_code == 200
    other = client.get("/api/v1/implantations/", {"centre": "CENTRE-B"}).json()
    missing = client.get("/api/v1/implantations/", {"centre": "CENTRE-Z"}).json()
    assert other["errors"]["centre"] == ["Unknown centre 'CENTRE-B'."]
    assert missing["errors"]["centre"] == ["Unknown centre 'CENTRE-Z'."]


def test_an_unknown_surgeon_is_a_400(records, coordinator):
    client = client_for(coordinator)
    assert_400_naming(client.get("/api/v1/implantations/", {"surgeon": "NOBODY"}), "surgeon", "Unknown surgeon")
    assert_400_naming(client.get("/api/v1/stats/pump-use/", {"surgeon": "NOBODY"}), "surgeon", "Unknown surgeon")
    rows = client.get("/api/v1/implantations/", {"surgeon": "SURG-A1"}).json()["results"]
    assert [row["id"] for row in rows] == [records["implantation"].pk]


DATE_FILTERS = sorted(
    (path, name)
    for path, view in LISTS.items()
    for name, filter_ in (view.filterset_class.base_filters.items() if view.filterset_class else ())
    if isinstance(filter_, django_filters.DateFilter)
)


def test_every_date_filter_is_iso_only():
    assert len(DATE_FILTERS) == 16
    for path, name in DATE_FILTERS:
        assert isinstance(LISTS[path].filterset_class.base_filters[name], api_filters.IsoDateFilter), (path, name)


@pytest.mark.parametrize("path, name", DATE_FILTERS)
@pytest.mark.parametrize("value", ["04/03/2025", "03/04/2025", "2025-3-4", "4 March 2025", "20250304", "2025-03-04T00"])
def test_dates_are_iso_8601_only(records, coordinator, path, name, value):
    response = client_for(coordinator).get(f"/api/v1/{path}/", {name: value})
    assert_400_naming(response, name, "YYYY-MM-DD (e.g. 2025-03-04)")


@pytest.mark.parametrize("path, name", DATE_FILTERS)
def test_an_iso_date_is_accepted(records, coordinator, path, name):
    assert client_for(coordinator).get(f"/api/v1/{path}/", {name: "2025-03-04"}).status_code == 200


def test_a_non_iso_date_is_refused_on_the_statistics_too(records, coordinator):
    response = client_for(coordinator).get("/api/v1/stats/pump-use/", {"implanted_after": "04/03/2025"})
    assert_400_naming(response, "implanted_after", "ISO 8601")


# --- No false 400: every parameter a view declares, with a valid value --------------------------


def valid_value(name, filter_, records):
    if isinstance(filter_, api_filters.CodeFilter):
        return {
            "centre": "CENTRE-A",
            "surgeon": records["surgeon"].code,
            "patient": str(records["implantation"].patient_id),
            "implantation": str(records["implantation"].pk),
        }[filter_.kind]
    if isinstance(filter_, django_filters.DateFilter):
        return "2024-03-01"
    if isinstance(filter_, api_filters.PeriodFilter):
        return "2024-03"
    if isinstance(filter_, django_filters.BooleanFilter):
        return "true"
    if isinstance(filter_, django_filters.NumberFilter):
        return "1"
    if isinstance(filter_, (django_filters.ChoiceFilter, django_filters.MultipleChoiceFilter)):
        choices = filter_.extra["choices"]
        choices = choices() if callable(choices) else choices
        return str(next(iter(choices))[0])
    if name in ("complication_type", "type"):
        return "biliary_sclerosis"
    return "x"


def declared(view, records):
    """Every query parameter a list view declares: its filters, ordering terms, pagination and format."""
    params = [(name, valid_value(name, f, records)) for name, f in view.filterset_class.base_filters.items()]
    params += [("ordering", field) for field in view.ordering_fields]
    params += [("ordering", f"-{view.ordering_fields[0]}"), ("page", "1"), ("page_size", "10"), ("format", "csv")]
    return params


@pytest.mark.parametrize("path", sorted(LISTS))
def test_every_declared_parameter_is_accepted(records, coordinator, path):
    client = client_for(coordinator)
    for name, value in declared(LISTS[path], records):
        response = client.get(f"/api/v1/{path}/", {name: value})
        assert response.status_code == 200, (path, name, value, response.content)


@pytest.mark.parametrize("path", sorted(STATS))
def test_every_declared_statistics_parameter_is_accepted(records, coordinator, path):
    view, required = STATS[path]
    client = client_for(coordinator)
    values = {
        "group_by": "centre" if path.endswith("observed-expected") else "indication",
        "experience_threshold": "20",
        "surgeon_volume_bands": "5,15",
        "centre_volume_bands": "20,60",
        "implanted_from": "2024",
        "implanted_to": "2024-12",
        "within_days": "90",
        "severe": "true",
        "endpoint": "hepatic_progression",
    }
    names = set(view.query_class().fields) | set(api_filters.StatsFilter.base_filters) | {"format"}
    for name in sorted(names - set(required)):
        if name in values:
            value = values[name]
        elif name == "format":
            value = "json"
        else:
            value = valid_value(name, api_filters.StatsFilter.base_filters[name], records)
        response = client.get(f"/api/v1/{path}/", {**required, name: value})
        assert response.status_code == 200, (path, name, value, response.content)


def test_every_parameter_in_the_schema_is_one_the_view_takes(records, coordinator):
    """What /api/v1/schema/ documents is accepted: never refused as an unknown parameter."""
    client = client_for(coordinator)
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()
    checked = 0
    for path, operations in schema["paths"].items():
        operation = operations.get("get")
        if operation is None or "{" in path and not path.endswith("/{id}/") or "pdf" in path:
            continue
        url = path.replace("{id}", str(records["implantation"].pk))
        if "{" in url or not any(url.startswith(f"/api/v1/{p}/") for p in (*LISTS, *STATS, "vocabularies")):
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            response = client.get(url, {parameter["name"]: "x"})
            if response.status_code == 400:
                messages = response.json()["errors"].get(parameter["name"], [])
                assert not any("Unknown query parameter" in m for m in messages), (path, parameter["name"])
            checked += 1
    assert checked > 100


def test_the_investigator_is_told_which_codes_to_send(records, investigator):
    client = client_for(investigator)
    response = client.get("/api/v1/implantations/", {"surgeon": records["surgeon"].code})
    assert_400_naming(response, "surgeon", "not a surgeon code as shown to you")
    code = release_codec("surgeon").encode(records["surgeon"].pk)
    assert len(client.get("/api/v1/implantations/", {"surgeon": code}).json()["results"]) == 1
