"""The richer record in the file import (issue 14): each new column is read as the model holds it, and a bad
value in any kind of new column is a row error on that column with nothing of the file written."""

import csv
import datetime
import io
from decimal import Decimal

import pytest

from registry.imports import (
    DelimitedCSV,
    ImplantationResource,
    PatientResource,
    PerfusionCheckResource,
    ReadmissionResource,
    SystemicToxicityResource,
    TreatmentResource,
)
from registry.models import (
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    Readmission,
    SystemicToxicity,
    Treatment,
)

from .factories import ImplantationFactory, LiverTestFactory, PatientFactory, PumpModelFactory, SurgeonFactory

IMPLANTED_ON = datetime.date(2024, 1, 15)
PARENT = {"patient": "PT-A00001", "implanted_on": "2024-01-15"}
MODELS = (Patient, Implantation, Treatment, PerfusionCheck, SystemicToxicity, Readmission, LiverTest)


@pytest.fixture
def world(centre_a, centre_b):
    """Centre A: a surgeon, a patient with a pump implantation and its liver tests of 2024-02-10, a new patient;
    centre B: another implantation with liver tests of the same day."""
    pump = PumpModelFactory(name="Codman 3000", reservoir_volume_ml=Decimal("30.0"))
    PumpModelFactory(name="Retired pump", active=False)
    PumpModelFactory(name="SynchroMed II", kind="programmable_pump", nominal_flow_ml_per_day=None)
    surgeon = SurgeonFactory(centre=centre_a, code="SURG-A1")
    implantation = ImplantationFactory(
        patient=PatientFactory(centre=centre_a, pseudonym="PT-A00001"),
        surgeon=surgeon,
        implanted_on=IMPLANTED_ON,
        pump_model=pump,
    )
    LiverTestFactory(implantation=implantation, measured_on=datetime.date(2024, 2, 10))
    PatientFactory(centre=centre_a, pseudonym="PT-A00002")
    other = ImplantationFactory(
        patient=PatientFactory(centre=centre_b, pseudonym="PT-B00001"), implanted_on=IMPLANTED_ON
    )
    LiverTestFactory(implantation=other, measured_on=datetime.date(2024, 2, 12))
    return implantation


def table(resource_class, rows):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(resource_class.columns)
    for row in rows:
        writer.writerow([row.get(name, "") for name in resource_class.columns])
    return out.getvalue()


def run(resource_class, user, rows):
    dataset = DelimitedCSV(encoding="utf-8-sig").create_dataset(table(resource_class, rows).encode("utf-8"))
    return resource_class(user=user).import_data(dataset, dry_run=False)


def errors_of(result):
    return {row.number: row.error_dict for row in result.invalid_rows}


def counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def patient(**overrides):
    return {"birth_year": "1961", "sex": "female", "primary_tumour": "colorectal", **overrides}


def implantation(**overrides):
    row = {"patient": "PT-A00002", "surgeon": "SURG-A1", "implanted_on": "2024-03-01", "indication": "adjuvant"}
    return {**row, "approach": "laparotomy", "device": "constant_flow_pump", **overrides}


def refill(**overrides):
    row = {**PARENT, "given_on": "2024-02-12", "drug": "fudr", "dose": "0.12", "dose_unit": "mg/kg/day"}
    return {**row, "dose_change": "full", **overrides}


def perfusion_check(**overrides):
    row = {**PARENT, "checked_on": "2024-01-15", "timing": "intraoperative", "method": "methylene_blue"}
    return {**row, "extrahepatic_perfusion": "no", **overrides}


# --- Good rows: every new column -----------------------------------------------------------------


def test_the_patients_case_mix_columns(world, data_manager_a):
    row = patient(extrahepatic_disease="yes", extrahepatic_sites="Peritoneum; lung", ecog="2", cea_ng_per_ml="210,5")
    row.update(clinical_risk_score="4", braf_status="V600E", msi_status="msi_high")
    second = patient(birth_year="1950", ecog_missing="unknown", cea_ng_per_ml_missing="not_done")
    result = run(PatientResource, data_manager_a, [row, second])
    assert not result.has_validation_errors(), errors_of(result)
    first, other = Patient.objects.filter(birth_year__in=[1961, 1950]).order_by("-birth_year")
    assert first.extrahepatic_sites == ["lung", "peritoneum"]
    assert (first.ecog, first.cea_ng_per_ml, first.clinical_risk_score) == (2, Decimal("210.5"), 4)
    assert (first.braf_status, first.msi_status) == ("v600e", "msi_high")
    assert (other.ecog, other.ecog_missing, other.cea_ng_per_ml_missing, other.extrahepatic_sites) == (
        None,
        "unknown",
        "not_done",
        [],
    )


def test_the_implantations_pump_and_anatomy_columns(world, data_manager_a):
    row = implantation(pump_model="codman 3000", catheter_tip_position="gastroduodenal_origin")
    row.update(replaced_left_hepatic_artery="Ligated", accessory_right_hepatic_artery="none")
    row.update(gastroduodenal_branches_ligated="yes", right_gastric_artery_ligated="no", cholecystectomy="")
    result = run(ImplantationResource, data_manager_a, [row])
    assert not result.has_validation_errors(), errors_of(result)
    imported = Implantation.objects.get(patient__pseudonym="PT-A00002")
    assert imported.pump_model.name == "Codman 3000"
    assert imported.catheter_tip_position == "gastroduodenal_origin"
    assert [(str(v), handling) for v, handling in imported.hepatic_artery_variants] == [
        ("replaced_left", "ligated"),
        ("accessory_right", "none"),
    ]
    assert imported.replaced_common_hepatic_artery == ""
    assert (imported.gastroduodenal_branches_ligated, imported.right_gastric_artery_ligated) == (True, False)
    assert imported.cholecystectomy is None  # an empty cell: not recorded


def test_the_refills_columns_and_its_liver_tests_by_their_date(world, data_manager_a):
    first = refill(
        given_on="2024-01-29", body_weight_kg="70", filled_volume_ml="30", drug_concentration_mg_per_ml="8.4"
    )
    # 30 mL filled, 16 mL returned 14 days later: 1.00 mL/day; 7 mg/mL x 1.00 / 70 kg = 0.100 mg/kg/day.
    second = refill(dose="0.1", dose_change="reduced", hold_reason="AST", body_weight_kg="70", returned_volume_ml="16")
    second.update(filled_volume_ml="30", drug_concentration_mg_per_ml="7", dexamethasone_mg="25", heparin_units="30000")
    second.update(liver_test_measured_on="2024-02-10")
    result = run(TreatmentResource, data_manager_a, [first, second])
    assert not result.has_validation_errors(), errors_of(result)
    linked = Treatment.objects.get(given_on=datetime.date(2024, 2, 12))
    assert linked.liver_test == LiverTest.objects.get(implantation=world)
    assert (linked.hold_reason, linked.body_weight_kg, linked.returned_volume_ml, linked.filled_volume_ml) == (
        "ast",
        Decimal("70"),
        Decimal("16"),
        Decimal("30"),
    )
    assert (linked.drug_concentration_mg_per_ml, linked.dexamethasone_mg, linked.heparin_units) == (
        Decimal("7"),
        Decimal("25"),
        30000,
    )
    assert Treatment.objects.get(given_on=datetime.date(2024, 1, 29)).liver_test is None


def test_the_perfusion_findings_toxicities_and_readmissions(world, data_manager_a):
    row = perfusion_check(extrahepatic_perfusion="yes", extrahepatic_sites="stomach;abdominal_wall", modality="")
    row.update(incomplete_hepatic_perfusion="no", correction="vessel_embolised", repeat_check_normal="yes")
    result = run(PerfusionCheckResource, data_manager_a, [row])
    assert not result.has_validation_errors(), errors_of(result)
    check = PerfusionCheck.objects.get()
    assert check.modality == "intraoperative_dye"  # from the method, the cell being empty
    assert check.extrahepatic_sites == ["stomach", "abdominal_wall"]
    assert (check.incomplete_hepatic_perfusion, check.correction, check.repeat_check_normal) == (
        False,
        "vessel_embolised",
        True,
    )

    toxicity = {**PARENT, "term": "neutropenia", "grade": "4", "onset_on": "2024-03-01"}
    result = run(SystemicToxicityResource, data_manager_a, [toxicity])
    assert not result.has_validation_errors(), errors_of(result)
    assert SystemicToxicity.objects.get().grade == 4
    readmission = {**PARENT, "kind": "reoperation", "occurred_on": "2024-02-01", "reason": "pump_pocket"}
    result = run(ReadmissionResource, data_manager_a, [readmission])
    assert not result.has_validation_errors(), errors_of(result)
    assert Readmission.objects.get().kind == "reoperation"
    # A file imported twice is refused the second time.
    again = run(ReadmissionResource, data_manager_a, [readmission])
    assert "occurred_on" in errors_of(again)[1]
    assert Readmission.objects.count() == 1


# --- Bad values: one per kind of new column, each a row error on its column, nothing written -----------------

BAD = [
    # whole number out of range, decimal not a number, code set with an unknown code, choice, missing-data clash
    ("ecog out of range", PatientResource, patient(ecog="5"), "ecog", "4"),
    ("cea not a number", PatientResource, patient(cea_ng_per_ml="high"), "cea_ng_per_ml", "Enter a number"),
    (
        "unknown site",
        PatientResource,
        patient(extrahepatic_disease="yes", extrahepatic_sites="lung;moon"),
        "extrahepatic_sites",
        "'moon'",
    ),
    (
        "sites without disease",
        PatientResource,
        patient(extrahepatic_sites="lung"),
        "extrahepatic_sites",
        "need extrahepatic disease",
    ),
    ("unknown BRAF code", PatientResource, patient(braf_status="maybe"), "braf_status", "Unknown code 'maybe'"),
    ("value and its code", PatientResource, patient(ecog="1", ecog_missing="unknown"), "ecog_missing", ""),
    # a catalogue reference: unknown, retired, of the wrong kind
    ("unknown pump model", ImplantationResource, implantation(pump_model="Nope 1"), "pump_model", "Codman 3000"),
    ("retired pump model", ImplantationResource, implantation(pump_model="retired pump"), "pump_model", "no longer"),
    (
        "wrong kind of pump",
        ImplantationResource,
        implantation(pump_model="SynchroMed II"),
        "pump_model",
        "programmable",
    ),
    (
        "unknown handling",
        ImplantationResource,
        implantation(replaced_right_hepatic_artery="cut"),
        "replaced_right_hepatic_artery",
        "ligated",
    ),
    (
        "unknown tip position",
        ImplantationResource,
        implantation(catheter_tip_position="aorta"),
        "catheter_tip_position",
        "aorta",
    ),
    ("not yes or no", ImplantationResource, implantation(cholecystectomy="perhaps"), "cholecystectomy", "yes or no"),
    # the refill
    (
        "reduced without reason",
        TreatmentResource,
        refill(dose_change="reduced", dose_change_reason="ALP up"),
        "hold_reason",
        "Say why",
    ),
    (
        "unknown hold reason",
        TreatmentResource,
        refill(dose_change="held", hold_reason="holiday"),
        "hold_reason",
        "holiday",
    ),
    ("weight not a number", TreatmentResource, refill(body_weight_kg="heavy"), "body_weight_kg", "Enter a number"),
    ("heparin not whole", TreatmentResource, refill(heparin_units="1.5"), "heparin_units", "whole number"),
    (
        "no tests that day",
        TreatmentResource,
        refill(liver_test_measured_on="2024-02-11"),
        "liver_test_measured_on",
        "no liver tests on 2024-02-11",
    ),
    (
        "another implantation's tests",
        TreatmentResource,
        refill(liver_test_measured_on="2024-02-12"),
        "liver_test_measured_on",
        "no liver tests",
    ),
    (
        "tests date not ISO",
        TreatmentResource,
        refill(liver_test_measured_on="10/02/2024"),
        "liver_test_measured_on",
        "YYYY-MM-DD",
    ),
    ("volume out of range", TreatmentResource, refill(returned_volume_ml="150"), "returned_volume_ml", "100"),
    ("over the reservoir", TreatmentResource, refill(filled_volume_ml="35"), "filled_volume_ml", "reservoir"),
    # the perfusion check, the toxicity, the readmission
    (
        "unknown perfusion site",
        PerfusionCheckResource,
        perfusion_check(extrahepatic_perfusion="yes", extrahepatic_sites="liver"),
        "extrahepatic_sites",
        "'liver'",
    ),
    (
        "repeat without correction",
        PerfusionCheckResource,
        perfusion_check(repeat_check_normal="yes"),
        "repeat_check_normal",
        "follows a correction",
    ),
    (
        "modality against method",
        PerfusionCheckResource,
        perfusion_check(modality="maa_spect"),
        "modality",
        "intra-operative dye",
    ),
    (
        "unknown toxicity term",
        SystemicToxicityResource,
        {**PARENT, "term": "rash", "grade": "3", "onset_on": "2024-03-01"},
        "term",
        "rash",
    ),
    (
        "unknown readmission reason",
        ReadmissionResource,
        {**PARENT, "kind": "readmission", "occurred_on": "2024-02-01", "reason": "boredom"},
        "reason",
        "boredom",
    ),
]


@pytest.mark.parametrize("case,resource,row,column,message", BAD, ids=[case[0] for case in BAD])
def test_a_bad_value_is_a_row_error_on_its_column_and_nothing_is_written(
    world, data_manager_a, case, resource, row, column, message
):
    before = counts()
    result = run(resource, data_manager_a, [row])
    errors = errors_of(result)
    assert list(errors) == [1], (case, errors)
    assert column in errors[1], (case, errors)
    assert message in " ".join(errors[1][column]), (case, errors)
    assert counts() == before
    records = [r for r in result.error_records if r["column"] == column]  # the error file's rows
    assert records and all(r["row"] == 1 and r["value"] == row.get(column, "") for r in records)
