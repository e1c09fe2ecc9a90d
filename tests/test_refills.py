"""The refill record (issue 14): measured flow from the volumes, the computed dose against the stated one,
and the rules on volumes, linked liver tests and coded hold reasons."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry import refills, soft_warnings
from registry.vocabulary import Device, DoseChange, HoldReason

from .factories import ImplantationFactory, LiverTestFactory, PumpModelFactory, TreatmentFactory, days_after


def field_errors(record):
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    return caught.value.message_dict


@pytest.fixture
def pump(db):
    return PumpModelFactory(reservoir_volume_ml=Decimal("30.0"), nominal_flow_ml_per_day=Decimal("1.00"))


@pytest.fixture
def implantation(centre_a, pump):
    return ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0), pump_model=pump)


def refill(implantation, day, **fields):
    fields.setdefault("filled_volume_ml", Decimal("30.0"))
    return TreatmentFactory(implantation=implantation, given_on=days_after(day), **fields)


def dose_warnings(treatment):
    return [w for w in soft_warnings.current_warnings(treatment) if w.code == "dose_differs_from_computed"]


# --- the formulas --------------------------------------------------------------------------


def test_measured_flow_is_the_volume_delivered_over_the_days_since_the_previous_refill():
    assert refills.measured_flow(Decimal("30.0"), days_after(0), Decimal("2.0"), days_after(14)) == Decimal("2.00")
    assert refills.measured_flow(30, days_after(0), 16, days_after(14)) == Decimal("1.00")
    assert refills.measured_flow(Decimal("30.0"), days_after(0), Decimal("9.0"), days_after(15)) == Decimal("1.40")


@pytest.mark.parametrize(
    "previous_filled, previous_day, returned, day",
    [(None, 0, 2, 14), (30, None, 2, 14), (30, 0, None, 14), (30, 14, 2, 14), (30, 14, 2, 10), (30, 0, 31, 14)],
)
def test_no_measured_flow_without_both_volumes_a_positive_interval_and_a_delivery(
    previous_filled, previous_day, returned, day
):
    previous_on = None if previous_day is None else days_after(previous_day)
    assert refills.measured_flow(previous_filled, previous_on, returned, days_after(day)) is None


def test_computed_dose_is_concentration_times_flow_over_weight():
    # MSKCC: 0.12 mg/kg/day × 80 kg ÷ 1.0 mL/day = 9.6 mg/mL in the reservoir.
    assert refills.computed_dose(Decimal("9.6"), Decimal("1.00"), Decimal("80.0")) == Decimal("0.120")
    assert refills.computed_dose(Decimal("4.0"), Decimal("1.25"), Decimal("50")) == Decimal("0.100")
    assert refills.computed_dose(None, Decimal("1"), Decimal("50")) is None


# --- on rows ---------------------------------------------------------------------------------


def test_flow_of_a_refill_reads_the_previous_refill_of_the_same_implantation(implantation, centre_a):
    refill(implantation, 3, filled_volume_ml=Decimal("30.0"))
    other = ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    refill(other, 10, filled_volume_ml=Decimal("5.0"))  # another implantation's refill is never "previous"
    second = refill(implantation, 17, returned_volume_ml=Decimal("2.0"))
    assert refills.flow_of(second) == Decimal("2.00")
    first = implantation.treatments.order_by("given_on").first()
    assert refills.flow_of(first) is None


def test_the_list_annotation_gives_the_same_flow_whatever_the_filter(implantation):
    from registry.models import Treatment

    refill(implantation, 3, filled_volume_ml=Decimal("30.0"))
    refill(implantation, 17, returned_volume_ml=Decimal("2.0"))
    filtered = refills.with_previous_refill(Treatment.objects.filter(given_on=days_after(17)))
    assert [refills.flow_of_row(row) for row in filtered] == [Decimal("2.00")]
    rows = refills.with_previous_refill(Treatment.objects.order_by("given_on")).values(
        "given_on", "returned_volume_ml", "previous_given_on", "previous_filled_volume_ml"
    )
    assert [refills.flow_of_row(row) for row in rows] == [None, Decimal("2.00")]


def test_stated_dose_more_than_ten_percent_from_the_computed_one_is_a_soft_warning(implantation):
    # 7.2 mg/mL × 1.0 mL/day (nominal, no previous refill) ÷ 80 kg = 0.090 mg/kg/day; the gap is relative
    # to the stated (prescribed) dose.
    treatment = refill(implantation, 3, drug_concentration_mg_per_ml=Decimal("7.2"), body_weight_kg=Decimal("80"))
    treatment.dose = Decimal("0.100")  # exactly 10% apart: not more than 10%
    assert dose_warnings(treatment) == []
    treatment.dose = Decimal("0.120")  # 25% apart
    [warning] = dose_warnings(treatment)
    assert warning.field == "dose"
    assert warning.message == (
        "The stated dose of 0.12 mg/kg/day and the dose this fill gives, 0.09 mg/kg/day "
        "(7.2 mg/mL × 1 mL/day nominal flow ÷ 80 kg), are 25% apart (more than 10%)."
    )


def test_the_computed_dose_uses_the_measured_flow_when_there_is_one(implantation):
    refill(implantation, 3, filled_volume_ml=Decimal("30.0"))
    # Returned 2 mL after 14 days: 2.0 mL/day measured, so 8.0 mg/mL ÷ 80 kg gives 0.2, not 0.1 (nominal).
    treatment = refill(
        implantation,
        17,
        returned_volume_ml=Decimal("2.0"),
        drug_concentration_mg_per_ml=Decimal("8.0"),
        body_weight_kg=Decimal("80"),
        dose=Decimal("0.200"),
    )
    assert refills.dose_check(treatment) == (Decimal("0.200"), Decimal("2.00"), "measured")
    assert dose_warnings(treatment) == []
    treatment.dose = Decimal("0.100")
    [warning] = dose_warnings(treatment)
    assert "measured flow" in warning.message


def test_no_dose_check_without_its_inputs_or_for_a_held_cycle(centre_a, implantation):
    treatment = refill(implantation, 3, body_weight_kg=Decimal("80"))
    treatment.dose = Decimal("0.5")
    assert refills.dose_check(treatment) is None  # no concentration
    treatment.drug_concentration_mg_per_ml = Decimal("8.0")
    treatment.dose_change, treatment.hold_reason = DoseChange.HELD, HoldReason.BILIRUBIN
    assert dose_warnings(treatment) == []
    no_model = ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    unknown_pump = refill(no_model, 3, drug_concentration_mg_per_ml=Decimal("8.0"), body_weight_kg=Decimal("80"))
    assert refills.dose_check(unknown_pump) is None  # neither a measured nor a nominal flow


# --- hard rules ---------------------------------------------------------------------------------


def test_more_returned_than_was_filled_at_the_previous_refill_is_refused(implantation):
    refill(implantation, 3, filled_volume_ml=Decimal("20.0"))
    treatment = refill(implantation, 17)
    treatment.returned_volume_ml = Decimal("21.0")
    assert "previous refill" in field_errors(treatment)["returned_volume_ml"][0]
    treatment.returned_volume_ml = Decimal("20.0")
    treatment.full_clean()


def test_a_fill_larger_than_the_reservoir_is_refused(implantation):
    treatment = refill(implantation, 3)
    treatment.filled_volume_ml = Decimal("31.0")
    assert "reservoir (30.0 mL)" in field_errors(treatment)["filled_volume_ml"][0]


def test_a_port_has_no_reservoir_volumes(centre_a):
    port = ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0), device=Device.ARTERIAL_PORT)
    treatment = TreatmentFactory.build(implantation=port, given_on=days_after(3), returned_volume_ml=Decimal("1"))
    assert "no reservoir" in field_errors(treatment)["returned_volume_ml"][0]


def test_linked_liver_tests_are_of_the_same_implantation_and_from_the_week_before_the_refill(implantation, centre_a):
    treatment = refill(implantation, 17)
    treatment.liver_test = LiverTestFactory(implantation=implantation, measured_on=days_after(10))
    treatment.full_clean()  # 7 days before: in
    treatment.liver_test = LiverTestFactory(implantation=implantation, measured_on=days_after(9))
    assert "7 days before" in field_errors(treatment)["liver_test"][0]
    treatment.liver_test = LiverTestFactory(implantation=implantation, measured_on=days_after(18))
    assert "liver_test" in field_errors(treatment)
    other = ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))
    treatment.liver_test = LiverTestFactory(implantation=other, measured_on=days_after(17))
    assert "another implantation" in field_errors(treatment)["liver_test"][0]


def test_a_reduced_or_held_dose_needs_a_coded_reason_and_a_full_one_has_none(implantation):
    treatment = refill(implantation, 3)
    treatment.dose_change, treatment.hold_reason, treatment.dose_change_reason = DoseChange.REDUCED, "", "free text"
    assert "Say why" in field_errors(treatment)["hold_reason"][0]
    treatment.hold_reason = HoldReason.ALP
    treatment.full_clean()
    treatment.dose_change = DoseChange.FULL
    assert "only goes with" in field_errors(treatment)["hold_reason"][0]


def test_the_database_refuses_a_hold_reason_on_a_full_dose(implantation):
    treatment = refill(implantation, 3)
    treatment.hold_reason = HoldReason.AST
    with pytest.raises(IntegrityError), transaction.atomic():
        treatment.save()


def test_a_row_from_before_the_coded_reason_keeps_its_free_text_reason(implantation):
    # Existing rows migrate intact: the database still accepts a reduction with only the free-text reason.
    treatment = refill(implantation, 3, dose_change=DoseChange.REDUCED, dose_change_reason="ALP up")
    treatment.hold_reason = ""
    treatment.save()
    treatment.refresh_from_db()
    assert (treatment.hold_reason, treatment.dose_change_reason) == ("", "ALP up")
    treatment.dose_change_reason = ""
    with pytest.raises(IntegrityError), transaction.atomic():
        treatment.save()


def test_a_patient_whose_refill_links_liver_tests_can_still_be_erased_whole(implantation, coordinator):
    # The link is RESTRICT: a liver test cannot be deleted from under its refill, but erasing the patient
    # (consent withdrawal) removes both in one cascade.
    from registry.consent import erase_patient_records
    from registry.models import LiverTest, Treatment

    test = LiverTestFactory(implantation=implantation, measured_on=days_after(16))
    refill(implantation, 17, liver_test=test)
    with transaction.atomic():
        counts, _ = erase_patient_records(implantation.patient_id)
    assert counts["treatments"] == 1 and counts["liver_tests"] == 1
    assert not Treatment.objects.filter(implantation_id=implantation.pk).exists()
    assert not LiverTest.objects.filter(pk=test.pk).exists()
