"""Missing-data codes (issue 12, item 3): a companion ``<field>_missing`` says why a value is absent.

The model and the database refuse a value with a code; the admin shows each code beside its value; the API
reads and writes the codes (the values keep their types); the import takes the implantation's codes; the
record status dashboard counts a coded field as answered; the monthly report counts each data item as
recorded, known missing or missing.
"""

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from registry import dashboard, missing_data, rules
from registry.admin import FollowUpInline, LiverTestInline
from registry.missing_data import BOTH_MESSAGE, KNOWN_MISSING, MISSING, RECORDED, companion
from registry.models import FollowUp, Implantation, LiverTest, Patient
from reports import services
from reports.data_items import data_item_counts
from reports.models import CentreReport

from . import factories
from .admin_forms import implantation_form, inline_rows
from .clients import client_for
from .factories import days_after, known_missing
from .test_import import errors_by_row, good_row, run_import

MODELS = (Patient, Implantation, LiverTest, FollowUp)
CASES = [(model, name) for model in MODELS for name in model.MISSING_DATA_FIELDS]
CASE_IDS = [f"{model.__name__}.{name}" for model, name in CASES]


def with_values(model):
    """A record of ``model`` with a value in every field that may carry a code (False is a value too)."""
    if model is Patient:
        return factories.PatientFactory(
            liver_metastases_count=3,
            bilobar_disease=False,
            extrahepatic_disease=True,
            ecog=0,  # 0 is a value too
            cea_ng_per_ml=Decimal("12.5"),
            clinical_risk_score=2,
        )
    if model is Implantation:
        return factories.ImplantationFactory(operative_minutes=180, blood_loss_ml=0, length_of_stay_days=5)
    if model is LiverTest:
        return factories.LiverTestFactory()
    return factories.FollowUpFactory(
        response="PR",
        resected=True,
        resection_on=days_after(60),
        resection_margin="R0",
        hepatic_progression_on=days_after(90),
        progression_on=days_after(90),
    )


def empty_value(model, name):
    return None if model._meta.get_field(name).null else ""


# --------------------------------------------------------------------------- the model and the database


@pytest.mark.parametrize("model,name", CASES, ids=CASE_IDS)
def test_clean_refuses_a_value_with_a_code_on_the_code_field(db, model, name):
    record = with_values(model)
    record.full_clean()  # the values alone are fine
    setattr(record, companion(name), "unknown")
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    assert caught.value.message_dict == {companion(name): [BOTH_MESSAGE]}


@pytest.mark.parametrize("model,name", CASES, ids=CASE_IDS)
def test_the_database_refuses_a_value_with_a_code_even_past_clean(db, model, name):
    record = with_values(model)
    rows = model.objects.filter(pk=record.pk)
    with transaction.atomic(), pytest.raises(IntegrityError, match="value_or_missing_code"):
        rows.update(**{companion(name): "not_done"})
    with transaction.atomic(), pytest.raises(IntegrityError, match="missing_vocabulary"):
        rows.update(**{name: empty_value(model, name), companion(name): "maybe"})
    # Without the value, the code is kept.
    rows.update(**{name: empty_value(model, name), companion(name): "not_applicable"})
    record.refresh_from_db()
    assert getattr(record, companion(name)) == "not_applicable"
    record.full_clean()


@pytest.mark.parametrize("model,name", CASES, ids=CASE_IDS)
def test_state_tells_recorded_known_missing_and_missing(db, model, name):
    record = with_values(model)
    assert missing_data.state(record, name) == RECORDED
    model.objects.filter(pk=record.pk).update(**{name: empty_value(model, name)})
    record.refresh_from_db()
    assert missing_data.state(record, name) == MISSING
    model.objects.filter(pk=record.pk).update(**{companion(name): "unknown"})
    record.refresh_from_db()
    assert missing_data.state(record, name) == KNOWN_MISSING
    assert missing_data.states(record)[name] == KNOWN_MISSING
    # The set-based form the report counts with agrees with state().
    matching = [
        wanted
        for wanted in (RECORDED, MISSING, KNOWN_MISSING, "unknown", "not_done")
        if model.objects.filter(missing_data.state_q(model, name, wanted), pk=record.pk).exists()
    ]
    assert matching == [KNOWN_MISSING, "unknown"]


def test_false_is_a_value_not_a_missing_one(db):
    patient = factories.PatientFactory(bilobar_disease=False, extrahepatic_disease=None)
    assert missing_data.states(patient) == {
        "liver_metastases_count": MISSING,
        "bilobar_disease": RECORDED,
        "extrahepatic_disease": MISSING,
        "ecog": MISSING,
        "cea_ng_per_ml": MISSING,
        "clinical_risk_score": MISSING,
    }


# --------------------------------------------------------------------------- admin


def _lines(model_admin):
    if model_admin.fieldsets:
        return [line for _name, options in model_admin.fieldsets for line in options["fields"]]
    return list(model_admin.fields)


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
def test_each_admin_shows_the_code_on_the_line_of_its_value(model):
    lines = _lines(admin.site._registry[model])
    for name in model.MISSING_DATA_FIELDS:
        assert (name, companion(name)) in lines
    # Nothing else of the record was left out by listing the fields.
    shown = {f for line in lines for f in (line if isinstance(line, tuple) else (line,))}
    editable = {f.name for f in model._meta.concrete_fields if f.editable and not f.primary_key}
    assert editable <= shown


def test_the_implantation_pages_inlines_carry_the_codes():
    liver = list(LiverTestInline.fields)
    values = [liver.index(name) for name in LiverTest.MISSING_DATA_FIELDS]
    codes = [liver.index(companion(name)) for name in LiverTest.MISSING_DATA_FIELDS]
    assert max(values) < min(codes) and codes == sorted(codes)  # the code columns after the values
    for name in FollowUp.MISSING_DATA_FIELDS:
        assert (name, companion(name)) in FollowUpInline.fields
    editable = {f.name for f in FollowUp._meta.concrete_fields if f.editable and not f.primary_key}
    shown = {f for line in FollowUpInline.fields for f in (line if isinstance(line, tuple) else (line,))}
    assert editable - shown == {"implantation"}


def test_admin_pages_render_the_codes_beside_the_values(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=centre_a)
    liver_test = factories.LiverTestFactory(implantation=implantation)
    follow_up = factories.FollowUpFactory(implantation=implantation)

    page = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk])).content.decode()
    for name in Implantation.MISSING_DATA_FIELDS:
        assert f'class="form-row field-{name} field-{companion(name)}"' in page
    for name in LiverTest.MISSING_DATA_FIELDS:
        assert f'name="liver_tests-0-{companion(name)}"' in page
    for name in FollowUp.MISSING_DATA_FIELDS:
        assert f'name="follow_ups-0-{companion(name)}"' in page
    pages = {
        Patient: reverse("admin:registry_patient_change", args=[implantation.patient.pk]),
        LiverTest: reverse("admin:registry_livertest_change", args=[liver_test.pk]),
        FollowUp: reverse("admin:registry_followup_change", args=[follow_up.pk]),
    }
    for model, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200
        for name in model.MISSING_DATA_FIELDS:
            assert f'class="form-row field-{name} field-{companion(name)}"' in response.content.decode()


def test_admin_saves_a_code_and_refuses_a_code_with_a_value(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    patient = factories.PatientFactory(centre=centre_a)
    surgeon = factories.SurgeonFactory(centre=centre_a)
    url = reverse("admin:registry_implantation_add")

    both = implantation_form(patient, surgeon, operative_minutes="200", operative_minutes_missing="unknown")
    response = client.post(url, both)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"operative_minutes_missing": [BOTH_MESSAGE]}
    assert not Implantation.objects.exists()

    data = implantation_form(patient, surgeon, operative_minutes="", operative_minutes_missing="not_done")
    data.update(
        inline_rows(
            "liver_tests",
            [{"measured_on": "2024-06-01", "ast_u_per_l": "40", "alp_u_per_l": "", "alp_u_per_l_missing": "not_done"}],
        )
    )
    assert client.post(url, data).status_code == 302
    implantation = Implantation.objects.get()
    assert (implantation.operative_minutes, implantation.operative_minutes_missing) == (None, "not_done")
    assert implantation.liver_tests.get().alp_u_per_l_missing == "not_done"


# --------------------------------------------------------------------------- API


def implantation_payload(patient, surgeon, **fields):
    return {
        "patient": patient.pk,
        "surgeon": surgeon.code,
        "implanted_on": "2024-03-01",
        "indication": "adjuvant",
        "approach": "laparotomy",
        "device": "constant_flow_pump",
        **fields,
    }


def test_api_round_trip_of_a_code(db, data_manager_a, investigator, centre_a):
    patient = factories.PatientFactory(centre=centre_a)
    surgeon = factories.SurgeonFactory(centre=centre_a)
    client = client_for(data_manager_a)
    response = client.post(
        "/api/v1/implantations/",
        implantation_payload(
            patient, surgeon, operative_minutes=None, operative_minutes_missing="not_done", blood_loss_ml=250
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["operative_minutes"], body["operative_minutes_missing"]) == (None, "not_done")
    assert (body["blood_loss_ml"], body["blood_loss_ml_missing"]) == (250, "")
    stored = Implantation.objects.get(pk=body["id"])
    assert (stored.operative_minutes, stored.operative_minutes_missing) == (None, "not_done")

    follow_up = client.post(
        "/api/v1/follow-ups/",
        {
            "implantation": stored.pk,
            "contact_on": "2024-06-01",
            "vital_status": "alive",
            "response": "",
            "response_missing": "unknown",
        },
        format="json",
    )
    assert follow_up.status_code == 201, follow_up.json()
    assert FollowUp.objects.get().response_missing == "unknown"

    # Investigators read the codes (de-identified rows).
    seen = client_for(investigator)
    [row] = seen.get("/api/v1/implantations/").json()["results"]
    assert (row["operative_minutes"], row["operative_minutes_missing"]) == (None, "not_done")
    [row] = seen.get("/api/v1/follow-ups/").json()["results"]
    assert (row["response"], row["response_missing"]) == ("", "unknown")


def schema_components(user):
    client = APIClient()
    client.force_login(user)
    return client.get("/api/v1/schema/", {"format": "json"}).json()["components"]["schemas"]


def test_api_schema_keeps_the_value_types_and_lists_the_codes(db, coordinator, investigator):
    schemas = schema_components(coordinator)  # the writable shapes
    properties = schemas["Implantation"]["properties"]
    assert properties["operative_minutes"]["type"] == "integer"
    assert properties["blood_loss_ml"]["type"] == "integer"
    code = properties["operative_minutes_missing"]
    refs = [part["$ref"] for part in code.get("oneOf", code.get("allOf", [code])) if "$ref" in part]
    assert "#/components/schemas/MissingReasonEnum" in refs
    assert schemas["MissingReasonEnum"]["enum"] == ["unknown", "not_done", "not_applicable"]
    assert schemas["LiverTest"]["properties"]["ast_u_per_l"]["type"] == "integer"
    seen = schema_components(investigator)  # the de-identified shapes
    for model in MODELS:
        for name in (model.__name__, f"Investigator{model.__name__}"):
            component = (schemas if name == model.__name__ else seen)[name]
            for field in model.MISSING_DATA_FIELDS:
                assert companion(field) in component["properties"], (name, field)


def test_api_refuses_a_value_with_a_code_in_the_one_error_shape(db, data_manager_a, centre_a):
    patient = factories.PatientFactory(centre=centre_a)
    surgeon = factories.SurgeonFactory(centre=centre_a)
    client = client_for(data_manager_a)
    response = client.post(
        "/api/v1/implantations/",
        implantation_payload(patient, surgeon, operative_minutes=200, operative_minutes_missing="unknown"),
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": {"operative_minutes_missing": [BOTH_MESSAGE]}}

    # A code sent alone for a field that already holds a value: the same answer.
    implantation = factories.ImplantationFactory(patient=patient, surgeon=surgeon, blood_loss_ml=150)
    url = f"/api/v1/implantations/{implantation.pk}/"
    response = client.patch(
        url, {"blood_loss_ml_missing": "unknown"}, format="json", HTTP_IF_MATCH=client.get(url)["ETag"]
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid input.", "errors": {"blood_loss_ml_missing": [BOTH_MESSAGE]}}
    implantation.refresh_from_db()
    assert (implantation.blood_loss_ml, implantation.blood_loss_ml_missing) == (150, "")

    response = client.post(
        "/api/v1/implantations/",
        implantation_payload(patient, surgeon, implanted_on="2024-04-01", length_of_stay_days_missing="n/a"),
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["length_of_stay_days_missing"]


# --------------------------------------------------------------------------- import


@pytest.fixture
def importable(centre_a):
    factories.SurgeonFactory(centre=centre_a, code="SURG-01")
    return [factories.PatientFactory(centre=centre_a, pseudonym=f"PT-00000{i}") for i in range(1, 4)]


def test_import_takes_a_code_in_the_code_column(data_manager_a, importable):
    row = good_row("PT-000001", blood_loss_ml="", blood_loss_ml_missing=" Unknown ", length_of_stay_days_missing="")
    result = run_import(data_manager_a, [row])
    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    implantation = Implantation.objects.get()
    assert (implantation.blood_loss_ml, implantation.blood_loss_ml_missing) == (None, "unknown")
    assert (implantation.operative_minutes, implantation.operative_minutes_missing) == (240, "")


def test_import_refuses_a_bad_code_and_a_code_with_a_value_on_the_code_column(data_manager_a, importable):
    rows = [
        good_row("PT-000001", operative_minutes="", operative_minutes_missing="n/a"),
        good_row("PT-000002", length_of_stay_days_missing="not_done"),  # a value (5) too
        good_row("PT-000003"),
    ]
    result = run_import(data_manager_a, rows, dry_run=True)
    errors = errors_by_row(result)
    assert errors == {
        1: {
            "operative_minutes_missing": [
                "Unknown missing-data code 'n/a'. Use one of: unknown, not_done, not_applicable, and only when "
                "operative_minutes is empty; or leave this column empty."
            ]
        },
        2: {"length_of_stay_days_missing": [BOTH_MESSAGE]},
    }
    assert not Implantation.objects.exists()


# --------------------------------------------------------------------------- record status dashboard


def test_dashboard_counts_a_coded_operative_field_as_answered(centre_a):
    today = rules.today()
    coded = factories.ImplantationFactory(
        patient__centre=centre_a,
        implanted_on=today - datetime.timedelta(days=3),
        operative_minutes=180,
        **known_missing(Implantation, "blood_loss_ml", reason="not_done"),
        **known_missing(Implantation, "length_of_stay_days", reason="unknown"),
    )
    left_empty = factories.ImplantationFactory(
        patient__centre=centre_a, implanted_on=today - datetime.timedelta(days=3), operative_minutes=180
    )
    left_empty_but_one = factories.ImplantationFactory(
        patient__centre=centre_a,
        implanted_on=today - datetime.timedelta(days=3),
        operative_minutes=180,
        **known_missing(Implantation, "blood_loss_ml"),
    )
    cells = {r["implantation_id"]: r["cells"] for r in dashboard.record_status_rows(Implantation.objects.all())}
    assert cells[coded.pk]["operation"] == dashboard.COMPLETE
    assert cells[left_empty.pk]["operation"] == dashboard.INCOMPLETE
    assert cells[left_empty_but_one.pk]["operation"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- the monthly report's data items

PERIOD = datetime.date(2024, 6, 1)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def row_of(html, item):
    match = re.search(rf'<tr data-item="{re.escape(item)}">(.*?)</tr>', html, re.S)
    assert match, item
    cells = re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def build_data_items_world():
    """Centre HOME: 3 implantations (3 patients), 1 liver test, 1 follow-up; centre OTHER: 5 implantations
    and 2 follow-ups. The other centre's counts are 0 or 5 except in the follow-up (2 records)."""
    home = factories.CentreFactory(code="HOME")
    other = factories.CentreFactory(code="OTHER")
    factories.ReportRecipientFactory(centre=home)
    first = factories.ImplantationFactory(
        patient__centre=home,
        patient__liver_metastases_count=4,
        operative_minutes=180,
        **known_missing(Implantation, "blood_loss_ml", reason="unknown"),
    )
    factories.ImplantationFactory(
        patient__centre=home,
        patient__liver_metastases_count_missing="unknown",
        blood_loss_ml=100,
        **known_missing(Implantation, "operative_minutes", reason="not_done"),
        **known_missing(Implantation, "length_of_stay_days", reason="not_applicable"),
    )
    factories.ImplantationFactory(patient__centre=home)  # nothing entered
    factories.LiverTestFactory(implantation=first, **known_missing(LiverTest, "alp_u_per_l", reason="not_done"))
    factories.FollowUpFactory(implantation=first, **known_missing(FollowUp, "response"))
    for number in range(5):
        implantation = factories.ImplantationFactory(
            patient__centre=other,
            implanted_on=days_after(number),
            operative_minutes=200,
            **known_missing(Implantation, "length_of_stay_days"),
        )
        if number < 2:
            factories.FollowUpFactory(implantation=implantation, response="PR")
    return home, first


def test_data_item_counts_in_a_fixed_number_of_queries(db):
    home, _ = build_data_items_world()
    cut = timezone.now()
    with CaptureQueriesContext(connection) as small:
        data_item_counts(home, data_cut=cut)
    for _ in range(3):
        factories.LiverTestFactory(implantation=factories.ImplantationFactory(patient__centre=home))
    with CaptureQueriesContext(connection) as larger:
        counts = data_item_counts(home, data_cut=timezone.now())
    assert len(small) == len(larger) == 4
    liver = next(f for f in counts["forms"] if f["key"] == "liver_test")
    assert liver["items"][0]["centre"]["n"] == 4


def test_the_report_shows_the_data_items_of_the_centre_and_the_registry(
    db, media, coordinator, django_capture_on_commit_callbacks
):
    home, first = build_data_items_world()
    cut = timezone.now()
    # Entered after the cut: left out.
    factories.ImplantationFactory(patient__centre=home, implanted_on=days_after(40), operative_minutes=150)
    factories.LiverTestFactory(implantation=first, **known_missing(LiverTest, "ast_u_per_l"))

    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(PERIOD, centre_codes=[home.code], data_cut=cut)
    report = CentreReport.objects.get(run=run)
    html = report.html.open("rb").read().decode()

    stored = report.numbers["data_items"]
    assert stored["as_of"] == cut.isoformat()
    operation = next(f for f in stored["forms"] if f["key"] == "implantation")
    minutes = next(i for i in operation["items"] if i["field"] == "operative_minutes")
    assert {k: minutes["centre"][k] for k in ("n", "recorded", "known_missing", "missing")} == {
        "n": 3,
        "recorded": 1,
        "known_missing": 1,
        "missing": 1,
    }
    assert [b["n"] for b in minutes["centre"]["by_code"]] == [0, 1, 0]  # unknown, not done, not applicable

    # Item: centre recorded, known missing (by code), missing; registry recorded, known missing, missing.
    assert row_of(html, "implantation.operative_minutes") == [
        "Operative time",
        "1",
        "1 (not done 1)",
        "1",
        "6",
        "1",
        "1",
    ]
    assert row_of(html, "implantation.blood_loss_ml") == ["Blood loss", "1", "1 (unknown 1)", "1", "1", "1", "6"]
    assert row_of(html, "implantation.length_of_stay_days") == [
        "Length of stay",
        "0",
        "1 (not applicable 1)",
        "2",
        "0",
        "6",
        "2",
    ]
    assert row_of(html, "patient.liver_metastases_count") == [
        "Number of liver metastases",
        "1",
        "1 (unknown 1)",
        "1",
        "1",
        "1",
        "6",
    ]
    assert row_of(html, "patient.bilobar_disease") == ["Bilobar disease", "0", "0", "3", "0", "0", "8"]
    # One panel (the one entered after the cut is left out); the other centre has none.
    assert row_of(html, "liver_test.alp_u_per_l") == ["ALP", "0", "1 (not done 1)", "0", "0", "1", "0"]
    assert row_of(html, "liver_test.ast_u_per_l") == ["AST", "1", "0", "0", "1", "0", "0"]
    # The other centre's 2 follow-ups would be revealed by subtraction: the registry figures are suppressed.
    assert row_of(html, "follow_up.response") == ["Best response", "0", "1 (unknown 1)", "0", "suppressed"]
    assert "known missing" in html and "recorded as unknown, not done or not applicable" in html
    assert "OTHER" not in html
