"""The data dictionary (issue 13): generated from the models, served as CSV and HTML in the admin and by the API.

Checked against the models themselves, so that a field added to a form cannot be left out of it.
"""

import csv
import io

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from api import serializers as api_serializers
from registry import data_dictionary
from registry.models import (
    Complication,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    PumpModel,
    Readmission,
    SystemicTherapyLine,
    SystemicToxicity,
    Treatment,
)
from sites.models import Role

from .factories import user_with_role

FORM_MODELS = {
    "patient": Patient,
    "implantation": Implantation,
    "treatment": Treatment,
    "complication": Complication,
    "liver_test": LiverTest,
    "follow_up": FollowUp,
    "perfusion_check": PerfusionCheck,
    "systemic_therapy_line": SystemicTherapyLine,
    "systemic_toxicity": SystemicToxicity,
    "readmission": Readmission,
    "pump_model": PumpModel,
}
INTERNAL = {"id", "version", "created_at"}


def by_form_and_field(rows):
    return {(row["form"], row["field"]): row for row in rows}


def editable_fields(model):
    return [f for f in model._meta.concrete_fields if f.editable and not f.primary_key and f.name not in INTERNAL]


def codes_of(allowed_values):
    return {item.split(" = ", 1)[0] for item in allowed_values.split("; ")}


def test_every_form_a_data_manager_fills_is_in_it():
    assert dict(data_dictionary.FORMS) == FORM_MODELS


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_every_editable_field_of_each_form_appears_once_and_nothing_else(form):
    model = FORM_MODELS[form]
    listed = [row["field"] for row in data_dictionary.rows() if row["form"] == form]
    assert sorted(listed) == sorted(f.name for f in editable_fields(model))
    assert not INTERNAL & set(listed)


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_a_choice_field_lists_exactly_its_choices(form):
    rows = by_form_and_field(data_dictionary.rows())
    for field in editable_fields(FORM_MODELS[form]):
        row = rows[(form, field.name)]
        if field.choices and not field.is_relation:
            assert row["type"] == "choice", field.name
            assert codes_of(row["allowed_values"]) == {str(code) for code, _ in field.flatchoices}, field.name
            for code, label in field.flatchoices:
                assert f"{code} = {label}" in row["allowed_values"]
        else:
            assert row["type"] != "choice", field.name


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_each_field_has_a_type_and_references_say_what_they_refer_to(form):
    rows = by_form_and_field(data_dictionary.rows())
    allowed_types = {"date", "integer", "decimal", "text", "yes/no", "choice", "reference", "set of choices"}
    for field in editable_fields(FORM_MODELS[form]):
        row = rows[(form, field.name)]
        assert row["type"] in allowed_types, field.name
        assert row["label"], field.name
        assert row["required"] == (not field.blank and not field.has_default()), field.name
        if field.is_relation:
            assert row["type"] == "reference" and row["allowed_values"], field.name


def test_references_name_what_the_api_and_import_take():
    rows = by_form_and_field(data_dictionary.rows())
    assert "surgeon code" in rows[("implantation", "surgeon")]["allowed_values"]
    assert "centre code" in rows[("patient", "centre")]["allowed_values"]
    assert "complication type code" in rows[("complication", "type")]["allowed_values"]
    assert "implantation" in rows[("treatment", "implantation")]["allowed_values"]


def test_the_richer_record_fields_are_listed_with_their_allowed_values():
    """Issue 14: the pump catalogue, the arterial variants, the coded sets and the refill's liver tests."""
    rows = by_form_and_field(data_dictionary.rows())
    for form, field in [
        ("patient", "ecog"),
        ("patient", "cea_ng_per_ml"),
        ("patient", "clinical_risk_score"),
        ("patient", "braf_status"),
        ("patient", "msi_status"),
        ("implantation", "catheter_tip_position"),
        ("implantation", "replaced_common_hepatic_artery"),
        ("implantation", "cholecystectomy"),
        ("treatment", "hold_reason"),
        ("treatment", "body_weight_kg"),
        ("perfusion_check", "correction"),
        ("pump_model", "nominal_flow_ml_per_day"),
    ]:
        assert (form, field) in rows, (form, field)
    assert rows[("patient", "ecog")]["missing_code_field"] == "ecog_missing"
    assert rows[("patient", "cea_ng_per_ml")]["unit"] == "ng/mL"
    assert rows[("treatment", "body_weight_kg")]["unit"] == "kg"
    assert rows[("pump_model", "nominal_flow_ml_per_day")]["unit"] == "mL/day"
    assert codes_of(rows[("implantation", "replaced_left_hepatic_artery")]["allowed_values"]) == {
        "ligated",
        "embolised",
        "none",
    }
    assert codes_of(rows[("pump_model", "kind")]["allowed_values"]) == {"constant_flow_pump", "programmable_pump"}
    assert "pump catalogue" in rows[("implantation", "pump_model")]["allowed_values"]
    assert "liver_test_measured_on" in rows[("treatment", "liver_test")]["allowed_values"]
    for form, field in [("patient", "extrahepatic_sites"), ("perfusion_check", "extrahepatic_sites")]:
        row = rows[(form, field)]
        vocabulary = FORM_MODELS[form]._meta.get_field(field).vocabulary
        assert row["type"] == "set of choices"
        assert codes_of(row["allowed_values"]) == set(vocabulary.values)


def test_units_come_from_the_verbose_names():
    rows = by_form_and_field(data_dictionary.rows())
    assert rows[("implantation", "operative_minutes")]["unit"] == "min"
    assert rows[("implantation", "blood_loss_ml")]["unit"] == "mL"
    assert rows[("implantation", "length_of_stay_days")]["unit"] == "days"
    assert rows[("liver_test", "ast_u_per_l")]["unit"] == "U/L"
    assert rows[("liver_test", "bilirubin_umol_per_l")]["unit"] == "µmol/L"
    assert rows[("treatment", "dose")]["unit"] == "as given in dose_unit"
    assert "mg/kg/day" in codes_of(rows[("treatment", "dose_unit")]["allowed_values"])
    # The label loses the unit it was written with; the type follows the column.
    operative = rows[("implantation", "operative_minutes")]
    assert (operative["label"], operative["type"]) == ("Operative time", "integer")
    assert rows[("liver_test", "bilirubin_umol_per_l")]["type"] == "decimal"
    assert rows[("implantation", "implanted_on")]["type"] == "date"
    assert rows[("implantation", "concurrent_hepatectomy")]["type"] == "yes/no"


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_ranges_are_the_validators(form):
    from django.core import validators

    rows = by_form_and_field(data_dictionary.rows())
    for field in editable_fields(FORM_MODELS[form]):
        limits = {type(v): v.limit_value for v in field._validators if hasattr(v, "limit_value")}
        high = limits.get(validators.MaxValueValidator)
        low = limits.get(validators.MinValueValidator)
        text = rows[(form, field.name)]["range"]
        if high is not None:
            assert text.endswith(f"–{high}"), (field.name, text)
        if low is not None:
            assert str(low) in text, (field.name, text)
        if high is None and low is None:
            assert text == "", (field.name, text)
    assert rows[("implantation", "operative_minutes")]["range"] == "10–1440"
    assert rows[("complication", "grade")]["range"] == "1–5"


@pytest.mark.parametrize("form", sorted(FORM_MODELS))
def test_missing_data_code_fields_are_the_models_companions(form):
    model = FORM_MODELS[form]
    coded = set(getattr(model, "MISSING_DATA_FIELDS", ()))
    for row in data_dictionary.rows():
        if row["form"] != form:
            continue
        expected = f"{row['field']}_missing" if row["field"] in coded else ""
        assert row["missing_code_field"] == expected, row["field"]
        if expected:  # the companion is itself a field of the form, with the missing-data codes
            companion = by_form_and_field(data_dictionary.rows())[(form, expected)]
            assert codes_of(companion["allowed_values"]) == {"unknown", "not_done", "not_applicable"}


def test_free_text_notes_are_listed_and_marked_as_the_api_hides_them():
    marked = {(row["form"], row["field"]) for row in data_dictionary.rows() if row["note"]}
    assert marked == {("implantation", "never_treated_note"), ("treatment", "dose_change_reason")}
    hidden = set(api_serializers.ImplantationSerializer.Meta.identifying_fields) | set(
        api_serializers.TreatmentSerializer.Meta.identifying_fields
    )
    assert {field for _, field in marked} <= hidden


def test_the_csv_has_one_row_per_field():
    rows = list(csv.DictReader(io.StringIO(data_dictionary.as_csv())))
    assert len(rows) == len(data_dictionary.rows())
    assert list(rows[0]) == list(data_dictionary.COLUMNS)
    assert {row["required"] for row in rows} == {"yes", "no"}


# --- The API ---------------------------------------------------------------------------------------


def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.INVESTIGATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.COORDINATOR])
def test_every_role_reads_the_data_dictionary(role, centre_a):
    user = user_with_role(role, None if role in (Role.INVESTIGATOR, Role.COORDINATOR) else centre_a)
    response = api_client(user).get("/api/v1/data-dictionary/")
    assert response.status_code == 200
    assert response.json() == data_dictionary.rows()


@pytest.mark.django_db
def test_api_lists_every_field_of_every_form_with_type_unit_and_allowed_values(investigator):
    body = api_client(investigator).get("/api/v1/data-dictionary/").json()
    listed = {(row["form"], row["field"]) for row in body}
    for form, model in FORM_MODELS.items():
        assert {(form, f.name) for f in editable_fields(model)} <= listed
    rows = by_form_and_field(body)
    operative = rows[("implantation", "operative_minutes")]
    assert (operative["type"], operative["unit"], operative["missing_code_field"]) == (
        "integer",
        "min",
        "operative_minutes_missing",
    )
    assert "adjuvant = " in rows[("implantation", "indication")]["allowed_values"]


@pytest.mark.django_db
def test_api_serves_it_as_csv_too(investigator):
    response = api_client(investigator).get("/api/v1/data-dictionary/", {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(data_dictionary.rows())
    assert {"form", "field", "type", "unit", "allowed_values"} <= set(rows[0])


@pytest.mark.django_db
def test_api_refuses_anonymous_visitors_and_unknown_parameters(client, investigator):
    assert APIClient().get("/api/v1/data-dictionary/").status_code in (401, 403)
    assert api_client(investigator).get("/api/v1/data-dictionary/", {"form": "patient"}).status_code == 400


@pytest.mark.django_db
def test_api_schema_documents_it(client, investigator):
    client.force_login(investigator)
    schema = client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    assert "/api/v1/data-dictionary/" in schema.json()["paths"]


# --- The admin -------------------------------------------------------------------------------------


def test_the_admin_page_lists_every_field_and_downloads_csv(client, data_manager_a):
    client.force_login(data_manager_a)
    url = reverse("admin:registry_data_dictionary")
    assert url == "/admin/registry/data-dictionary/"
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for row in data_dictionary.rows():
        assert f'id="field-{row["form"]}-{row["field"]}"' in html
    download = client.get(url, {"format": "csv"})
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert "attachment" in download["Content-Disposition"]
    assert download.content.decode() == data_dictionary.as_csv()


def test_the_admin_index_links_it(client, data_manager_a):
    client.force_login(data_manager_a)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:registry_data_dictionary") in index
    changelist = client.get(reverse("admin:registry_implantation_changelist")).content.decode()
    assert reverse("admin:registry_data_dictionary") in changelist


def test_the_admin_page_needs_a_login(client, db):
    response = client.get(reverse("admin:registry_data_dictionary"))
    assert response.status_code == 302 and "login" in response["Location"]
