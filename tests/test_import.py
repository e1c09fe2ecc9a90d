"""Bulk import of implantations: per-row per-column errors, centre scope, all or nothing, history."""

import csv
import datetime
import io
import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import escape
from tablib import Dataset

from registry import rules
from registry.imports import COLUMNS, IMPORT_REASON, ImplantationResource
from registry.models import Implantation, Patient
from registry.vocabulary import CatheterVessel, NeverTreatedReason
from sites.models import Role

from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, user_with_role

IMPORT_URL = "/admin/registry/implantation/import/"
PROCESS_URL = "/admin/registry/implantation/process_import/"
CHANGELIST_URL = "/admin/registry/implantation/"
TEMPLATE_FILE = Path(settings.BASE_DIR) / "docs" / "import_template.csv"


# --- Helpers -------------------------------------------------------------------


def good_row(patient="PT-000001", **overrides):
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        patient=patient,
        surgeon="SURG-01",
        implanted_on="2024-03-01",
        indication="unresectable_first_line",
        approach="laparotomy",
        device="constant_flow_pump",
        operative_minutes="240",
        blood_loss_ml="300",
        length_of_stay_days="5",
    )
    row.update(overrides)
    return row


def to_csv(rows, header=None):
    header = header or COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return out.getvalue()


def run_import(user, rows=None, *, dry_run=False, header=None, text=None):
    """Parse a CSV exactly as the admin does (every cell a string) and import it."""
    text = text if text is not None else to_csv(rows, header)
    dataset = Dataset().load(text, format="csv")
    return ImplantationResource(user=user).import_data(dataset, dry_run=dry_run)


def errors_by_row(result):
    """{row number: {column: [messages]}} from the import result."""
    return {row.number: row.error_dict for row in result.invalid_rows}


def counts():
    return {
        "implantations": Implantation.objects.count(),
        "patients": Patient.objects.count(),
        "implantation_history": Implantation.history.count(),
        "patient_history": Patient.history.count(),
    }


@pytest.fixture
def surgeon_a(centre_a):
    return SurgeonFactory(centre=centre_a, code="SURG-01")


@pytest.fixture
def patients_a(centre_a):
    return [PatientFactory(centre=centre_a, pseudonym=f"PT-00000{i}") for i in range(1, 5)]


@pytest.fixture
def patient_b(centre_b):
    return PatientFactory(centre=centre_b, pseudonym="PT-B00001")


@pytest.fixture
def surgeon_b(centre_b):
    return SurgeonFactory(centre=centre_b, code="SURG-B1")


# --- The resource used directly ------------------------------------------------


def test_dry_run_validates_every_row_and_saves_nothing(data_manager_a, surgeon_a, patients_a):
    before = counts()
    result = run_import(data_manager_a, [good_row("PT-000001"), good_row("PT-000002")], dry_run=True)

    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == 2
    assert counts() == before


def test_import_creates_rows_with_history_by_the_importing_user(data_manager_a, surgeon_a, patients_a):
    rows = [
        good_row("PT-000001", catheter_vessel="", accessory_arteries_ligated="yes", concurrent_hepatectomy="1"),
        good_row(
            "PT-000002",
            implanted_on="2024-04-15",
            never_treated_reason="Extrahepatic_Perfusion",
            device="ARTERIAL_PORT",
        ),
    ]
    result = run_import(data_manager_a, rows)

    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    first = Implantation.objects.get(patient__pseudonym="PT-000001")
    second = Implantation.objects.get(patient__pseudonym="PT-000002")
    assert first.surgeon == surgeon_a
    assert first.implanted_on == datetime.date(2024, 3, 1)
    assert first.catheter_vessel == CatheterVessel.GASTRODUODENAL  # empty cell: the model's default
    assert first.accessory_arteries_ligated and first.concurrent_hepatectomy and not first.concurrent_ablation
    assert (first.operative_minutes, first.blood_loss_ml, first.length_of_stay_days) == (240, 300, 5)
    assert second.never_treated_reason == NeverTreatedReason.EXTRAHEPATIC_PERFUSION  # codes ignore case
    assert second.device == "arterial_port"

    for implantation in (first, second):
        history = list(implantation.history.all())
        assert len(history) == 1
        assert history[0].history_type == "+"
        assert history[0].history_user == data_manager_a
        assert history[0].history_change_reason == IMPORT_REASON
    assert Patient.history.count() == len(patients_a)  # patients are referenced, never touched


@pytest.mark.parametrize("who", ["data_manager_a", "coordinator"])
def test_an_import_never_creates_a_patient_or_sets_a_pseudonym(request, who, surgeon_a, patients_a):
    """Pseudonyms are the registry's (README, "Pseudonyms and the centre's key list"): a row naming one
    the registry does not know, say a hospital number, is an error, for the coordinator too."""
    before = counts()
    result = run_import(request.getfixturevalue(who), [good_row("PT-000001"), good_row("MRN-4471203")])
    assert result.has_validation_errors() and list(errors_by_row(result)) == [2]
    assert list(errors_by_row(result)[2]) == ["patient"]
    assert counts() == before and not Patient.objects.filter(pseudonym="MRN-4471203").exists()


def test_three_good_rows_and_one_bad_row_leave_nothing_behind(data_manager_a, surgeon_a, patients_a):
    before = counts()
    rows = [
        good_row("PT-000001"),
        good_row("PT-000002"),
        good_row("PT-000003", indication="palliative"),
        good_row("PT-000004"),
    ]
    result = run_import(data_manager_a, rows)

    assert result.has_validation_errors()
    assert list(errors_by_row(result)) == [3]
    assert list(errors_by_row(result)[3]) == ["indication"]
    assert counts() == before
    # Nothing is reported as created either.
    assert result.totals["new"] == 0
    assert all(row.object_id is None for row in result.rows)


def test_a_bad_row_rolls_back_even_if_the_caller_asks_for_no_transaction(data_manager_a, surgeon_a, patients_a):
    before = counts()
    text = to_csv([good_row("PT-000001"), good_row("PT-000002", implanted_on="yesterday")])
    dataset = Dataset().load(text, format="csv")
    result = ImplantationResource(user=data_manager_a).import_data(
        dataset, dry_run=False, use_transactions=False, rollback_on_validation_errors=False
    )

    assert result.has_validation_errors()
    assert counts() == before


FUTURE = (rules.today() + datetime.timedelta(days=10)).isoformat()


@pytest.mark.parametrize(
    "overrides, column, message",
    [
        (
            {"implanted_on": "01/03/2024"},
            "implanted_on",
            "Write dates as YYYY-MM-DD. 01/03/2024 is 2024-03-01 (1 March) or 2024-01-03 (3 January).",
        ),
        ({"implanted_on": "2024-02-30"}, "implanted_on", "2024-02-30 is not a date in the calendar."),
        ({"implanted_on": ""}, "implanted_on", "Required: a date written YYYY-MM-DD, e.g. 2024-03-01."),
        ({"implanted_on": FUTURE}, "implanted_on", "The implantation date cannot be in the future."),
        ({"implanted_on": "1955-06-01"}, "implanted_on", "The implantation precedes the patient's birth year (1960)."),
        ({"indication": "palliative"}, "indication", "Unknown code 'palliative'. Use one of: unresectable_first_line,"),
        ({"indication": ""}, "indication", "Required: one of unresectable_first_line,"),
        ({"approach": "open"}, "approach", "Unknown code 'open'. Use one of: laparotomy, laparoscopic, robotic,"),
        ({"device": "Codman 3000"}, "device", "Unknown code 'Codman 3000'. Use one of: constant_flow_pump,"),
        ({"catheter_vessel": "gda"}, "catheter_vessel", "Unknown code 'gda'."),
        ({"never_treated_reason": "refused"}, "never_treated_reason", "Unknown code 'refused'."),
        ({"accessory_arteries_ligated": "maybe"}, "accessory_arteries_ligated", "Write yes or no (or 1/0, true/false)"),
        ({"operative_minutes": "about 3h"}, "operative_minutes", "Enter a whole number, e.g. 240 (got 'about 3h')."),
        ({"blood_loss_ml": "1.5"}, "blood_loss_ml", "Enter a whole number, e.g. 240 (got '1.5')."),
        ({"operative_minutes": "5"}, "operative_minutes", "Ensure this value is greater than or equal to 10."),
        ({"length_of_stay_days": "400"}, "length_of_stay_days", "Ensure this value is less than or equal to 365."),
        ({"blood_loss_ml": "-20"}, "blood_loss_ml", "Ensure this value is greater than or equal to 0."),
        ({"patient": ""}, "patient", "Required: the patient's registry pseudonym."),
        ({"patient": "PT-999999"}, "patient", "No patient 'PT-999999' in your centres."),
        ({"surgeon": "SURG-99"}, "surgeon", "No surgeon 'SURG-99' in your centres."),
    ],
)
def test_a_bad_cell_gives_a_message_on_its_own_column(
    data_manager_a, surgeon_a, patients_a, overrides, column, message
):
    rows = [good_row("PT-000001"), good_row(**{"patient": "PT-000002", **overrides})]
    result = run_import(data_manager_a, rows, dry_run=True)

    assert not result.has_errors()
    errors = errors_by_row(result)
    assert list(errors) == [2]
    assert list(errors[2]) == [column]
    assert errors[2][column][0].startswith(message)


def test_several_bad_cells_in_one_row_are_all_reported(data_manager_a, surgeon_a, patients_a):
    row = good_row("PT-000001", implanted_on="3/1/24", approach="keyhole", operative_minutes="2 h", surgeon="")
    result = run_import(data_manager_a, [row], dry_run=True)

    assert set(errors_by_row(result)[1]) == {"implanted_on", "approach", "operative_minutes", "surgeon"}


def test_a_missing_required_column_is_reported_on_that_column_in_every_row(data_manager_a, surgeon_a, patients_a):
    header = [name for name in COLUMNS if name != "surgeon"]
    result = run_import(data_manager_a, [good_row("PT-000001"), good_row("PT-000002")], header=header, dry_run=True)

    errors = errors_by_row(result)
    assert list(errors) == [1, 2]
    for row_errors in errors.values():
        assert row_errors == {"surgeon": ["The file has no 'surgeon' column (required)."]}


def test_an_unknown_column_is_an_error_not_silently_dropped(data_manager_a, surgeon_a, patients_a):
    header = [("accessory_arteries_tied" if name == "accessory_arteries_ligated" else name) for name in COLUMNS]
    row = good_row("PT-000001", accessory_arteries_tied="yes")
    result = run_import(data_manager_a, [row], header=header, dry_run=True)

    messages = errors_by_row(result)[1][NON_FIELD_ERRORS]
    assert messages[0].startswith("Unknown column(s): accessory_arteries_tied. Allowed columns: patient, surgeon,")


def test_optional_columns_may_be_left_out_and_headers_are_forgiving(data_manager_a, surgeon_a, patients_a):
    text = (
        " Patient ,SURGEON,implanted_on,Indication,approach,device,\n"
        "pt-000001,surg-01,2024-03-01,ADJUVANT,Robotic,programmable_pump,\n"
        ",,,,,,\n"
    )
    result = run_import(data_manager_a, text=text)

    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    assert result.totals["new"] == 1 and result.totals["skip"] == 1  # the empty row is skipped
    implantation = Implantation.objects.get()
    assert (implantation.indication, implantation.approach) == ("adjuvant", "robotic")
    assert implantation.accessory_arteries_ligated is False
    assert implantation.operative_minutes is None


def test_a_duplicate_implantation_is_refused_in_the_registry_and_within_the_file(data_manager_a, surgeon_a, patients_a):
    ImplantationFactory(patient=patients_a[0], surgeon=surgeon_a, implanted_on=datetime.date(2024, 3, 1))
    rows = [good_row("PT-000001"), good_row("PT-000002"), good_row("PT-000002")]
    result = run_import(data_manager_a, rows, dry_run=True)

    errors = errors_by_row(result)
    assert list(errors) == [1, 3]
    assert errors[1]["implanted_on"] == [
        "Patient PT-000001 already has an implantation on 2024-03-01 (in the registry or earlier in this file)."
    ]
    assert list(errors[3]) == ["implanted_on"]


def test_formats_with_native_values_are_read_the_same_way(data_manager_a, surgeon_a, patients_a):
    """The admin also offers JSON, YAML, TSV: numbers, booleans and nulls arrive as such."""
    data = [
        {**good_row("PT-000001"), "operative_minutes": 240, "accessory_arteries_ligated": True, "blood_loss_ml": None},
        {**good_row("PT-000002"), "length_of_stay_days": 4.0, "concurrent_ablation": 1, "operative_minutes": 2.5},
    ]
    dataset = Dataset().load(json.dumps(data), format="json")
    result = ImplantationResource(user=data_manager_a).import_data(dataset, dry_run=True)

    assert errors_by_row(result) == {2: {"operative_minutes": ["Enter a whole number, e.g. 240 (got '2.5')."]}}


# --- Centre scope --------------------------------------------------------------


def test_another_centres_patient_or_surgeon_gets_the_same_message_as_a_missing_one(
    data_manager_a, surgeon_a, patients_a, patient_b, surgeon_b
):
    before = counts()
    rows = [
        good_row("PT-B00001"),  # exists, in centre B
        good_row("PT-NOSUCH"),  # exists nowhere
        good_row("PT-000001", surgeon="SURG-B1"),  # exists, in centre B
        good_row("PT-000002", surgeon="SURG-NOSUCH"),  # exists nowhere
    ]
    result = run_import(data_manager_a, rows)

    errors = errors_by_row(result)
    assert errors[1] == {"patient": ["No patient 'PT-B00001' in your centres."]}
    assert errors[2] == {"patient": ["No patient 'PT-NOSUCH' in your centres."]}
    assert errors[3] == {"surgeon": ["No surgeon 'SURG-B1' in your centres."]}
    assert errors[4] == {"surgeon": ["No surgeon 'SURG-NOSUCH' in your centres."]}
    assert counts() == before


@pytest.mark.parametrize("who", ["centre_lead", "investigator", "nobody"])
def test_users_who_cannot_write_find_no_patient_at_all(who, centre_a, surgeon_a, patients_a):
    user = {
        "centre_lead": lambda: user_with_role(Role.CENTRE_LEAD, centre_a),
        "investigator": lambda: user_with_role(Role.INVESTIGATOR),
        "nobody": lambda: None,
    }[who]()
    result = run_import(user, [good_row("PT-000001")])

    assert errors_by_row(result)[1] == {
        "patient": ["No patient 'PT-000001' in your centres."],
        "surgeon": ["No surgeon 'SURG-01' in your centres."],
    }
    assert Implantation.objects.count() == 0


def test_coordinator_imports_for_any_centre_but_the_model_rules_still_apply(
    coordinator, surgeon_a, patients_a, patient_b, surgeon_b
):
    rows = [good_row("PT-B00001", surgeon="SURG-B1"), good_row("PT-000001", surgeon="SURG-B1")]
    result = run_import(coordinator, rows, dry_run=True)

    assert errors_by_row(result) == {
        2: {"surgeon": ["Surgeon SURG-B1 belongs to another centre than patient PT-000001."]}
    }


def test_the_example_template_imports_cleanly(data_manager_a, centre_a):
    # The names the demo seeds for it (registry.demo.IMPORT_EXAMPLE_NAMES); tests/test_import_every_form.py
    # imports it into a seeded demo registry.
    SurgeonFactory(centre=centre_a, code="DEMO-S01")
    PatientFactory(centre=centre_a, pseudonym="HAI-IMPORT02")
    PatientFactory(centre=centre_a, pseudonym="HAI-IMPORT03")
    text = TEMPLATE_FILE.read_text(encoding="utf-8")
    assert text.splitlines()[0].split(",") == COLUMNS
    assert len(text.strip().splitlines()) == 3

    result = run_import(data_manager_a, text=text)

    assert not result.has_errors() and not result.has_validation_errors(), errors_by_row(result)
    assert Implantation.objects.filter(patient__centre=centre_a).count() == 2


# --- Through the admin ---------------------------------------------------------


def csv_format():
    model_admin = admin.site._registry[Implantation]
    return str([fmt().get_title() for fmt in model_admin.get_import_formats()].index("csv"))


def upload(client, text, name="implantations.csv"):
    upload_file = SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")
    return client.post(IMPORT_URL, {"import_file": upload_file, "format": csv_format(), "resource": "0"})


def confirm(client, response):
    return client.post(PROCESS_URL, dict(response.context["confirm_form"].initial))


def test_admin_import_preview_then_confirm_creates_rows_with_history(client, data_manager_a, surgeon_a, patients_a):
    client.force_login(data_manager_a)
    preview = upload(client, to_csv([good_row("PT-000001"), good_row("PT-000002", implanted_on="2024-04-15")]))

    assert preview.status_code == 200
    assert preview.context["confirm_form"] is not None
    assert Implantation.objects.count() == 0  # the preview is a dry run
    assert Implantation.history.count() == 0

    done = confirm(client, preview)

    assert done.status_code == 302 and done.url == CHANGELIST_URL
    imported = Implantation.objects.order_by("implanted_on")
    assert [i.patient.pseudonym for i in imported] == ["PT-000001", "PT-000002"]
    for implantation in imported:
        (record,) = implantation.history.all()
        assert record.history_user == data_manager_a
        assert record.history_change_reason == IMPORT_REASON
    assert LogEntry.objects.filter(user=data_manager_a).count() == 2
    page = client.get(CHANGELIST_URL)
    assert "2 new" in " ".join(str(m) for m in page.context["messages"])


def test_admin_import_shows_per_row_per_column_errors_and_saves_nothing(client, data_manager_a, surgeon_a, patients_a):
    client.force_login(data_manager_a)
    before = counts()
    rows = [
        good_row("PT-000001"),
        good_row("PT-000002", implanted_on="15/04/2024"),
        good_row("PT-000003"),
        good_row("PT-000004", device="port", operative_minutes="long"),
    ]
    response = upload(client, to_csv(rows))

    assert response.status_code == 200
    assert response.context.get("confirm_form") is None  # no way to confirm a file with errors
    result = response.context["result"]
    assert {row.number: sorted(row.error_dict) for row in result.invalid_rows} == {
        2: ["implanted_on"],
        4: ["device", "operative_minutes"],
    }
    content = response.content.decode()
    assert "Some rows failed to validate" in content
    for message in [
        "Write dates as YYYY-MM-DD. 15/04/2024 is 2024-04-15 (15 April).",
        "Unknown code 'port'. Use one of: constant_flow_pump, programmable_pump, arterial_port.",
        "Enter a whole number, e.g. 240 (got 'long').",
    ]:
        assert escape(message) in content
    assert counts() == before
    assert not LogEntry.objects.exists()


def test_admin_import_cannot_reference_another_centres_patient_or_surgeon(
    client, data_manager_a, surgeon_a, patients_a, patient_b, surgeon_b
):
    client.force_login(data_manager_a)
    response = upload(client, to_csv([good_row("PT-B00001"), good_row("PT-000001", surgeon="SURG-B1")]))

    content = response.content.decode()
    assert escape("No patient 'PT-B00001' in your centres.") in content
    assert escape("No surgeon 'SURG-B1' in your centres.") in content
    assert "CENTRE-B" not in content and "Centre B" not in content
    assert response.context.get("confirm_form") is None
    assert Implantation.objects.count() == 0


def test_admin_confirm_step_validates_again_and_rolls_back(client, data_manager_a, surgeon_a, patients_a):
    """Between preview and confirm someone enters one of the file's cases by hand: nothing of the file is kept."""
    client.force_login(data_manager_a)
    preview = upload(client, to_csv([good_row("PT-000001"), good_row("PT-000002")]))
    assert preview.context["confirm_form"] is not None
    ImplantationFactory(patient=patients_a[1], surgeon=surgeon_a, implanted_on=datetime.date(2024, 3, 1))
    before = counts()

    done = confirm(client, preview)

    assert done.status_code == 302
    assert counts() == before
    assert not Implantation.objects.filter(patient=patients_a[0]).exists()
    assert not LogEntry.objects.exists()  # no admin log entry for rows that were rolled back
    shown = [str(m) for m in client.get(CHANGELIST_URL).context["messages"]]
    assert any(m.startswith("Nothing was imported: 1 row(s) of the file no longer passed the checks") for m in shown)
    assert not any("1 new" in m for m in shown)


def test_import_button_is_shown_only_to_users_who_write_clinical_data(
    client, data_manager_a, centre_lead_a, coordinator
):
    for user, shown in [(data_manager_a, True), (coordinator, True), (centre_lead_a, False)]:
        client.force_login(user)
        response = client.get(CHANGELIST_URL)
        assert response.status_code == 200
        assert (IMPORT_URL in response.content.decode()) is shown, user.username


def test_centre_lead_gets_403_on_the_import_urls(client, centre_lead_a, surgeon_a, patients_a):
    client.force_login(centre_lead_a)

    assert client.get(IMPORT_URL).status_code == 403
    assert upload(client, to_csv([good_row("PT-000001")])).status_code == 403
    forged = {"import_file_name": "x", "original_file_name": "x.csv", "format": csv_format(), "resource": "0"}
    assert client.post(PROCESS_URL, forged).status_code == 403
    assert Implantation.objects.count() == 0


def test_investigator_cannot_reach_the_import_urls(client, investigator, surgeon_a, patients_a):
    """Investigators may not use the admin at all: the admin site sends them to its login page."""
    client.force_login(investigator)

    for response in [client.get(IMPORT_URL), upload(client, to_csv([good_row("PT-000001")]))]:
        assert response.status_code in (302, 403)
        if response.status_code == 302:
            assert response.url.startswith("/admin/login/")
    assert Implantation.objects.count() == 0
