"""The richer record through the API (issue 14): every new field written, read and changed; the refill's derived
flow and dose; the dose soft warning; what investigators get; the pump catalogue."""

import csv
import io
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from api import releases as api_releases
from api.deidentify import Deidentifier
from registry.models import Implantation, PumpModel, Treatment
from sites.models import Role

from . import factories
from .api_world import write
from .clients import client_for
from .factories import days_after


@pytest.fixture
def pump(db):
    # Nominal flow 1.50 mL/day: a computed dose that used it differs from one that used the measured 2.00.
    return PumpModel.objects.create(
        name="Flow 1.5 (test)",
        manufacturer="Test Medical",
        kind="constant_flow_pump",
        reservoir_volume_ml=Decimal("30.0"),
        nominal_flow_ml_per_day=Decimal("1.50"),
    )


@pytest.fixture
def retired_pump(db):
    return PumpModel.objects.create(
        name="Retired 50 (test)",
        manufacturer="Test Medical",
        kind="constant_flow_pump",
        reservoir_volume_ml=Decimal("50.0"),
        nominal_flow_ml_per_day=Decimal("1.00"),
        active=False,
    )


@pytest.fixture
def implantation(centre_a, pump):
    return factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0), pump_model=pump)


def refill_payload(implantation, **fields):
    return {
        "implantation": implantation.pk,
        "drug": "fudr",
        "dose": "0.120",
        "dose_unit": "mg/kg/day",
        **fields,
    }


# --- implantation -------------------------------------------------------------------------------------------


def test_implantation_round_trip_of_every_new_field(centre_a, data_manager_a, pump):
    patient = factories.PatientFactory(centre=centre_a)
    surgeon = factories.SurgeonFactory(centre=centre_a)
    earlier = factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(-400))
    client = client_for(data_manager_a)
    payload = {
        "patient": patient.pk,
        "surgeon": surgeon.code,
        "implanted_on": days_after(0).isoformat(),
        "indication": "adjuvant",
        "approach": "laparotomy",
        "device": "constant_flow_pump",
        "pump_model": pump.name,
        "catheter_tip_position": "gastroduodenal_origin",
        "hepatic_artery_variants": [
            {"variant": "replaced_right", "handling": "ligated"},
            {"variant": "accessory_left", "handling": "embolised"},
        ],
        "gastroduodenal_branches_ligated": True,
        "right_gastric_artery_ligated": False,
        "cholecystectomy": True,
        "replaces": earlier.pk,
        "trial": "NCT01234567",
        "trial_arm": "HAI",
    }
    response = client.post("/api/v1/implantations/", payload, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/v1/implantations/{response.json()['id']}/"
    body = client.get(url).json()
    for name in ("pump_model", "catheter_tip_position", "gastroduodenal_branches_ligated", "cholecystectomy"):
        assert body[name] == payload[name]
    assert body["right_gastric_artery_ligated"] is False
    assert (body["replaces"], body["trial"], body["trial_arm"]) == (earlier.pk, "NCT01234567", "HAI")
    # In the vocabulary's order, whatever order they were sent in.
    assert body["hepatic_artery_variants"] == [
        {"variant": "accessory_left", "handling": "embolised"},
        {"variant": "replaced_right", "handling": "ligated"},
    ]
    stored = Implantation.objects.get(pk=body["id"])
    assert (stored.replaced_right_hepatic_artery, stored.accessory_left_hepatic_artery) == ("ligated", "embolised")
    assert stored.replaced_left_hepatic_artery == ""
    # The five model fields are the one list, never separate API fields.
    assert not {"replaced_left_hepatic_artery", "accessory_left_hepatic_artery"} & set(body)

    # A PATCH without the list leaves the variants alone ...
    response = write(client, "patch", url, {"cholecystectomy": False, "catheter_tip_position": "common_hepatic"})
    assert response.status_code == 200, response.json()
    stored.refresh_from_db()
    assert stored.cholecystectomy is False and stored.catheter_tip_position == "common_hepatic"
    assert stored.hepatic_artery_variants == [("accessory_left", "embolised"), ("replaced_right", "ligated")]
    # ... one with it replaces them: a variant left out is absent.
    response = write(
        client, "patch", url, {"hepatic_artery_variants": [{"variant": "replaced_common", "handling": "none"}]}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["hepatic_artery_variants"] == [{"variant": "replaced_common", "handling": "none"}]
    stored.refresh_from_db()
    assert stored.hepatic_artery_variants == [("replaced_common", "none")]
    assert write(client, "patch", url, {"hepatic_artery_variants": []}).json()["hepatic_artery_variants"] == []


@pytest.mark.parametrize(
    "variants,message",
    [
        ([{"variant": "replaced_middle", "handling": "ligated"}], "'replaced_middle' is not a variant"),
        (
            [{"variant": "replaced_left", "handling": "ligated"}, {"variant": "replaced_left", "handling": "none"}],
            "replaced_left is listed more than once",
        ),
        ([{"variant": "replaced_left", "handling": "clipped"}], "'clipped' is not how a variant is handled"),
        ([{"variant": "replaced_left"}], "Item 1: say how it was handled, one of: ligated, embolised, none."),
        ([{"handling": "none"}], "Item 1: give the variant"),
        ([{"variant": "replaced_left", "handling": "none", "side": "left"}], 'with "variant" and "handling" only'),
        ("replaced_left", "Give a list"),
    ],
)
def test_hepatic_artery_variants_are_validated(implantation, data_manager_a, variants, message):
    url = f"/api/v1/implantations/{implantation.pk}/"
    response = write(client_for(data_manager_a), "patch", url, {"hepatic_artery_variants": variants})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert any(message in text for text in body["errors"]["hepatic_artery_variants"]), body
    implantation.refresh_from_db()
    assert implantation.hepatic_artery_variants == []


def test_an_inactive_pump_model_stays_on_its_record_but_is_not_chosen_anew(implantation, data_manager_a, retired_pump):
    client = client_for(data_manager_a)
    url = f"/api/v1/implantations/{implantation.pk}/"
    response = write(client, "patch", url, {"pump_model": retired_pump.name})
    assert response.status_code == 400
    assert "no longer in the pump catalogue's active models" in response.json()["errors"]["pump_model"][0]
    Implantation.objects.filter(pk=implantation.pk).update(pump_model=retired_pump)
    response = write(client, "patch", url, {"pump_model": retired_pump.name, "cholecystectomy": True})
    assert response.status_code == 200, response.json()
    assert response.json()["pump_model"] == retired_pump.name


# --- patient ------------------------------------------------------------------------------------------------


def test_patient_round_trip_of_the_case_mix_fields(centre_a, data_manager_a):
    client = client_for(data_manager_a)
    payload = {
        "centre": centre_a.code,
        "birth_year": 1958,
        "sex": "female",
        "primary_tumour": "colorectal",
        "extrahepatic_disease": True,
        "extrahepatic_sites": ["portal_nodes", "lung"],
        "ecog": 1,
        "cea_ng_per_ml": "240.5",
        "clinical_risk_score": 3,
        "braf_status": "v600e",
        "msi_status": "mss",
    }
    response = client.post("/api/v1/patients/", payload, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/v1/patients/{response.json()['id']}/"
    body = client.get(url).json()
    assert body["extrahepatic_sites"] == ["lung", "portal_nodes"]  # the vocabulary's order
    assert (body["ecog"], body["cea_ng_per_ml"], body["clinical_risk_score"]) == (1, "240.5", 3)
    assert (body["braf_status"], body["msi_status"]) == ("v600e", "mss")
    assert body["ecog_missing"] == body["cea_ng_per_ml_missing"] == body["clinical_risk_score_missing"] == ""

    response = write(
        client, "patch", url, {"ecog": None, "ecog_missing": "not_done", "extrahepatic_sites": ["peritoneum"]}
    )
    assert response.status_code == 200, response.json()
    body = client.get(url).json()
    assert (body["ecog"], body["ecog_missing"], body["extrahepatic_sites"]) == (None, "not_done", ["peritoneum"])
    assert body["cea_ng_per_ml"] == "240.5"  # not in the PATCH: unchanged


def test_extrahepatic_sites_are_codes_of_the_vocabulary(centre_a, data_manager_a):
    patient = factories.PatientFactory(centre=centre_a, extrahepatic_disease=True)
    client = client_for(data_manager_a)
    url = f"/api/v1/patients/{patient.pk}/"
    response = write(client, "patch", url, {"extrahepatic_sites": ["lung", "brain"]})
    assert response.status_code == 400
    (message,) = response.json()["errors"]["extrahepatic_sites"]
    assert message.startswith("Not a known code: brain. Use one or more of: lung, peritoneum")
    response = write(client, "patch", url, {"extrahepatic_sites": ["lung", "lung"]})
    assert response.json()["errors"]["extrahepatic_sites"] == ["Give each code once."]
    response = write(client, "patch", url, {"extrahepatic_sites": "lung"})
    assert response.json()["errors"]["extrahepatic_sites"] == ["Give a list of codes."]
    # The model's rule: sites only with extrahepatic disease.
    response = write(client, "patch", url, {"extrahepatic_disease": False, "extrahepatic_sites": ["lung"]})
    assert response.status_code == 400 and "extrahepatic_sites" in response.json()["errors"]


# --- treatment (refill) -------------------------------------------------------------------------------------


def test_treatment_round_trip_of_every_new_field(implantation, data_manager_a):
    test = factories.LiverTestFactory(implantation=implantation, measured_on=days_after(12))
    client = client_for(data_manager_a)
    payload = refill_payload(
        implantation,
        given_on=days_after(14).isoformat(),
        body_weight_kg="70.0",
        returned_volume_ml="1.0",
        filled_volume_ml="30.0",
        drug_concentration_mg_per_ml="5.600",  # × 1.50 mL/day nominal ÷ 70 kg = 0.120 mg/kg/day
        dexamethasone_mg="20.0",
        heparin_units=5000,
        liver_test=test.pk,
    )
    response = client.post("/api/v1/treatments/", payload, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    assert created["computed_dose_mg_per_kg_per_day"] == "0.120"
    url = f"/api/v1/treatments/{created['id']}/"
    body = client.get(url).json()
    for name in ("body_weight_kg", "returned_volume_ml", "filled_volume_ml", "drug_concentration_mg_per_ml"):
        assert body[name] == payload[name]
    assert (body["dexamethasone_mg"], body["heparin_units"], body["liver_test"]) == ("20.0", 5000, test.pk)
    assert body["measured_flow_ml_per_day"] is None  # the first refill: nothing to measure against
    assert body["computed_dose_mg_per_kg_per_day"] == "0.120"  # the pump model's nominal flow
    assert body["hold_reason"] == ""

    response = write(
        client,
        "patch",
        url,
        {
            "dose_change": "reduced",
            "dose": "0.100",
            "hold_reason": "bilirubin",
            "drug_concentration_mg_per_ml": "4.667",
        },
    )
    assert response.status_code == 200, response.json()
    body = client.get(url).json()
    assert (body["dose_change"], body["hold_reason"], body["dose_change_reason"]) == ("reduced", "bilirubin", "")
    assert body["computed_dose_mg_per_kg_per_day"] == "0.100"
    assert body["liver_test"] == test.pk  # not in the PATCH: unchanged


def test_a_reduced_dose_needs_its_coded_reason(implantation, data_manager_a):
    payload = refill_payload(implantation, given_on=days_after(14).isoformat(), dose="0.060", dose_change="reduced")
    response = client_for(data_manager_a).post("/api/v1/treatments/", payload, format="json")
    assert response.status_code == 400 and "hold_reason" in response.json()["errors"]
    response = client_for(data_manager_a).post(
        "/api/v1/treatments/", {**payload, "hold_reason": "not_a_reason"}, format="json"
    )
    assert response.status_code == 400 and "hold_reason" in response.json()["errors"]


def test_a_liver_test_of_another_centre_cannot_be_linked(implantation, data_manager_a, centre_b):
    elsewhere = factories.LiverTestFactory(implantation__patient__centre=centre_b)
    payload = refill_payload(implantation, given_on=days_after(14).isoformat(), liver_test=elsewhere.pk)
    response = client_for(data_manager_a).post("/api/v1/treatments/", payload, format="json")
    assert response.status_code == 400 and "liver_test" in response.json()["errors"]


def make_refills(implantation):
    """Day 0 and day 14 of the refills (days after the implantation: 14 and 28): 30.0 mL filled, 2.0 mL back."""
    first = factories.TreatmentFactory(
        implantation=implantation,
        given_on=days_after(14, implantation.implanted_on),
        body_weight_kg=Decimal("70.0"),
        filled_volume_ml=Decimal("30.0"),
        drug_concentration_mg_per_ml=Decimal("5.600"),
    )
    second = factories.TreatmentFactory(
        implantation=implantation,
        given_on=days_after(28, implantation.implanted_on),
        body_weight_kg=Decimal("70.0"),
        returned_volume_ml=Decimal("2.0"),
        filled_volume_ml=Decimal("30.0"),
        drug_concentration_mg_per_ml=Decimal("4.200"),
    )
    return first, second


def test_measured_flow_and_computed_dose_on_the_list(implantation, coordinator):
    first, second = make_refills(implantation)
    rows = client_for(coordinator).get("/api/v1/treatments/", {"implantation": implantation.pk}).json()["results"]
    by_id = {row["id"]: row for row in rows}
    # (30.0 − 2.0) mL ÷ 14 days = 2.00 mL/day; 4.2 mg/mL × 2.00 mL/day ÷ 70 kg = 0.120 mg/kg/day.
    assert by_id[second.pk]["measured_flow_ml_per_day"] == "2.00"
    assert by_id[second.pk]["computed_dose_mg_per_kg_per_day"] == "0.120"
    # The first has no measured flow: 5.6 mg/mL × 1.50 mL/day nominal ÷ 70 kg.
    assert by_id[first.pk]["measured_flow_ml_per_day"] is None
    assert by_id[first.pk]["computed_dose_mg_per_kg_per_day"] == "0.120"
    # Filtered to the second refill alone, its previous refill is still the first.
    rows = (
        client_for(coordinator)
        .get("/api/v1/treatments/", {"implantation": implantation.pk, "given_on_after": second.given_on.isoformat()})
        .json()["results"]
    )
    assert [(row["id"], row["measured_flow_ml_per_day"]) for row in rows] == [(second.pk, "2.00")]
    # Without a weight there is no computed dose.
    Treatment.objects.filter(pk=second.pk).update(body_weight_kg=None)
    body = client_for(coordinator).get(f"/api/v1/treatments/{second.pk}/").json()
    assert (body["measured_flow_ml_per_day"], body["computed_dose_mg_per_kg_per_day"]) == ("2.00", None)


def test_the_dose_soft_warning_through_the_api(implantation, data_manager_a):
    first, _ = make_refills(implantation)
    client = client_for(data_manager_a)
    count = Treatment.objects.count()
    # 6.0 mg/mL × 2.00 mL/day ÷ 70 kg = 0.171 mg/kg/day, 43% more than the 0.12 stated.
    payload = refill_payload(
        implantation,
        given_on=days_after(42).isoformat(),
        body_weight_kg="70.0",
        returned_volume_ml="2.0",
        filled_volume_ml="30.0",
        drug_concentration_mg_per_ml="6.000",
    )
    response = client.post("/api/v1/treatments/", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert [(w["code"], w["field"]) for w in body["warnings"]] == [("dose_differs_from_computed", "dose")]
    assert "0.171" in body["errors"]["dose"][0]
    assert Treatment.objects.count() == count  # nothing written
    response = client.post(
        "/api/v1/treatments/", {**payload, "confirmed_warnings": ["dose_differs_from_computed"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["computed_dose_mg_per_kg_per_day"] == "0.171"
    assert Treatment.objects.count() == count + 1
    # A fill that gives the stated dose raises no warning.
    response = client.post(
        "/api/v1/treatments/",
        {**payload, "given_on": days_after(56).isoformat(), "drug_concentration_mg_per_ml": "4.200"},
        format="json",
    )
    assert response.status_code == 201, response.json()


def test_queries_for_the_treatment_list_do_not_grow_with_rows(centre_a, coordinator, pump):
    for _ in range(15):
        make_refills(factories.ImplantationFactory(patient__centre=centre_a, pump_model=pump))
    client = client_for(coordinator)

    def count(page_size):
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/treatments/", {"page_size": page_size})
            assert response.status_code == 200
        assert all(row["computed_dose_mg_per_kg_per_day"] == "0.120" for row in response.json()["results"])
        return len(queries)

    count(1)  # the user's roles are read once and cached on the (reused) user object
    assert count(2) == count(30) <= 4


# --- perfusion check ----------------------------------------------------------------------------------------


def test_perfusion_check_round_trip_of_every_new_field(implantation, data_manager_a):
    client = client_for(data_manager_a)
    payload = {
        "implantation": implantation.pk,
        "checked_on": days_after(0).isoformat(),
        "timing": "intraoperative",
        "method": "methylene_blue",
        "extrahepatic_perfusion": True,
        "extrahepatic_sites": ["duodenum", "stomach"],
        "incomplete_hepatic_perfusion": False,
        "correction": "vessel_ligated",
        "repeat_check_normal": True,
    }
    response = client.post("/api/v1/perfusion-checks/", payload, format="json")
    assert response.status_code == 201, response.json()
    url = f"/api/v1/perfusion-checks/{response.json()['id']}/"
    body = client.get(url).json()
    assert body["modality"] == "intraoperative_dye"  # from the method
    assert body["extrahepatic_sites"] == ["stomach", "duodenum"]
    assert (body["incomplete_hepatic_perfusion"], body["correction"], body["repeat_check_normal"]) == (
        False,
        "vessel_ligated",
        True,
    )
    response = write(client, "patch", url, {"incomplete_hepatic_perfusion": True, "extrahepatic_sites": ["gut"]})
    assert response.status_code == 400 and response.json()["errors"]["extrahepatic_sites"][0].startswith(
        "Not a known code: gut."
    )
    response = write(client, "patch", url, {"incomplete_hepatic_perfusion": True, "correction": "none"})
    assert response.status_code == 400 and "repeat_check_normal" in response.json()["errors"]
    response = write(client, "patch", url, {"incomplete_hepatic_perfusion": True})
    assert response.status_code == 200 and response.json()["incomplete_hepatic_perfusion"] is True


# --- investigators ------------------------------------------------------------------------------------------


def test_investigators_get_a_refill_de_identified(implantation, investigator):
    test = factories.LiverTestFactory(implantation=implantation, measured_on=days_after(26))
    _, second = make_refills(implantation)
    Treatment.objects.filter(pk=second.pk).update(
        liver_test=test, dose_change="reduced", hold_reason="ast", dose_change_reason="AST 300, Dr Martin"
    )
    client = client_for(investigator)
    codes = Deidentifier(api_releases.latest_release())
    row = client.get(f"/api/v1/treatments/{codes.encode('treatment', second.pk)}/").json()
    assert row["code"] == codes.encode("treatment", second.pk)
    assert row["liver_test"] == codes.encode("liver-test", test.pk)
    # The same code the investigator's liver-test list gives that row.
    assert row["liver_test"] in {r["code"] for r in client.get("/api/v1/liver-tests/").json()["results"]}
    assert (row["given_day"], row["hold_reason"]) == (28, "ast")
    assert (row["measured_flow_ml_per_day"], row["computed_dose_mg_per_kg_per_day"]) == ("2.00", "0.120")
    assert {"id", "given_on", "dose_change_reason", "implantation_date"}.isdisjoint(row)
    assert "Martin" not in str(row)
    csv_text = b"".join(client.get("/api/v1/treatments/", {"format": "csv"}).streaming_content).decode()
    assert "Martin" not in csv_text
    linked = {row["liver_test"] for row in csv.DictReader(io.StringIO(csv_text))}
    assert linked == {row["liver_test"], ""}  # the opaque code, never the id


def test_investigators_get_an_implantation_de_identified(implantation, investigator, centre_a):
    replacement = factories.ImplantationFactory(
        patient=implantation.patient,
        implanted_on=days_after(200),
        replaces=implantation,
        pump_model=implantation.pump_model,
        catheter_tip_position="proper_hepatic",
        replaced_left_hepatic_artery="ligated",
        cholecystectomy=True,
        trial="NCT01234567",
    )
    codes = Deidentifier(api_releases.latest_release())
    row = client_for(investigator).get(f"/api/v1/implantations/{codes.encode('implantation', replacement.pk)}/")
    row = row.json()
    assert row["replaces"] == codes.encode("implantation", implantation.pk)
    assert row["pump_model"] == implantation.pump_model.name
    assert row["hepatic_artery_variants"] == [{"variant": "replaced_left", "handling": "ligated"}]
    assert (row["catheter_tip_position"], row["cholecystectomy"], row["trial"]) == (
        "proper_hepatic",
        True,
        "NCT01234567",
    )
    assert row["implantation_year"] == replacement.implanted_on.year
    assert {"id", "implanted_on", "replaced_left_hepatic_artery", "never_treated_note"}.isdisjoint(row)
    patient = client_for(investigator).get(f"/api/v1/patients/{codes.encode('patient', implantation.patient_id)}/")
    assert {"ecog", "ecog_missing", "braf_status", "extrahepatic_sites"} <= set(patient.json())


# --- the pump catalogue -------------------------------------------------------------------------------------

PUMP_FIELDS = {"name", "manufacturer", "kind", "reservoir_volume_ml", "nominal_flow_ml_per_day", "active"}


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR])
def test_every_role_reads_the_pump_catalogue_and_none_writes_it(centre_a, pump, retired_pump, role):
    client = client_for(factories.user_with_role(role, centre_a))
    response = client.get("/api/v1/pump-models/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert set(rows[pump.name]) == PUMP_FIELDS
    assert rows[pump.name] == {
        "name": "Flow 1.5 (test)",
        "manufacturer": "Test Medical",
        "kind": "constant_flow_pump",
        "reservoir_volume_ml": "30.0",
        "nominal_flow_ml_per_day": "1.50",
        "active": True,
    }
    assert rows[retired_pump.name]["active"] is False
    active = client.get("/api/v1/pump-models/", {"active": "true"}).json()["results"]
    assert retired_pump.name not in {row["name"] for row in active}
    detail = client.get(f"/api/v1/pump-models/{pump.name}/")
    assert detail.status_code == 200 and detail.json()["nominal_flow_ml_per_day"] == "1.50"
    payload = {"name": "New", "manufacturer": "X", "kind": "programmable_pump", "reservoir_volume_ml": "20.0"}
    assert client.post("/api/v1/pump-models/", payload, format="json").status_code == 405
    assert client.patch(f"/api/v1/pump-models/{pump.name}/", {"active": False}, format="json").status_code == 405


def test_the_pump_catalogue_needs_an_api_role(pump):
    assert APIClient().get("/api/v1/pump-models/").status_code in (401, 403)
    assert client_for(factories.UserFactory()).get("/api/v1/pump-models/").status_code == 403


def test_the_new_vocabularies_are_listed(investigator):
    body = client_for(investigator).get("/api/v1/vocabularies/").json()
    assert {"code": "chemical_hepatitis", "label": "Chemical hepatitis"} in body["hold_reason"]
    expected = {
        "hepatic_artery_variant": "replaced_common",
        "variant_handling": "embolised",
        "catheter_tip_position": "gastroduodenal_origin",
        "perfusion_modality": "maa_spect",
        "extrahepatic_perfusion_site": "abdominal_wall",
        "perfusion_correction": "catheter_repositioned",
        "braf_status": "v600e",
        "msi_status": "msi_high",
        "extrahepatic_disease_site": "portal_nodes",
    }
    for name, code in expected.items():
        assert code in {entry["code"] for entry in body[name]}, name
