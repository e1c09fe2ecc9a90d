"""Rules that keep the data right: each rejection names the field that is wrong."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry import rules
from registry.models import FollowUp, Treatment

from .factories import (
    ComplicationFactory,
    FollowUpFactory,
    ImplantationFactory,
    LiverTestFactory,
    PatientFactory,
    SurgeonFactory,
    SystemicTherapyLineFactory,
    TreatmentFactory,
    days_after,
)


def field_errors(record):
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    return caught.value.message_dict


@pytest.fixture
def implantation(centre_a):
    return ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(0))


# --- ranges and vocabularies -------------------------------------------------------


@pytest.mark.parametrize(
    "drug,unit,dose,field",
    [
        ("fudr", "mg/kg/day", "0.9", "dose"),  # above FUDR's label range
        ("fudr", "mg/m2", "0.12", "dose_unit"),  # FUDR is not dosed per m²
        ("oxaliplatin", "mg/m2", "400", "dose"),
        ("irinotecan", "mg/kg/day", "1", "dose_unit"),
    ],
)
def test_implausible_dose_for_drug_and_unit_is_rejected_on_its_field(implantation, drug, unit, dose, field):
    treatment = Treatment(
        implantation=implantation, given_on=days_after(16), drug=drug, dose_unit=unit, dose=Decimal(dose)
    )
    assert field in field_errors(treatment)


@pytest.mark.parametrize(
    "drug,unit,dose", [("fudr", "mg/kg/day", "0.12"), ("oxaliplatin", "mg/m2", "100"), ("5fu", "mg/m2", "1000")]
)
def test_plausible_doses_pass(implantation, drug, unit, dose):
    Treatment(
        implantation=implantation, given_on=days_after(16), drug=drug, dose_unit=unit, dose=Decimal(dose)
    ).full_clean()


def test_database_rejects_an_implausible_dose_even_without_validation(implantation):
    with pytest.raises(IntegrityError), transaction.atomic():
        Treatment.objects.create(
            implantation=implantation, given_on=days_after(16), drug="fudr", dose_unit="mg/kg/day", dose=5
        )


@pytest.mark.parametrize("grade", [0, 6])
def test_grade_outside_1_to_5_is_rejected(implantation, grade):
    complication = ComplicationFactory.build(implantation=implantation, grade=grade)
    assert "grade" in field_errors(complication)
    with pytest.raises(IntegrityError), transaction.atomic():
        complication.save()


def test_clavien_dindo_only_for_surgical_types_and_v_means_grade_5(implantation):
    from registry.models import ComplicationType

    toxicity = ComplicationFactory.build(implantation=implantation, clavien_dindo="II")
    assert "clavien_dindo" in field_errors(toxicity)
    surgical = ComplicationFactory.build(
        implantation=implantation,
        type=ComplicationType.objects.get(code="pocket_infection"),
        clavien_dindo="V",
        grade=3,
    )
    assert "grade" in field_errors(surgical)


def test_inactive_complication_type_cannot_be_chosen_for_a_new_record(implantation):
    from registry.models import ComplicationType

    retired = ComplicationType.objects.create(
        code="retired", name="Retired type", grading_system="ctcae", category="other", active=False
    )
    assert "type" in field_errors(ComplicationFactory.build(implantation=implantation, type=retired))


@pytest.mark.parametrize("year,ok", [(1899, False), (1950, True), ("next", False)])
def test_birth_year_range(centre_a, year, ok):
    # "Next year" by the registry's own calendar (rules.today), not the test machine's.
    year = rules.today().year + 1 if year == "next" else year
    patient = PatientFactory.build(centre=centre_a, birth_year=year)
    if ok:
        patient.full_clean()
    else:
        assert "birth_year" in field_errors(patient)


def test_birth_year_out_of_range_is_refused_by_the_database(centre_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        PatientFactory(centre=centre_a, birth_year=1800)


def test_vocabulary_is_enforced(implantation):
    implantation.indication = "palliative"
    assert "indication" in field_errors(implantation)
    with pytest.raises(IntegrityError), transaction.atomic():
        type(implantation).objects.filter(pk=implantation.pk).update(indication="palliative")


def test_pseudonym_is_generated_and_never_looks_like_a_name(centre_a):
    patient = PatientFactory(centre=centre_a, pseudonym="")
    assert patient.pseudonym.startswith("HAI-") and len(patient.pseudonym) == 12
    assert "pseudonym" in field_errors(PatientFactory.build(centre=centre_a, pseudonym="jean dupont"))


# --- dates ----------------------------------------------------------------------


def test_nothing_clinical_before_the_implantation(implantation):
    for record, field in (
        (TreatmentFactory.build(implantation=implantation, given_on=days_after(-1)), "given_on"),
        (ComplicationFactory.build(implantation=implantation, onset_on=days_after(-3)), "onset_on"),
        (LiverTestFactory.build(implantation=implantation, measured_on=days_after(-10)), "measured_on"),
        (FollowUpFactory.build(implantation=implantation, contact_on=days_after(-1)), "contact_on"),
    ):
        assert "precedes the implantation" in " ".join(field_errors(record)[field])


def test_baseline_liver_tests_and_earlier_systemic_lines_may_precede_the_implantation(implantation):
    LiverTestFactory.build(implantation=implantation, measured_on=days_after(-10), is_baseline=True).full_clean()
    assert "measured_on" in field_errors(
        LiverTestFactory.build(implantation=implantation, measured_on=days_after(-120), is_baseline=True)
    )
    SystemicTherapyLineFactory.build(
        patient=implantation.patient, started_on=days_after(-300), ended_on=days_after(-20)
    ).full_clean()


def test_systemic_line_cannot_end_before_it_starts(implantation):
    line = SystemicTherapyLineFactory.build(
        patient=implantation.patient, started_on=days_after(-30), ended_on=days_after(-60)
    )
    assert "ended_on" in field_errors(line)
    with pytest.raises(IntegrityError), transaction.atomic():
        line.save()


def test_no_date_in_the_future(implantation):
    tomorrow = rules.today() + datetime.timedelta(days=1)
    assert "implanted_on" in field_errors(
        ImplantationFactory.build(patient=implantation.patient, surgeon=implantation.surgeon, implanted_on=tomorrow)
    )
    assert "given_on" in field_errors(TreatmentFactory.build(implantation=implantation, given_on=tomorrow))


def test_death_comes_after_everything_else(implantation):
    TreatmentFactory(implantation=implantation, given_on=days_after(100))
    early_death = FollowUp(
        implantation=implantation, contact_on=days_after(120), vital_status="dead", died_on=days_after(90)
    )
    assert "HAI dose" in " ".join(field_errors(early_death)["died_on"])

    FollowUpFactory(implantation=implantation, contact_on=days_after(200), vital_status="dead", died_on=days_after(150))
    late_dose = TreatmentFactory.build(implantation=implantation, given_on=days_after(160))
    assert "recorded death" in " ".join(field_errors(late_dose)["given_on"])


def test_follow_up_event_dates_fit_between_implantation_contact_and_death(implantation):
    record = FollowUp(
        implantation=implantation,
        contact_on=days_after(100),
        vital_status="alive",
        hepatic_progression_on=days_after(130),
    )
    assert "hepatic_progression_on" in field_errors(record)
    record = FollowUp(implantation=implantation, contact_on=days_after(100), vital_status="dead")
    assert "died_on" in field_errors(record)
    with pytest.raises(IntegrityError), transaction.atomic():
        record.save()


def test_moving_the_implantation_after_its_doses_is_refused(implantation):
    TreatmentFactory(implantation=implantation, given_on=days_after(15))
    implantation.implanted_on = days_after(20)
    assert "HAI dose" in " ".join(field_errors(implantation)["implanted_on"])


def test_surgeon_must_belong_to_the_patients_centre(implantation, centre_b):
    implantation.surgeon = SurgeonFactory(centre=centre_b)
    assert "surgeon" in field_errors(implantation)


# --- never treated --------------------------------------------------------------


def test_never_treated_reason_only_without_doses(implantation):
    TreatmentFactory(implantation=implantation)
    implantation.never_treated_reason = "progression"
    assert "never_treated_reason" in field_errors(implantation)


def test_no_dose_on_an_implantation_recorded_as_never_treated(implantation):
    implantation.never_treated_reason = "patient_choice"
    implantation.save()
    assert "given_on" in field_errors(TreatmentFactory.build(implantation=implantation))
    # A held cycle is not a dose.
    TreatmentFactory.build(
        implantation=implantation, dose_change="held", dose_change_reason="Bilirubin raised"
    ).full_clean()


def test_follow_up_saying_never_used_requires_the_reason(implantation):
    follow_up = FollowUpFactory.build(implantation=implantation, pump_never_used=True)
    assert "Required" in " ".join(field_errors(follow_up)["pump_never_used"])
    implantation.never_treated_reason = "extrahepatic_perfusion"
    implantation.save()
    follow_up.full_clean()
    follow_up.save()
    implantation.never_treated_reason = ""
    assert "never_treated_reason" in field_errors(implantation)


def test_follow_up_cannot_say_never_used_when_doses_were_given(implantation):
    TreatmentFactory(implantation=implantation)
    follow_up = FollowUpFactory.build(implantation=implantation, pump_never_used=True)
    assert "pump was used" in " ".join(field_errors(follow_up)["pump_never_used"])
