"""Records through the API: de-identification, validation, history, export log, CSV, filters, pagination."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from api.models import ExportLog
from registry.models import Complication, Implantation
from sites.models import Role

from . import factories
from .clients import client_for
from .factories import days_after


@pytest.fixture
def records(centre_a):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a,
        patient__consent_on=days_after(-5),
        never_treated_reason="patient_choice",
        never_treated_note="Lives abroad, Dr Martin",
    )
    treated = factories.ImplantationFactory(patient__centre=centre_a, indication="adjuvant")
    factories.TreatmentFactory(
        implantation=treated, dose_change="reduced", dose_change_reason="Bilirubin 40, Mme X", dose="0.06"
    )
    return {"untreated": implantation, "treated": treated}


IDENTIFYING = {"patients": "consent_on", "implantations": "never_treated_note", "treatments": "dose_change_reason"}


@pytest.mark.parametrize("endpoint,field", sorted(IDENTIFYING.items()))
def test_investigators_get_no_free_text_or_local_details(records, investigator, data_manager_a, endpoint, field):
    rows = client_for(investigator).get(f"/api/v1/{endpoint}/").json()["results"]
    assert rows and all(field not in row for row in rows)
    csv_text = b"".join(
        client_for(investigator).get(f"/api/v1/{endpoint}/", {"format": "csv"}).streaming_content
    ).decode()
    assert field not in csv_text.splitlines()[0].split(",")
    assert "Martin" not in csv_text and "Mme X" not in csv_text
    # The centre's own data manager sees them.
    assert field in client_for(data_manager_a).get(f"/api/v1/{endpoint}/").json()["results"][0]


def test_investigators_see_birth_year_never_a_birth_date(records, investigator):
    row = client_for(investigator).get("/api/v1/patients/").json()["results"][0]
    # No id and no pseudonym either: an opaque code (tests/test_api_deidentification.py).
    assert set(row) == {
        "code",
        "centre",
        "birth_year",
        "sex",
        "primary_tumour",
        "ras_status",
        "liver_metastases_count",
        "bilobar_disease",
        "extrahepatic_disease",
        "prior_systemic_lines",
        # Missing-data codes (issue 12): why a case-mix value is absent.
        "liver_metastases_count_missing",
        "bilobar_disease_missing",
        "extrahepatic_disease_missing",
        # Case mix at implant (issue 14), with their missing-data codes.
        "ecog",
        "cea_ng_per_ml",
        "clinical_risk_score",
        "braf_status",
        "msi_status",
        "extrahepatic_sites",
        "ecog_missing",
        "cea_ng_per_ml_missing",
        "clinical_risk_score_missing",
    }


def test_investigators_cannot_write(records, investigator):
    response = client_for(investigator).patch(
        f"/api/v1/implantations/{records['treated'].pk}/", {"approach": "robotic"}, format="json"
    )
    assert response.status_code == 403 and set(response.json()) == {"detail"}


def test_implantation_exposes_the_derived_values(records, data_manager_a):
    row = client_for(data_manager_a).get(f"/api/v1/implantations/{records['treated'].pk}/").json()
    assert (row["centre"], row["treated"], row["days_to_first_dose"], row["surgeon_sequence"]) == (
        "CENTRE-A",
        True,
        17,
        1,
    )


def test_model_rules_come_back_as_400_with_a_message_per_field(records, data_manager_a):
    client = client_for(data_manager_a)
    response = client.post(
        "/api/v1/complications/",
        {"implantation": records["treated"].pk, "type": "pocket_infection", "onset_on": "2024-01-01", "grade": 2},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["onset_on"] == ["This date precedes the implantation (2024-03-01)."]
    response = client.post(
        "/api/v1/treatments/",
        {
            "implantation": records["treated"].pk,
            "given_on": "2024-04-01",
            "drug": "fudr",
            "dose": "2",
            "dose_unit": "mg/kg/day",
        },
        format="json",
    )
    assert "dose" in response.json()["errors"]
    response = client.post(
        "/api/v1/complications/", {"implantation": records["treated"].pk, "type": "no_such_type"}, format="json"
    )
    assert set(response.json()["errors"]) >= {"type", "onset_on", "grade"}
    assert not Complication.objects.exists()


def test_writes_keep_history_with_the_api_user(records, data_manager_a):
    implantation = records["treated"]
    response = client_for(data_manager_a).patch(
        f"/api/v1/implantations/{implantation.pk}/", {"length_of_stay_days": 4}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 200
    latest = implantation.history.latest()
    assert (latest.history_user, latest.length_of_stay_days) == (data_manager_a, 4)


def test_csv_exports_are_logged_and_pages_of_json_are_not(records, investigator):
    client = client_for(investigator)
    client.get("/api/v1/implantations/", {"indication": "adjuvant"})
    response = client.get("/api/v1/implantations/", {"format": "csv", "treated": "false"})
    b"".join(response.streaming_content)
    logs = list(
        ExportLog.objects.order_by("created_at").values(
            "user", "endpoint", "filters", "format", "row_count", "completed"
        )
    )
    # The JSON page is in the read log, not the export log (issue 17): only the CSV export is logged.
    assert logs == [
        {
            "user": investigator.pk,
            "endpoint": "/api/v1/implantations/",
            "filters": {"treated": ["false"]},
            "format": "csv",
            "row_count": 1,
            "completed": True,
        },
    ]


def test_csv_export_streams_every_row_unpaginated(centre_a, coordinator):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    factories.ImplantationFactory.create_batch(120, patient__centre=centre_a, surgeon=surgeon)
    response = client_for(coordinator).get("/api/v1/implantations/", {"format": "csv", "page_size": 10})
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 120 and rows[0]["centre"] == "CENTRE-A"
    assert sorted(int(r["surgeon_sequence"]) for r in rows) == list(range(1, 121))


def test_csv_cells_cannot_start_a_formula(centre_a, data_manager_a):
    factories.ImplantationFactory(
        patient__centre=centre_a, never_treated_reason="other", never_treated_note='=HYPERLINK("x")'
    )
    text = b"".join(
        client_for(data_manager_a).get("/api/v1/implantations/", {"format": "csv"}).streaming_content
    ).decode()
    assert "'=HYPERLINK" in text


@pytest.fixture
def filter_world(centre_a, centre_b):
    novice = factories.SurgeonFactory(centre=centre_a, prior_pump_count=0)
    expert = factories.SurgeonFactory(centre=centre_a, prior_pump_count=40)
    rows = {
        "a_novice_adjuvant": factories.ImplantationFactory(
            patient__centre=centre_a, surgeon=novice, indication="adjuvant", implanted_on=days_after(0)
        ),
        "a_expert_late": factories.ImplantationFactory(
            patient__centre=centre_a, surgeon=expert, implanted_on=days_after(100)
        ),
        "b_row": factories.ImplantationFactory(patient__centre=centre_b, implanted_on=days_after(50)),
    }
    factories.TreatmentFactory(implantation=rows["a_expert_late"])
    # A held cycle is no dose: b_row stays never treated.
    factories.TreatmentFactory(implantation=rows["b_row"], dose_change="held", dose_change_reason="bilirubin")
    factories.ComplicationFactory(implantation=rows["b_row"])
    return rows


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"centre": "CENTRE-B"}, {"b_row"}),
        ({"indication": "adjuvant"}, {"a_novice_adjuvant"}),
        ({"implanted_after": "2024-04-01", "implanted_before": "2024-05-01"}, {"b_row"}),
        ({"treated": "true"}, {"a_expert_late"}),
        ({"treated": "false"}, {"a_novice_adjuvant", "b_row"}),
        ({"complication_type": "biliary_sclerosis"}, {"b_row"}),
        ({"surgeon_experience": "at_or_above"}, {"a_expert_late"}),
        (
            {"surgeon_experience": "below", "experience_threshold": "50"},
            {"a_novice_adjuvant", "a_expert_late", "b_row"},
        ),
    ],
)
def test_implantation_filters(filter_world, coordinator, params, expected):
    ids = {row["id"] for row in client_for(coordinator).get("/api/v1/implantations/", params).json()["results"]}
    assert ids == {filter_world[name].pk for name in expected}


def test_invalid_filter_value_is_a_400(filter_world, coordinator):
    response = client_for(coordinator).get("/api/v1/implantations/", {"implanted_after": "yesterday"})
    assert response.status_code == 400 and "implanted_after" in response.json()["errors"]


def test_pagination_is_stable_when_ordering_has_ties(centre_a, coordinator):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    factories.ImplantationFactory.create_batch(
        25, patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(0)
    )
    client = client_for(coordinator)
    seen = []
    for page in (1, 2, 3):
        seen += [
            r["id"]
            for r in client.get(
                "/api/v1/implantations/", {"ordering": "implanted_on", "page_size": 10, "page": page}
            ).json()["results"]
        ]
    assert len(seen) == 25 and len(set(seen)) == 25


@pytest.mark.parametrize(
    "endpoint", ["implantations", "patients", "treatments", "complications", "follow-ups", "surgeons"]
)
def test_queries_per_request_do_not_grow_with_page_size(centre_a, coordinator, endpoint):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    for _ in range(30):
        implantation = factories.ImplantationFactory(
            patient__centre=centre_a,
            surgeon=factories.SurgeonFactory(centre=centre_a),
            pump_model=factories.PumpModelFactory(),  # every related field the list shows is filled in
        )
        factories.TreatmentFactory(implantation=implantation)
        factories.ComplicationFactory(implantation=implantation)
        factories.FollowUpFactory(implantation=implantation)
    assert surgeon
    client = client_for(coordinator)

    def count(page_size):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/api/v1/{endpoint}/", {"page_size": page_size}).status_code == 200
        return len(queries)

    count(1)  # the user's roles are read once and cached on the (reused) user object
    assert count(2) == count(30) <= 4


def test_implantation_list_is_the_same_for_a_data_manager_as_the_admin_shows(filter_world, data_manager_a):
    ids = {row["id"] for row in client_for(data_manager_a).get("/api/v1/implantations/").json()["results"]}
    assert ids == set(Implantation.objects.visible_to(data_manager_a).values_list("id", flat=True))


def test_vocabularies_list_codes_and_labels(investigator):
    body = client_for(investigator).get("/api/v1/vocabularies/").json()
    assert {"code": "adjuvant", "label": "Adjuvant after liver resection"} in body["indication"]
    types = client_for(investigator).get("/api/v1/vocabularies/complication-types/").json()["results"]
    assert "biliary_sclerosis" in {t["code"] for t in types}


def test_only_the_coordinator_extends_the_complication_vocabulary(coordinator, data_manager_a):
    payload = {"code": "pump_flip", "name": "Pump flip", "grading_system": "clavien_dindo", "category": "technical"}
    assert (
        client_for(data_manager_a).post("/api/v1/vocabularies/complication-types/", payload, format="json").status_code
        == 403
    )
    assert (
        client_for(coordinator).post("/api/v1/vocabularies/complication-types/", payload, format="json").status_code
        == 201
    )


def test_a_new_complication_type_needs_its_category(coordinator):
    url = "/api/v1/vocabularies/complication-types/"
    payload = {"code": "port_leak", "name": "Port leak", "grading_system": "clavien_dindo"}
    response = client_for(coordinator).post(url, payload, format="json")
    assert response.status_code == 400 and "category" in response.json()["errors"]
    payload.update(category="toxicity", catheter_related=True)
    response = client_for(coordinator).post(url, payload, format="json")
    assert response.status_code == 400  # a catheter problem is a technical complication


def test_role_lookup_is_cached_per_request(centre_a, data_manager_a):
    factories.ImplantationFactory(patient__centre=centre_a)
    user = factories.user_with_role(Role.CENTRE_LEAD, centre_a)
    client = client_for(user)
    with CaptureQueriesContext(connection) as queries:
        client.get("/api/v1/implantations/")
    membership_queries = [q for q in queries if "sites_membership" in q["sql"]]
    assert len(membership_queries) == 1


def test_unknown_format_bad_page_size_and_unknown_urls_answer_in_the_error_shape(coordinator):
    client = client_for(coordinator)
    response = client.get("/api/v1/patients/", {"format": "xml"})
    assert response.status_code == 406 and "Unknown format" in response.json()["detail"]
    response = client.get("/api/v1/patients/", {"page_size": "0"})
    assert response.status_code == 400 and "page_size" in response.json()["errors"]
    response = client.get("/api/v1/patients/not-a-number/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    response = client.get("/api/v1/implantations/", {"patient": "999999"})
    assert response.status_code == 200 and response.json()["results"] == []


def test_page_counts_follow_committed_changes(centre_a, coordinator, django_capture_on_commit_callbacks):
    factories.ImplantationFactory.create_batch(3, patient__centre=centre_a)
    client = client_for(coordinator)
    assert client.get("/api/v1/implantations/").json()["count"] == 3
    with django_capture_on_commit_callbacks(execute=True):
        factories.ImplantationFactory(patient__centre=centre_a)
    assert client.get("/api/v1/implantations/").json()["count"] == 4
    assert client.get("/api/v1/implantations/", {"indication": "adjuvant"}).json()["count"] == 0
