"""The richer record in the admin (issue 14): the operation note's groups, the pump catalogue, the case mix,
the refill and perfusion findings, and a refill's liver tests that cannot be deleted from under it."""

import datetime
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from registry.models import Implantation, LiverTest, Patient, PerfusionCheck, PumpModel, Treatment
from registry.services import delete_record
from sites.models import Role

from .admin_forms import delete, implantation_form, inline_rows, patient_form, record_form
from .factories import (
    ImplantationFactory,
    LiverTestFactory,
    PatientFactory,
    PumpModelFactory,
    SurgeonFactory,
    TreatmentFactory,
    user_with_role,
)

LINKED_MESSAGE = "These liver tests are linked to the refill of 2024-03-29; unlink them there first."


@pytest.fixture
def entry(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    return {"patient": PatientFactory(centre=centre_a), "surgeon": SurgeonFactory(centre=centre_a)}


@pytest.fixture
def pump(db):
    return PumpModelFactory(name="Codman 3000", reservoir_volume_ml=Decimal("30.0"))


def _errors(response):
    """The form's and the inlines' errors of a page that did not save, for the assertion's message."""
    context = response.context or {}
    errors = [context["adminform"].form.errors] if "adminform" in context else []
    for inline in context.get("inline_admin_formsets", ()):
        errors += [inline.formset.errors, inline.formset.non_form_errors()]
    return errors


def _fieldsets(response):
    return [(fieldset.name, list(fieldset)) for fieldset in response.context["adminform"]]


def _field_names(fieldset_lines):
    return [field.field["name"] if field.is_readonly else field.field.name for line in fieldset_lines for field in line]


def _readonly_values(inline_admin_form):
    """{field name: shown value} of an inline row's read-only (derived) fields."""
    return {
        field.field["name"]: field.contents()
        for fieldset in inline_admin_form
        for line in fieldset
        for field in line
        if field.is_readonly
    }


# --- The implantation, as an operation note reads -------------------------------------------------------


def test_the_implantation_form_is_grouped_as_an_operation_note(client, entry):
    response = client.get(reverse("admin:registry_implantation_add"))
    groups = {name: _field_names(lines) for name, lines in _fieldsets(response)}
    assert list(groups)[:6] == [
        "Operation",
        "Pump and catheter",
        "Arterial anatomy",
        "Other procedures",
        "Trial and replacement",
        "Never treated",
    ]
    assert {"patient", "surgeon", "implanted_on", "operative_minutes", "blood_loss_ml"} <= set(groups["Operation"])
    assert groups["Pump and catheter"] == ["device", "pump_model", "catheter_vessel", "catheter_tip_position"]
    assert groups["Arterial anatomy"] == [
        "replaced_left_hepatic_artery",
        "accessory_left_hepatic_artery",
        "replaced_right_hepatic_artery",
        "accessory_right_hepatic_artery",
        "replaced_common_hepatic_artery",
        "accessory_arteries_ligated",
        "gastroduodenal_branches_ligated",
        "right_gastric_artery_ligated",
    ]
    assert groups["Other procedures"] == ["cholecystectomy"]
    assert set(groups["Trial and replacement"]) == {"trial", "trial_arm", "replaces"}
    # Each variant is a select: not present, or how it was handled.
    variant = response.context["adminform"].form.fields["replaced_left_hepatic_artery"]
    assert list(variant.choices) == [
        ("", "Not present"),
        ("ligated", "Ligated"),
        ("embolised", "Embolised"),
        ("none", "Left alone"),
    ]


def test_every_new_implantation_field_saves(client, entry, pump):
    data = implantation_form(
        entry["patient"],
        entry["surgeon"],
        pump_model=str(pump.pk),
        catheter_tip_position="gastroduodenal_origin",
        replaced_left_hepatic_artery="ligated",
        accessory_right_hepatic_artery="embolised",
        replaced_common_hepatic_artery="none",
        gastroduodenal_branches_ligated="true",
        right_gastric_artery_ligated="false",
        cholecystectomy="true",
    )
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 302, _errors(response)
    implantation = Implantation.objects.get(patient=entry["patient"])
    assert implantation.pump_model == pump
    assert implantation.catheter_tip_position == "gastroduodenal_origin"
    assert [(str(variant), handling) for variant, handling in implantation.hepatic_artery_variants] == [
        ("replaced_left", "ligated"),
        ("accessory_right", "embolised"),
        ("replaced_common", "none"),
    ]
    assert (implantation.gastroduodenal_branches_ligated, implantation.right_gastric_artery_ligated) == (True, False)
    assert implantation.cholecystectomy is True


def test_a_pump_model_of_the_wrong_kind_is_refused_on_its_field(client, entry, pump):
    data = implantation_form(entry["patient"], entry["surgeon"], device="arterial_port", pump_model=str(pump.pk))
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 200
    assert "An arterial port has no pump model" in str(response.context["adminform"].form.errors["pump_model"])
    assert not Implantation.objects.exists()


def test_the_pump_model_select_offers_active_models_and_the_rows_own(client, entry, pump):
    retired = PumpModelFactory(name="Retired pump", active=False)
    add_choices = client.get(reverse("admin:registry_implantation_add")).context["adminform"].form.fields["pump_model"]
    assert list(add_choices.queryset) == [pump]
    implantation = ImplantationFactory(patient=entry["patient"], surgeon=entry["surgeon"], pump_model=retired)
    page = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk]))
    assert set(page.context["adminform"].form.fields["pump_model"].queryset) == {pump, retired}
    # ... and saving the row unchanged keeps it.
    response = client.post(
        reverse("admin:registry_implantation_change", args=[implantation.pk]), record_form(implantation)
    )
    assert response.status_code == 302
    implantation.refresh_from_db()
    assert implantation.pump_model == retired


# --- The pump catalogue ------------------------------------------------------------------------------------


def test_the_coordinator_extends_the_catalogue_and_a_data_manager_only_reads_it(
    client, coordinator, data_manager_a, pump
):
    form = {
        "name": "Tricumed IP 2000V",
        "manufacturer": "Tricumed",
        "kind": "constant_flow_pump",
        "reservoir_volume_ml": "35",
        "nominal_flow_ml_per_day": "0.8",
        "active": "on",
    }
    client.force_login(data_manager_a)
    assert client.get(reverse("admin:registry_pumpmodel_changelist")).status_code == 200
    client.post(reverse("admin:registry_pumpmodel_add"), form)
    assert not PumpModel.objects.filter(name="Tricumed IP 2000V").exists()
    client.post(reverse("admin:registry_pumpmodel_change", args=[pump.pk]), record_form(pump, manufacturer="Other"))
    pump.refresh_from_db()
    assert pump.manufacturer != "Other"

    client.force_login(coordinator)
    assert client.post(reverse("admin:registry_pumpmodel_add"), form).status_code == 302
    added = PumpModel.objects.get(name="Tricumed IP 2000V")
    assert added.history.get().history_user == coordinator
    # A constant-flow pump needs its rate.
    response = client.post(
        reverse("admin:registry_pumpmodel_add"), {**form, "name": "No rate", "nominal_flow_ml_per_day": ""}
    )
    assert "needs its nominal flow rate" in response.content.decode()


def test_the_menu_lists_the_pump_catalogue_after_the_complication_types(client, coordinator):
    client.force_login(coordinator)
    apps = client.get(reverse("admin:index")).context["app_list"]
    names = [model["object_name"] for model in next(app for app in apps if app["app_label"] == "registry")["models"]]
    assert names.index("PumpModel") == names.index("ComplicationType") + 1


# --- The case mix at implant ---------------------------------------------------------------------------------


def test_the_case_mix_group_saves_the_new_fields_and_the_sites_as_checkboxes(client, entry, centre_a):
    response = client.get(reverse("admin:registry_patient_add"))
    groups = {name: _field_names(lines) for name, lines in _fieldsets(response)}
    assert {"ecog", "ecog_missing", "cea_ng_per_ml", "clinical_risk_score", "braf_status", "msi_status"} <= set(
        groups["Case mix at implant"]
    )
    assert "extrahepatic_sites" in groups["Case mix at implant"]

    data = patient_form(
        centre_a,
        extrahepatic_disease="true",
        extrahepatic_sites=["peritoneum", "lung"],
        ecog="1",
        cea_ng_per_ml="",
        cea_ng_per_ml_missing="not_done",
        clinical_risk_score="3",
        braf_status="v600e",
        msi_status="mss",
    )
    response = client.post(reverse("admin:registry_patient_add"), data)
    assert response.status_code == 302, _errors(response)
    patient = Patient.objects.get(centre=centre_a, birth_year=1961)
    assert patient.extrahepatic_sites == ["lung", "peritoneum"]  # the vocabulary's order
    assert (patient.ecog, patient.cea_ng_per_ml, patient.cea_ng_per_ml_missing) == (1, None, "not_done")
    assert (patient.clinical_risk_score, patient.braf_status, patient.msi_status) == (3, "v600e", "mss")

    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    assert 'name="extrahepatic_sites" value="lung" id="id_extrahepatic_sites_0" checked' in page
    assert 'name="extrahepatic_sites" value="peritoneum" id="id_extrahepatic_sites_1" checked' in page
    assert 'value="bone" id="id_extrahepatic_sites_4" checked' not in page

    # No box ticked: the empty set.
    response = client.post(
        reverse("admin:registry_patient_change", args=[patient.pk]), record_form(patient, extrahepatic_sites=[])
    )
    assert response.status_code == 302, _errors(response)
    patient.refresh_from_db()
    assert patient.extrahepatic_sites == []


def test_sites_without_extrahepatic_disease_are_refused_on_the_sites(client, entry, centre_a):
    data = patient_form(centre_a, extrahepatic_disease="false", extrahepatic_sites=["lung"])
    response = client.post(reverse("admin:registry_patient_add"), data)
    assert response.status_code == 200
    assert "extrahepatic_sites" in response.context["adminform"].form.errors
    assert not Patient.objects.filter(centre=centre_a, birth_year=1961).exists()


# --- The refill and the perfusion findings -------------------------------------------------------------------


def _refill(day, **values):
    return {
        "given_on": day,
        "drug": "fudr",
        "dose": "0.12",
        "dose_unit": "mg/kg/day",
        "dose_change": "full",
        "hold_reason": "",
        "dose_change_reason": "",
        **values,
    }


@pytest.fixture
def pumped(entry, pump):
    """An implantation of 2024-03-01 with its pump and liver tests of 2024-03-27."""
    implantation = ImplantationFactory(patient=entry["patient"], surgeon=entry["surgeon"], pump_model=pump)
    return implantation, LiverTestFactory(implantation=implantation, measured_on=datetime.date(2024, 3, 27))


def test_the_refill_saves_every_new_field_and_shows_its_measured_flow_and_computed_dose(client, pumped):
    implantation, tests = pumped
    # At the pump's nominal 1 mL/day: 8.4 mg/mL x 1.00 / 70 kg = 0.120 mg/kg/day.
    first = _refill("2024-03-15", body_weight_kg="70", filled_volume_ml="30", drug_concentration_mg_per_ml="8.4")
    # 30 mL filled, 16 mL returned 14 days later: 1.00 mL/day measured; 7 mg/mL x 1.00 / 70 kg = 0.100 mg/kg/day.
    second = _refill(
        "2024-03-29",
        dose_change="reduced",
        dose="0.1",
        hold_reason="alp",
        dose_change_reason="ALP up",
        body_weight_kg="70",
        returned_volume_ml="16",
        filled_volume_ml="30",
        drug_concentration_mg_per_ml="7",
        dexamethasone_mg="25",
        heparin_units="30000",
        liver_test=str(tests.pk),
    )
    data = record_form(implantation)
    data.update(inline_rows("treatments", [first, second]))
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])
    response = client.post(url, data)
    assert response.status_code == 302, _errors(response)
    refill = Treatment.objects.get(implantation=implantation, given_on=datetime.date(2024, 3, 29))
    assert (refill.hold_reason, refill.dose_change_reason, refill.liver_test) == ("alp", "ALP up", tests)
    assert (refill.body_weight_kg, refill.returned_volume_ml, refill.filled_volume_ml) == (70, 16, 30)
    assert (refill.drug_concentration_mg_per_ml, refill.dexamethasone_mg, refill.heparin_units) == (
        Decimal("7"),
        25,
        30000,
    )

    page = client.get(url)
    shown = [_readonly_values(form) for form in page.context["inline_admin_formsets"][1]]
    assert shown[1]["measured_flow_display"] == "1.00"
    assert shown[1]["computed_dose_display"] == "0.100 (at the measured 1.00 mL/day)"
    assert shown[0]["measured_flow_display"] == "–"  # no refill before the first


def test_a_reduced_dose_needs_its_coded_reason(client, pumped):
    implantation, _tests = pumped
    data = record_form(implantation)
    data.update(inline_rows("treatments", [_refill("2024-03-15", dose_change="reduced", dose_change_reason="ALP up")]))
    response = client.post(reverse("admin:registry_implantation_change", args=[implantation.pk]), data)
    assert response.status_code == 200
    assert "Say why the dose was reduced or held." in str(response.context["inline_admin_formsets"][1].formset.errors)
    assert not Treatment.objects.filter(implantation=implantation).exists()


def test_a_refill_offers_only_its_own_implantations_liver_tests(client, entry, pumped):
    implantation, tests = pumped
    other = ImplantationFactory(patient=PatientFactory(centre=entry["patient"].centre), surgeon=entry["surgeon"])
    LiverTestFactory(implantation=other, measured_on=datetime.date(2024, 3, 27))
    page = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk]))
    formset = page.context["inline_admin_formsets"][1].formset
    assert list(formset.empty_form.fields["liver_test"].queryset) == [tests]
    new = client.get(reverse("admin:registry_implantation_add")).context["inline_admin_formsets"][1].formset
    assert not new.empty_form.fields["liver_test"].queryset.exists()


def test_the_perfusion_findings_save(client, pumped):
    implantation, _tests = pumped
    check = {
        "checked_on": "2024-03-01",
        "timing": "intraoperative",
        "method": "methylene_blue",
        "modality": "intraoperative_dye",
        "extrahepatic_perfusion": "on",
        "extrahepatic_sites": ["duodenum", "stomach"],
        "incomplete_hepatic_perfusion": "false",
        "correction": "vessel_ligated",
        "repeat_check_normal": "true",
    }
    data = record_form(implantation)
    data.update(inline_rows("perfusion_checks", [check]))
    response = client.post(reverse("admin:registry_implantation_change", args=[implantation.pk]), data)
    assert response.status_code == 302, _errors(response)
    saved = PerfusionCheck.objects.get(implantation=implantation)
    assert saved.modality == "intraoperative_dye" and saved.extrahepatic_sites == ["stomach", "duodenum"]
    assert (saved.incomplete_hepatic_perfusion, saved.correction, saved.repeat_check_normal) == (
        False,
        "vessel_ligated",
        True,
    )


# --- A refill's liver tests are not deleted from under it ----------------------------------------------------


@pytest.fixture
def linked(pumped):
    implantation, tests = pumped
    TreatmentFactory(implantation=implantation, given_on=datetime.date(2024, 3, 29), liver_test=tests)
    return implantation, tests


def test_the_admin_refuses_to_delete_liver_tests_a_refill_links(client, linked):
    _implantation, tests = linked
    response = delete(client, reverse("admin:registry_livertest_delete", args=[tests.pk]))
    assert response.status_code == 302
    assert LINKED_MESSAGE in [str(message) for message in get_messages(response.wsgi_request)]
    assert LiverTest.objects.filter(pk=tests.pk).exists()


def test_the_implantation_page_refuses_to_delete_them_as_a_row(client, linked):
    implantation, tests = linked
    data = record_form(implantation, change_reason="Entered twice")
    row = {"id": str(tests.pk), "implantation": str(implantation.pk), **record_form(tests), "DELETE": "on"}
    data.update(inline_rows("liver_tests", [row], initial=1))
    response = client.post(reverse("admin:registry_implantation_change", args=[implantation.pk]), data)
    assert response.status_code == 200
    assert LINKED_MESSAGE in str(response.context["inline_admin_formsets"][3].formset.non_form_errors())
    assert LiverTest.objects.filter(pk=tests.pk).exists()


def test_delete_record_refuses_them_and_the_whole_implantation_or_patient_still_goes(linked, data_manager_a, centre_a):
    implantation, tests = linked
    with pytest.raises(ValidationError) as refused:
        delete_record(tests, user=data_manager_a, reason="Entered in error")
    assert refused.value.messages == [LINKED_MESSAGE]
    assert LiverTest.objects.filter(pk=tests.pk).exists()

    delete_record(implantation, user=data_manager_a, reason="Entered in error")
    assert not LiverTest.objects.filter(pk=tests.pk).exists() and not Treatment.objects.exists()

    second = ImplantationFactory(patient=PatientFactory(centre=centre_a))
    linked_tests = LiverTestFactory(implantation=second)
    TreatmentFactory(implantation=second, given_on=linked_tests.measured_on, liver_test=linked_tests)
    coordinator = user_with_role(Role.COORDINATOR)
    delete_record(second.patient, user=coordinator, reason="Entered in error")
    assert not LiverTest.objects.filter(pk=linked_tests.pk).exists()
