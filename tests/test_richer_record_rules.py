"""Rules of the richer record (issue 14) on one row: pump model against device, perfusion findings,
case mix, and the coded sets."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry.models import PumpModel
from registry.vocabulary import Device, PerfusionCorrection, VariantHandling

from .factories import ImplantationFactory, PatientFactory, PerfusionCheckFactory, PumpModelFactory, days_after


def field_errors(record):
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    return caught.value.message_dict


@pytest.fixture
def implantation(centre_a):
    return ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))


# --- pump model ------------------------------------------------------------------------------


def test_a_pump_model_must_be_the_kind_of_device_implanted(implantation):
    programmable = PumpModelFactory(name="Programmable", kind=Device.PROGRAMMABLE_PUMP, nominal_flow_ml_per_day=None)
    implantation.device, implantation.pump_model = Device.CONSTANT_FLOW_PUMP, programmable
    assert field_errors(implantation)["pump_model"] == [
        "Programmable is listed as “Implanted programmable pump”, but the device is “Implanted constant-flow pump”."
    ]
    implantation.device = Device.PROGRAMMABLE_PUMP
    implantation.full_clean()
    implantation.device = Device.ARTERIAL_PORT
    assert "no pump model" in field_errors(implantation)["pump_model"][0]


def test_a_constant_flow_model_needs_its_nominal_rate(db):
    model = PumpModel(name="X", manufacturer="Y", kind=Device.CONSTANT_FLOW_PUMP, reservoir_volume_ml=Decimal("30"))
    assert "nominal flow" in field_errors(model)["nominal_flow_ml_per_day"][0]
    with pytest.raises(IntegrityError), transaction.atomic():
        model.save()


def test_variant_arteries_record_how_each_was_handled(implantation):
    implantation.replaced_left_hepatic_artery = VariantHandling.LIGATED
    implantation.accessory_right_hepatic_artery = VariantHandling.NONE
    implantation.full_clean()
    implantation.save()
    implantation.refresh_from_db()
    assert [(v.value, h) for v, h in implantation.hepatic_artery_variants] == [
        ("replaced_left", "ligated"),
        ("accessory_right", "none"),
    ]
    implantation.replaced_common_hepatic_artery = "clipped"
    assert "replaced_common_hepatic_artery" in field_errors(implantation)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(implantation).objects.filter(pk=implantation.pk).update(replaced_common_hepatic_artery="clipped")


# --- perfusion findings -------------------------------------------------------------------------


def test_modality_is_taken_from_the_method_and_must_agree_with_it(implantation):
    check = PerfusionCheckFactory(implantation=implantation, method="maa_scintigraphy", modality="")
    check.refresh_from_db()
    assert check.modality == "maa_spect"
    check.modality = "intraoperative_dye"
    assert "modality" in field_errors(check)


def test_extrahepatic_sites_go_with_extrahepatic_perfusion_found(implantation):
    check = PerfusionCheckFactory(implantation=implantation, extrahepatic_perfusion=False)
    check.extrahepatic_sites = ["stomach"]
    assert "only go with" in field_errors(check)["extrahepatic_sites"][0]
    check.extrahepatic_perfusion = True
    check.extrahepatic_sites = ["stomach", "liver"]
    assert "Not a known code: liver" in field_errors(check)["extrahepatic_sites"][0]
    check.extrahepatic_sites = ["duodenum", "stomach"]
    check.full_clean()
    check.save()
    check.refresh_from_db()
    assert check.extrahepatic_sites == ["stomach", "duodenum"]  # stored in the vocabulary's order


def test_a_repeat_check_follows_a_correction(implantation):
    check = PerfusionCheckFactory(implantation=implantation, extrahepatic_perfusion=True)
    check.repeat_check_normal = True
    assert "record the correction" in field_errors(check)["repeat_check_normal"][0]
    check.correction = PerfusionCorrection.NONE
    assert "repeat_check_normal" in field_errors(check)
    check.correction = PerfusionCorrection.VESSEL_LIGATED
    check.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        type(check).objects.filter(pk=check.pk).update(repeat_check_normal=True, correction="")


# --- case mix ----------------------------------------------------------------------------------


def test_extrahepatic_disease_sites_need_extrahepatic_disease(centre_a):
    patient = PatientFactory(centre=centre_a, extrahepatic_disease=False, extrahepatic_sites=["lung"])
    assert "extrahepatic_sites" in field_errors(patient)
    patient.extrahepatic_disease = True
    patient.full_clean()


@pytest.mark.parametrize(
    "field, value", [("ecog", 5), ("clinical_risk_score", 6), ("cea_ng_per_ml", Decimal("-1")), ("braf_status", "x")]
)
def test_case_mix_values_out_of_range_are_refused_by_clean_and_the_database(centre_a, field, value):
    patient = PatientFactory(centre=centre_a)
    setattr(patient, field, value)
    assert field in field_errors(patient)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(patient).objects.filter(pk=patient.pk).update(**{field: value})


def test_an_inactive_pump_model_stays_on_its_records_but_is_not_chosen_anew(implantation, centre_a):
    retired = PumpModelFactory(name="Retired", active=True)
    implantation.pump_model = retired
    implantation.save()
    PumpModel.objects.filter(pk=retired.pk).update(active=False)
    implantation.refresh_from_db()
    implantation.full_clean()  # the value it already has
    other = ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(1))
    other.pump_model = implantation.pump_model
    assert "no longer in the pump catalogue's active models" in field_errors(other)["pump_model"][0]


@pytest.mark.parametrize("action", ["add", "change", "delete", "view"])
def test_only_the_coordinator_writes_the_pump_catalogue(coordinator, data_manager_a, centre_lead_a, action):
    assert coordinator.has_perm(f"registry.{action}_pumpmodel")
    for user in (data_manager_a, centre_lead_a):
        assert user.has_perm(f"registry.{action}_pumpmodel") is (action == "view")
