"""Import for every form (issue 13): patients, implantations, HAI doses, complications, liver tests, follow-ups.

Comma, semicolon and tab files, with or without a BOM; one file one transaction; errors in the page and in
a CSV file (row, column, value, message); templates filled with the centre's own codes; the shipped
templates (docs/) import cleanly into a seeded demo registry.
"""

import csv
import datetime
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape

from registry import demo
from registry.imports import (
    IMPORT_REASON,
    RESOURCES,
    ComplicationResource,
    DelimitedCSV,
    FollowUpResource,
    ImplantationResource,
    LiverTestResource,
    PatientResource,
    TreatmentResource,
    demo_template_context,
    detect_delimiter,
    template_context,
    template_csv,
)
from registry.models import (
    Complication,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    Readmission,
    SystemicToxicity,
    Treatment,
)
from registry.rules import today
from registry.services import restore_complication_types
from sites.models import Membership, Role

from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, user_with_role

DOCS = Path(settings.BASE_DIR) / "docs"
IMPLANTED_ON = datetime.date(2024, 1, 15)
MODELS = {
    "patient": Patient,
    "implantation": Implantation,
    "treatment": Treatment,
    "complication": Complication,
    "livertest": LiverTest,
    "followup": FollowUp,
    "perfusioncheck": PerfusionCheck,
    "systemictoxicity": SystemicToxicity,
    "readmission": Readmission,
}


@pytest.fixture(autouse=True)
def vocabulary(db):
    restore_complication_types()


@pytest.fixture
def world(centre_a, centre_b):
    """Centre A: a surgeon, a patient with an implantation, two patients without; centre B: the same names' kin."""
    surgeon = SurgeonFactory(centre=centre_a, code="SURG-A1")
    implantation = ImplantationFactory(
        patient=PatientFactory(centre=centre_a, pseudonym="PT-A00001"), surgeon=surgeon, implanted_on=IMPLANTED_ON
    )
    PatientFactory(centre=centre_a, pseudonym="PT-A00002")
    PatientFactory(centre=centre_a, pseudonym="PT-A00003")
    ImplantationFactory(patient=PatientFactory(centre=centre_b, pseudonym="PT-B00001"), implanted_on=IMPLANTED_ON)
    return implantation


def run(resource_class, user, text, *, dry_run=False):
    """Read ``text`` as the admin reads an uploaded CSV (DelimitedCSV) and import it."""
    dataset = DelimitedCSV(encoding="utf-8-sig").create_dataset(text.encode("utf-8"))
    return resource_class(user=user).import_data(dataset, dry_run=dry_run)


def errors_of(result):
    return {row.number: row.error_dict for row in result.invalid_rows}


def table(resource_class, rows, delimiter=","):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(resource_class.columns)
    for row in rows:
        writer.writerow([row.get(name, "") for name in resource_class.columns])
    return out.getvalue()


def dose(**overrides):
    row = {"patient": "PT-A00001", "implanted_on": "2024-01-15", "given_on": "2024-02-01", "drug": "fudr"}
    row.update(dose="0.12", dose_unit="mg/kg/day")
    row.update(overrides)
    return row


def follow_up(**overrides):
    row = {"patient": "PT-A00001", "implanted_on": "2024-01-15", "contact_on": "2024-06-01", "vital_status": "alive"}
    row.update(overrides)
    return row


def counts():
    return {name: model.objects.count() for name, model in MODELS.items()} | {
        f"{name} history": model.history.count() for name, model in MODELS.items()
    }


# --- Each form imports good rows -----------------------------------------------------------------


@pytest.mark.parametrize("form", list(RESOURCES))
def test_each_forms_template_filled_with_the_centres_codes_imports_cleanly(form, world, data_manager_a):
    """The template the import page offers names the user's own surgeon and patients, and imports as it is."""
    resource = RESOURCES[form]
    context = template_context(data_manager_a)
    assert context["surgeon"] == "SURG-A1" and context["patient"] == "PT-A00001"
    assert context["implanted_on"] == IMPLANTED_ON.isoformat()
    assert {context["new_patient"], context["new_patient_2"]} == {"PT-A00002", "PT-A00003"}
    text = template_csv(resource, context)
    assert text.splitlines()[0].split(",") == list(resource.columns)
    assert "PT-B" not in text and "CENTRE-B" not in text
    model = MODELS[form]
    before = model.objects.count()

    result = run(resource, data_manager_a, text)

    assert not result.has_errors() and not result.has_validation_errors(), errors_of(result)
    created = model.objects.order_by("-pk")[: len(resource.examples)]
    assert model.objects.count() == before + len(resource.examples) == before + result.totals["new"]
    for record in created:
        (entry,) = record.history.all()
        assert entry.history_user == data_manager_a
        assert entry.history_change_reason == IMPORT_REASON


def test_imported_values_are_the_models_values(world, data_manager_a):
    rows = [
        dose(dose="0,25", drug="FUDR"),  # a decimal comma (Excel in French, Dutch or Italian settings)
        dose(given_on="2024-03-01", dose_change="reduced", hold_reason="alp", dose_change_reason="Raised ALP"),
    ]
    result = run(TreatmentResource, data_manager_a, table(TreatmentResource, rows, delimiter=";"))
    assert not result.has_validation_errors(), errors_of(result)
    first, second = Treatment.objects.order_by("given_on")
    assert (first.implantation, first.drug, str(first.dose), first.dose_change) == (world, "fudr", "0.250", "full")
    assert (second.dose_change, second.dose_change_reason) == ("reduced", "Raised ALP")

    complication = {"patient": "pt-a00001", "implanted_on": "2024-01-15", "type": "Catheter_Occlusion"}
    complication.update(onset_on="2024-02-10", grade="3", clavien_dindo="IIIa", related_to_pump="yes")
    result = run(ComplicationResource, data_manager_a, table(ComplicationResource, [complication]))
    assert not result.has_validation_errors(), errors_of(result)
    imported = Complication.objects.get()
    assert (imported.type.code, imported.grade, imported.clavien_dindo, imported.management) == (
        "catheter_occlusion",
        3,
        "IIIa",
        "none",  # an empty cell: the model's default
    )
    assert imported.related_to_pump and not imported.pump_lost


def test_a_patient_file_creates_patients_with_generated_pseudonyms_in_the_users_centre(world, data_manager_a, centre_a):
    rows = [{"birth_year": "1962", "sex": "male", "primary_tumour": "colorectal", "bilobar_disease": ""}]
    result = run(PatientResource, data_manager_a, table(PatientResource, rows))
    assert not result.has_validation_errors(), errors_of(result)
    patient = Patient.objects.get(birth_year=1962)
    assert patient.centre == centre_a and patient.pseudonym.startswith("HAI-")
    assert patient.bilobar_disease is None and patient.prior_systemic_lines == 0

    # A data manager may not set a pseudonym (as in the admin); a centre not theirs is "not found".
    rows = [
        {"pseudonym": "MRN-4471203", "birth_year": "1962", "sex": "male", "primary_tumour": "colorectal"},
        {"centre": "CENTRE-B", "birth_year": "1962", "sex": "male", "primary_tumour": "colorectal"},
    ]
    result = run(PatientResource, data_manager_a, table(PatientResource, rows))
    errors = errors_of(result)
    assert list(errors[1]) == ["pseudonym"] and errors[1]["pseudonym"][0].startswith("Leave the pseudonym empty")
    assert errors[2] == {"centre": ["No centre 'CENTRE-B' in your centres."]}
    assert not Patient.objects.filter(pseudonym="MRN-4471203").exists()


# --- All or nothing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource_class, rows, bad_row, column",
    [
        (TreatmentResource, [dose(), dose(given_on="2024-02-15"), dose(given_on="2024-03-01", dose="9")], 3, "dose"),
        (FollowUpResource, [follow_up(), follow_up(contact_on="2024-09-01", vital_status="asleep")], 2, "vital_status"),
        (
            PatientResource,
            [{"birth_year": "1950", "sex": "female", "primary_tumour": "colorectal"}, {"birth_year": "1950"}],
            2,
            "sex",
        ),
    ],
)
def test_a_bad_row_means_nothing_of_the_file_is_written(world, data_manager_a, resource_class, rows, bad_row, column):
    before = counts()
    result = run(resource_class, data_manager_a, table(resource_class, rows))

    assert list(errors_of(result)) == [bad_row]
    assert column in errors_of(result)[bad_row]
    assert counts() == before
    assert result.totals["new"] == 0


def test_a_row_repeating_a_record_is_refused_so_a_file_imported_twice_is_refused(world, data_manager_a):
    text = table(FollowUpResource, [follow_up()])
    assert not run(FollowUpResource, data_manager_a, text).has_validation_errors()

    result = run(FollowUpResource, data_manager_a, text)
    assert errors_of(result) == {
        1: {
            "contact_on": [
                "Patient PT-A00001 already has this follow-up on 2024-06-01 for the implantation of 2024-01-15 "
                "(in the registry or earlier in this file)."
            ]
        }
    }
    assert FollowUp.objects.count() == 1


# --- Delimiters and the byte order mark --------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_comma_semicolon_and_tab_files_with_or_without_a_bom(world, data_manager_a, delimiter, bom):
    text = bom + table(
        LiverTestResource,
        [{"patient": "PT-A00001", "implanted_on": "2024-01-15", "measured_on": "2024-02-01", "alp_u_per_l": "180"}],
        delimiter,
    )
    assert detect_delimiter(text.removeprefix("\ufeff")) == delimiter

    result = run(LiverTestResource, data_manager_a, text)

    assert not result.has_validation_errors(), errors_of(result)
    assert LiverTest.objects.get().alp_u_per_l == 180


def test_a_semicolon_file_as_excel_saves_it(world, data_manager_a):
    """Excel in French settings: semicolons, a BOM, CRLF, a decimal comma, a header in another case."""
    text = "\ufeffPatient;Implanted_On;given_on;drug;dose;dose_unit\r\nPT-A00001;2024-01-15;2024-02-01;fudr;0,1;mg/kg/day\r\n"
    result = run(TreatmentResource, data_manager_a, text)
    assert not result.has_validation_errors(), errors_of(result)
    assert str(Treatment.objects.get().dose) == "0.100"


def test_a_single_column_file_is_read_as_comma_separated():
    assert detect_delimiter("patient\nPT-1\n") == ","
    assert detect_delimiter("") == ","


# --- Scope and messages ----------------------------------------------------------------------------


def test_another_centres_patient_is_not_found_like_a_missing_one(world, data_manager_a):
    before = counts()
    rows = [
        follow_up(patient="PT-B00001"),  # exists, in centre B, with an implantation on that date
        follow_up(patient="PT-NOSUCH"),  # exists nowhere
        follow_up(implanted_on="2024-01-16"),  # the patient, but no implantation on that date
        follow_up(implanted_on="15/01/2024"),  # not ISO: the message gives the ISO form
        follow_up(patient=""),
    ]
    result = run(FollowUpResource, data_manager_a, table(FollowUpResource, rows))

    assert errors_of(result) == {
        1: {"patient": ["No patient 'PT-B00001' in your centres."]},
        2: {"patient": ["No patient 'PT-NOSUCH' in your centres."]},
        3: {"implanted_on": ["Patient PT-A00001 has no implantation on 2024-01-16."]},
        4: {"implanted_on": ["Write dates as YYYY-MM-DD. 15/01/2024 is 2024-01-15 (15 January)."]},
        5: {"patient": ["Required: the patient's registry pseudonym."]},
    }
    assert counts() == before


def test_a_missing_parent_column_and_a_bad_type_code_are_named(world, data_manager_a):
    text = "patient,type,onset_on,grade\nPT-A00001,blocked_catheter,2024-02-01,2\n"
    result = run(ComplicationResource, data_manager_a, text)

    errors = errors_of(result)[1]
    assert errors["implanted_on"] == ["The file has no 'implanted_on' column (required)."]
    assert errors["type"][0].startswith("Unknown complication type 'blocked_catheter'. Use one of: ")
    assert "catheter_occlusion" in errors["type"][0]


def test_the_model_rules_apply_to_child_rows(world, data_manager_a):
    rows = [follow_up(contact_on="2023-12-01"), follow_up(contact_on="2024-07-01", vital_status="dead")]
    result = run(FollowUpResource, data_manager_a, table(FollowUpResource, rows), dry_run=True)

    errors = errors_of(result)
    assert errors[1] == {"contact_on": ["This date precedes the implantation (2024-01-15)."]}
    assert 2 in errors


def test_error_records_name_row_column_value_and_message(world, data_manager_a):
    rows = [dose(), dose(given_on="2024/13/01", dose="lots")]
    result = run(TreatmentResource, data_manager_a, table(TreatmentResource, rows))

    by_column = {record["column"]: record for record in result.error_records}
    assert set(by_column) == {"given_on", "dose"}
    assert by_column["dose"] == {
        "row": 2,
        "column": "dose",
        "value": "lots",
        "message": "Enter a number, e.g. 0.25 (got 'lots').",
    }
    assert by_column["given_on"]["row"] == 2 and by_column["given_on"]["value"] == "2024/13/01"


# --- Through the admin -------------------------------------------------------------------------------


def url(form, action):
    return f"/admin/registry/{form}/{action}"


def csv_format(model):
    model_admin = admin.site._registry[model]
    return str([fmt().get_title() for fmt in model_admin.get_import_formats()].index("csv"))


def upload(client, model, text, name="file.csv"):
    form = model._meta.model_name
    upload_file = SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")
    return client.post(url(form, "import/"), {"import_file": upload_file, "format": csv_format(model), "resource": "0"})


def read_csv(response):
    text = b"".join(response.streaming_content if response.streaming else [response.content]).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_admin_lists_the_errors_in_the_page_and_in_a_csv_of_the_users_own(world, client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    before = counts()
    text = table(FollowUpResource, [follow_up(), follow_up(contact_on="2024-09-01", vital_status="asleep")], ";")

    response = upload(client, FollowUp, text)

    assert response.status_code == 200 and response.context.get("confirm_form") is None
    content = response.content.decode()
    assert 'id="import-errors"' in content
    assert "Row 2, column <code>vital_status</code>" in content
    assert escape("Unknown code 'asleep'. Use one of: alive, dead.") in content
    assert 'class="validation-error-container"' not in content  # not hidden behind a hover
    assert "import-table-scroll" in content
    assert counts() == before

    errors = client.get(url("followup", "import/errors.csv"))
    assert errors.status_code == 200 and errors["Content-Type"].startswith("text/csv")
    assert read_csv(errors) == [
        {
            "row": "2",
            "column": "vital_status",
            "value": "asleep",
            "message": "Unknown code 'asleep'. Use one of: alive, dead.",
        }
    ]
    # Another form's errors, and another user's, are not these.
    assert client.get(url("treatment", "import/errors.csv")).status_code == 404
    colleague = user_with_role(Role.DATA_MANAGER, centre_a, username="dm-a2")
    client.force_login(colleague)
    assert client.get(url("followup", "import/errors.csv")).status_code == 404


def test_admin_imports_a_good_file_for_each_form_and_clears_the_errors(world, client, data_manager_a):
    client.force_login(data_manager_a)
    upload(client, FollowUp, table(FollowUpResource, [follow_up(vital_status="asleep")]))
    assert client.get(url("followup", "import/errors.csv")).status_code == 200

    preview = upload(client, FollowUp, table(FollowUpResource, [follow_up()], "\t"))
    assert preview.context["confirm_form"] is not None
    assert client.get(url("followup", "import/errors.csv")).status_code == 404
    done = client.post(url("followup", "process_import/"), dict(preview.context["confirm_form"].initial))
    assert done.status_code == 302
    (record,) = FollowUp.objects.all()
    assert record.history.get().history_change_reason == IMPORT_REASON


@pytest.mark.parametrize("form", list(RESOURCES))
def test_each_forms_import_page_offers_its_template_with_the_centres_codes(form, world, client, data_manager_a):
    client.force_login(data_manager_a)
    page = client.get(url(form, "import/"))
    assert page.status_code == 200
    assert url(form, "import/template.csv") in page.content.decode()

    response = client.get(url(form, "import/template.csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = read_csv(response)
    assert list(rows[0]) == list(RESOURCES[form].columns)
    text = response.content.decode("utf-8-sig")
    assert "PT-B" not in text and "CENTRE-B" not in text
    if form == "implantation":
        assert {row["surgeon"] for row in rows} == {"SURG-A1"}
    elif form != "patient":
        assert {row["patient"] for row in rows} == {"PT-A00001"}


@pytest.mark.parametrize("form", list(RESOURCES))
def test_users_who_cannot_write_cannot_import_nor_download(form, world, client, centre_lead_a):
    client.force_login(centre_lead_a)
    for action in ("import/", "import/template.csv", "import/errors.csv"):
        assert client.get(url(form, action)).status_code == 403


# --- The shipped templates import into the demo registry -------------------------------------------


def test_the_shipped_templates_are_the_resources_templates_for_the_demos_names():
    context = demo_template_context()
    assert (DOCS / "import_template.csv").read_text(encoding="utf-8") == template_csv(ImplantationResource, context)
    for form, resource in RESOURCES.items():
        assert (DOCS / "import_templates" / f"{form}.csv").read_text(encoding="utf-8") == template_csv(
            resource, context
        ), f"docs/import_templates/{form}.csv is out of date: write template_csv(resource, demo_template_context())"


def test_the_shipped_templates_import_cleanly_into_the_demo_registry(db):
    """``seed_demo`` seeds the surgeon and patients they name (registry.demo.IMPORT_EXAMPLE_NAMES)."""
    demo.seed_registry(2, 20, 5, reference_date=min(demo.REFERENCE_DATE, today()), import_examples=True)
    names = demo.IMPORT_EXAMPLE_NAMES
    centre = Patient.objects.get(pseudonym=names["patient"]).centre
    manager = Membership.objects.get(role=Role.DATA_MANAGER, centre=centre).user

    files = [DOCS / "import_template.csv", *(DOCS / "import_templates" / f"{form}.csv" for form in RESOURCES)]
    for path in files:
        form = "implantation" if path.name == "import_template.csv" else path.stem
        resource, model = RESOURCES[form], MODELS[form]
        before = model.objects.count()
        result = run(resource, manager, path.read_text(encoding="utf-8"))
        assert not result.has_errors() and not result.has_validation_errors(), (path.name, errors_of(result))
        assert model.objects.count() == before + len(resource.examples), path.name
        if form == "implantation":  # imported once (docs/import_template.csv); the copy would be duplicates
            assert errors_of(run(resource, manager, path.read_text(encoding="utf-8"), dry_run=True))
            Implantation.objects.filter(patient__pseudonym__in=[names["new_patient"], names["new_patient_2"]]).delete()


@pytest.mark.parametrize("form", list(RESOURCES))
def test_each_forms_list_has_the_import_button_for_a_data_manager(form, world, client, data_manager_a):
    client.force_login(data_manager_a)
    response = client.get(f"/admin/registry/{form}/")
    assert response.status_code == 200
    assert url(form, "import/") in response.content.decode()
