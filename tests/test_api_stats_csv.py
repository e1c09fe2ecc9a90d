"""``?format=csv`` on every statistics endpoint (issue 15): a table pandas and R load as it comes, one row per
group (per group and day for a survival curve), named columns, the JSON's numbers, suppressed cells empty."""

import csv
import datetime
import io
import math

import pandas
import pytest
from django.urls import reverse

from api import urls
from registry.models import ComplicationType
from registry.rules import today
from reports import comparisons

from . import factories
from .clients import client_for
from .factories import days_after

STATISTICS_URL_NAMES = sorted(
    pattern.name for pattern in urls.urlpatterns if getattr(pattern, "name", "").startswith("stats-")
)
# Each statistics endpoint with a query it answers, grouped by centre, and its CSV's columns (for an
# investigator, who also gets `suppressed`). An endpoint missing here fails its tests with a KeyError.
ENDPOINTS = {
    "stats-complications": (
        {"type": "technical"},
        ["group", "implantations", "events", "rate", "ci_low", "ci_high"],
    ),
    "stats-complications-within-days": (
        {"type": "technical", "within_days": "90"},
        ["group", "implantations", "events", "competing_events", "rate", "ci_low", "ci_high"],
    ),
    "stats-pump-use": (
        {},
        ["group", "implantations", "treated", "rate", "ci_low", "ci_high", "median_days_to_first_dose"],
    ),
    "stats-survival": (
        {"endpoint": "overall"},
        [
            "group",
            "n",
            "events",
            "median_days",
            "median_ci_low",
            "median_ci_high",
            "day",
            "at_risk",
            "events_on_day",
            "survival",
        ],
    ),
    "stats-cumulative-incidence": (
        {"event": "technical", "at_days": "90"},
        ["group", "implantations", "events", "competing_events", "estimate", "ci_low", "ci_high"],
    ),
    "stats-observed-expected": (
        {"outcome": "technical_90d"},
        ["group", "n", "observed", "expected", "ratio", "ci_low", "ci_high", "flag"],
    ),
    "stats-concordance": (
        {"measure": "extrahepatic_outside_trial"},
        ["group", "implantations", "events", "unknown_status", "rate", "ci_low", "ci_high"],
    ),
    "stats-readmissions": (
        {"measure": "readmission_30d"},
        ["group", "implantations", "events", "rate", "ci_low", "ci_high"],
    ),
}
CURVES = {"stats-survival": "table"}
CASES = [*STATISTICS_URL_NAMES, "stats-complications-within-days"]


def url_name(case):
    return case.removesuffix("-within-days")


@pytest.fixture
def registry(centre_a, centre_b):
    """Three centres of 20 adjuvant implantations, 500 days ago, followed 400 days. A: 8 technical complications
    at day 30, 8 deaths at day 300, 8 readmissions, 8 with extrahepatic disease, 3 untreated. B: 2 of each, a
    small cell an investigator does not see (nor, so that the total does not give it back, a second centre).
    C: 10 of each, 5 untreated."""
    centre_c = factories.CentreFactory(code="CENTRE-C")
    start = today() - datetime.timedelta(days=500)
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    for centre, events, untreated in ((centre_a, 8, 3), (centre_b, 2, 2), (centre_c, 10, 5)):
        surgeon = factories.SurgeonFactory(centre=centre)
        for i in range(20):
            implanted = factories.ImplantationFactory(
                patient__centre=centre,
                patient__extrahepatic_disease=i < events,
                surgeon=surgeon,
                implanted_on=days_after(i, start),
                indication="adjuvant",
            )
            died = i < events
            factories.FollowUpFactory(
                implantation=implanted,
                contact_on=days_after(300 if died else 400, implanted.implanted_on),
                vital_status="dead" if died else "alive",
                died_on=days_after(300, implanted.implanted_on) if died else None,
            )
            if i >= untreated:
                factories.TreatmentFactory(implantation=implanted, given_on=days_after(10 + i, implanted.implanted_on))
            if i < events:
                factories.ComplicationFactory(
                    implantation=implanted, type=occlusion, onset_on=days_after(30, implanted.implanted_on)
                )
                factories.ReadmissionFactory(implantation=implanted)
    comparisons._live["version"] = None


def answers(user, case):
    params, _ = ENDPOINTS[case]
    client = client_for(user)
    path = reverse(f"api:{url_name(case)}")
    query = {**params, "group_by": "centre"}
    as_json = client.get(path, query)
    as_csv = client.get(path, {**query, "format": "csv"})
    assert as_json.status_code == 200 and as_csv.status_code == 200, as_csv.content
    assert as_csv["Content-Type"].startswith("text/csv")
    return as_json.json()["groups"], as_csv.content.decode()


def expected_rows(case, groups):
    """The JSON's groups as the rows the CSV must hold, written out here apart from api.renderers."""
    rows = []
    for group in groups:
        row = {}
        for name, value in group.items():
            if name in ("ci", "median_ci"):
                row[f"{name}_low"], row[f"{name}_high"] = value or (None, None)
            elif name != CURVES.get(case):
                row[name] = value
        points = group.get(CURVES.get(case)) if case in CURVES else None
        if points is None:
            rows.append(row)
            continue
        for point in points or [{}]:
            rows.append(
                {
                    **row,
                    "day": point.get("day"),
                    "at_risk": point.get("at_risk"),
                    "events_on_day": point.get("events"),
                    "survival": point.get("survival"),
                }
            )
    return rows


def same(cell, value):
    if value is None:
        return isinstance(cell, float) and math.isnan(cell)
    if isinstance(value, bool):
        return cell == int(value)
    if isinstance(value, float):
        return cell == pytest.approx(value, rel=1e-12)
    return cell == value


def test_every_case_is_a_statistics_endpoint():
    assert {url_name(case) for case in ENDPOINTS} == set(STATISTICS_URL_NAMES)


@pytest.mark.parametrize("role", ["coordinator", "investigator"])
@pytest.mark.parametrize("case", CASES)
def test_the_csv_is_the_json_as_a_table(registry, request, role, case):
    groups, body = answers(request.getfixturevalue(role), case)
    table = pandas.read_csv(io.StringIO(body))
    columns = ENDPOINTS[case][1] + (["suppressed"] if role == "investigator" else [])
    assert sorted(table.columns) == sorted(columns)
    # Nothing nested: no cell a dict or a list in text.
    for column in table.columns:
        assert not table[column].astype(str).str.startswith(("{", "[")).any(), column
    expected = expected_rows(case, groups)
    assert len(groups) == 3 and len(table) == len(expected)
    if case in CURVES:
        assert len(table) > len(groups)  # a row per day, not per group
    else:
        assert list(table["group"]) == [g["group"] for g in groups]
    for index, row in enumerate(expected):
        for name, value in row.items():
            assert same(table[name][index], value), (index, name, table[name][index], value)


@pytest.mark.parametrize("case", CASES)
def test_suppressed_cells_are_empty(registry, investigator, case):
    groups, body = answers(investigator, case)
    suppressed = [g["group"] for g in groups if g["suppressed"]]
    assert suppressed, "the fixture gives every endpoint a small cell"
    rows = list(csv.DictReader(io.StringIO(body)))
    assert "None" not in body and "true" not in body.lower()
    expected = expected_rows(case, groups)
    assert len(rows) == len(expected)
    for row, values in zip(rows, expected, strict=True):
        assert row["suppressed"] == ("1" if row["group"] in suppressed else "0")
        # Every null of the JSON, and only those, an empty cell.
        assert {name for name, cell in row.items() if cell == ""} == {n for n, v in values.items() if v is None}
    table = pandas.read_csv(io.StringIO(body))
    hidden = table[table["group"].isin(suppressed)]
    assert hidden.drop(columns=["group", "suppressed"]).isna().all().all()
    assert len(hidden) == len(suppressed)  # a suppressed survival group: one row, no days


def test_an_error_in_csv_is_still_an_error(registry, coordinator):
    response = client_for(coordinator).get("/api/v1/stats/complications/", {"format": "csv"})
    assert response.status_code == 400 and "type" in response.content.decode()
