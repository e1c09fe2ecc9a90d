"""Derived values: never typed in, correct whatever order cases are entered in."""

from registry.models import Implantation

from .factories import (
    ImplantationFactory,
    PatientFactory,
    SurgeonFactory,
    TreatmentFactory,
    days_after,
)


def test_surgeon_sequence_counts_prior_pumps_and_earlier_cases_entered_out_of_order(centre_a):
    surgeon = SurgeonFactory(centre=centre_a, prior_pump_count=20)
    patient = PatientFactory(centre=centre_a)
    # Entered in the order: third, first, second (by date).
    third = ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(60))
    first = ImplantationFactory(patient=PatientFactory(centre=centre_a), surgeon=surgeon, implanted_on=days_after(0))
    second = ImplantationFactory(patient=PatientFactory(centre=centre_a), surgeon=surgeon, implanted_on=days_after(30))

    assert [first.surgeon_sequence, second.surgeon_sequence, third.surgeon_sequence] == [21, 22, 23]
    annotated = {i.pk: i.surgeon_sequence for i in Implantation.objects.with_derived()}
    assert annotated == {first.pk: 21, second.pk: 22, third.pk: 23}


def test_surgeon_sequence_is_per_surgeon_and_same_day_cases_get_distinct_numbers(centre_a):
    surgeon, other = SurgeonFactory(centre=centre_a), SurgeonFactory(centre=centre_a, prior_pump_count=5)
    a = ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(10))
    b = ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(10))
    c = ImplantationFactory(patient__centre=centre_a, surgeon=other, implanted_on=days_after(0))
    assert sorted([a.surgeon_sequence, b.surgeon_sequence]) == [1, 2]
    assert c.surgeon_sequence == 6


def test_sequence_follows_a_corrected_date(centre_a):
    surgeon = SurgeonFactory(centre=centre_a)
    early = ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(0))
    late = ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(40))
    early.implanted_on = days_after(50)
    early.save()
    assert (late.surgeon_sequence, early.surgeon_sequence) == (1, 2)


def test_treated_and_days_to_first_dose_ignore_held_cycles(centre_a):
    implantation = ImplantationFactory(patient__centre=centre_a)
    assert implantation.treated is False
    assert implantation.days_to_first_dose is None

    TreatmentFactory(
        implantation=implantation, given_on=days_after(12), dose_change="held", dose_change_reason="Low platelets"
    )
    assert implantation.treated is False

    TreatmentFactory(implantation=implantation, given_on=days_after(30))
    TreatmentFactory(implantation=implantation, given_on=days_after(18))
    assert implantation.treated is True
    assert implantation.days_to_first_dose == 18
    row = Implantation.objects.with_derived().get(pk=implantation.pk)
    assert (row.treated, row.days_to_first_dose) == (True, 18)
