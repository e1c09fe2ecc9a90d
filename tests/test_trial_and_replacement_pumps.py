"""Trial enrolment and replacement pumps on an implantation (issue 14, items 5 and 6)."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from registry.models import (
    DUPLICATE_IMPLANTATION_MESSAGE,
    REPLACED_TWICE_MESSAGE,
    TRIAL_ARM_WITHOUT_TRIAL_MESSAGE,
    TRIAL_FORMAT_MESSAGE,
    Implantation,
)
from registry.services import save_record
from reports.cohort import CohortRow, cohort
from reports.outcomes import OVERALL_SURVIVAL, first_of_each_patient

from .clients import client_for
from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, another_implantation

DAY = datetime.date(2024, 3, 1)
LATER = DAY + datetime.timedelta(days=30)


@pytest.fixture
def first(centre_a):
    patient = PatientFactory(centre=centre_a, pseudonym="PT-000001")
    return ImplantationFactory(
        patient=patient, surgeon=SurgeonFactory(centre=centre_a, code="SURG-01"), implanted_on=DAY
    )


another = another_implantation


def errors_of(record, field):
    with pytest.raises(ValidationError) as refused:
        record.full_clean()
    return refused.value.message_dict.get(field, [])


# --- Trial enrolment -------------------------------------------------------------------------------


@pytest.mark.parametrize("trial", ["NCT01234567", "2015-001234-56", "2023-501234-12-00", "ISRCTN12345678"])
def test_the_common_trial_registry_formats_are_accepted(first, trial):
    first.trial, first.trial_arm = trial, "HAI + systemic"
    first.full_clean()


@pytest.mark.parametrize("trial", ["NCT123", "nct01234567x", "PUMP trial", "NCT012345678"])
def test_another_trial_identifier_is_refused_with_the_formats(first, trial):
    first.trial = trial
    assert errors_of(first, "trial") == [TRIAL_FORMAT_MESSAGE]


def test_an_arm_without_a_trial_is_refused_in_clean_and_by_the_database(first):
    first.trial_arm = "control"
    assert errors_of(first, "trial_arm") == [TRIAL_ARM_WITHOUT_TRIAL_MESSAGE]
    with pytest.raises(IntegrityError), transaction.atomic():
        Implantation.objects.filter(pk=first.pk).update(trial_arm="control")


# --- Replacement pumps -----------------------------------------------------------------------------


def test_a_replacement_names_a_pump_of_the_same_patient(first, centre_a):
    other_patient = PatientFactory(centre=centre_a, pseudonym="PT-000002")
    stranger = ImplantationFactory(patient=other_patient, surgeon=first.surgeon, implanted_on=DAY)
    replacement = another(first, implanted_on=LATER, replaces=stranger)
    assert errors_of(replacement, "replaces") == ["The replaced pump must be an implantation of the same patient."]
    another(first, implanted_on=LATER, replaces=first).full_clean()


def test_an_implantation_does_not_replace_itself(first):
    first.replaces = first
    assert errors_of(first, "replaces") == ["An implantation cannot replace itself."]
    with pytest.raises(IntegrityError), transaction.atomic():
        Implantation.objects.filter(pk=first.pk).update(replaces=first)


def test_no_cycles_a_replaces_b_then_b_replaces_a_is_refused(first, data_manager_a):
    replacement = save_record(another(first, replaces=first), user=data_manager_a)  # same day: dates pass
    first.replaces = replacement
    assert "cycle" in errors_of(first, "replaces")[0]
    # Further up the chain too: C replaces B replaces A; A may not replace C.
    third = save_record(another(first, implanted_on=LATER, replaces=replacement), user=data_manager_a)
    first.replaces = third
    messages = errors_of(first, "replaces")
    assert messages and ("cycle" in messages[0] or "after this implantation" in messages[0])


def test_a_replacement_is_not_earlier_than_the_pump_it_replaces(first):
    earlier = another(first, implanted_on=DAY - datetime.timedelta(days=1), replaces=first)
    assert "after this implantation" in errors_of(earlier, "replaces")[0]


def test_a_same_day_replacement_is_allowed_while_a_same_day_duplicate_is_still_refused(first, data_manager_a):
    save_record(another(first, replaces=first), user=data_manager_a)
    with pytest.raises(ValidationError) as refused:
        save_record(another(first), user=data_manager_a)
    assert DUPLICATE_IMPLANTATION_MESSAGE in refused.value.messages
    # Also when a concurrent write got past validation: the database's conditional constraint.
    with mock.patch.object(Implantation, "full_clean"):
        with pytest.raises(ValidationError) as refused:
            save_record(another(first), user=data_manager_a)
    assert DUPLICATE_IMPLANTATION_MESSAGE in refused.value.messages
    assert Implantation.objects.count() == 2


def test_a_pump_is_replaced_only_once(first, data_manager_a):
    save_record(another(first, implanted_on=LATER, replaces=first), user=data_manager_a)
    with pytest.raises(ValidationError) as refused:
        save_record(
            another(first, implanted_on=LATER + datetime.timedelta(days=1), replaces=first), user=data_manager_a
        )
    assert REPLACED_TWICE_MESSAGE in refused.value.messages
    with mock.patch.object(Implantation, "full_clean"):
        with pytest.raises(ValidationError) as refused:
            save_record(
                another(first, implanted_on=LATER + datetime.timedelta(days=2), replaces=first), user=data_manager_a
            )
    assert REPLACED_TWICE_MESSAGE in refused.value.messages


def test_a_replaced_pump_is_protected_from_deletion(first, data_manager_a):
    from django.db.models import ProtectedError

    save_record(another(first, implanted_on=LATER, replaces=first), user=data_manager_a)
    with pytest.raises(ProtectedError):
        first.delete()


# --- API -------------------------------------------------------------------------------------------


def test_the_api_round_trips_trial_arm_and_replaces(first, data_manager_a, investigator):
    body = {
        "patient": first.patient.pk,
        "surgeon": first.surgeon.code,
        "implanted_on": LATER.isoformat(),
        "indication": first.indication,
        "approach": first.approach,
        "device": first.device,
        "catheter_vessel": first.catheter_vessel,
        "trial": "NCT01234567",
        "trial_arm": "HAI + FOLFOX",
        "replaces": first.pk,
    }
    created = client_for(data_manager_a).post("/api/v1/implantations/", body, format="json")
    assert created.status_code == 201, created.json()
    row = client_for(data_manager_a).get(f"/api/v1/implantations/{created.json()['id']}/").json()
    assert (row["trial"], row["trial_arm"], row["replaces"]) == ("NCT01234567", "HAI + FOLFOX", first.pk)
    assert client_for(data_manager_a).get(f"/api/v1/implantations/{first.pk}/").json()["replaces"] is None
    # A client that does not know the field yet (a PUT without it) leaves it as it is.
    put = client_for(data_manager_a).put(
        f"/api/v1/implantations/{row['id']}/",
        {k: v for k, v in body.items() if k != "replaces"},
        format="json",
        HTTP_IF_MATCH='"1"',
    )
    assert put.status_code == 200, put.json()
    assert Implantation.objects.get(pk=row["id"]).replaces_id == first.pk

    refused = client_for(data_manager_a).post(
        "/api/v1/implantations/", {**body, "trial": "", "implanted_on": DAY.isoformat(), "replaces": None}
    )
    assert refused.status_code == 400

    # Investigators: the replaced implantation as the opaque code its own row carries.
    rows = {r["code"]: r for r in client_for(investigator).get("/api/v1/implantations/").json()["results"]}
    replacement = next(r for r in rows.values() if r["replaces"])
    assert replacement["replaces"] in rows and str(first.pk) != replacement["replaces"]
    assert rows[replacement["replaces"]]["replaces"] is None
    assert (replacement["trial"], replacement["trial_arm"]) == ("NCT01234567", "HAI + FOLFOX")


# --- A patient counted once in patient-level outcomes ----------------------------------------------


def row(id, patient_id, implanted_on, replaces_id=None):
    return CohortRow(
        id=id,
        patient_id=patient_id,
        centre_id=1,
        centre_code="C1",
        indication="adjuvant",
        sex="F",
        surgeon_id=1,
        surgeon_code="S1",
        implanted_on=implanted_on,
        replaces_id=replaces_id,
    )


def test_first_of_each_patient_keeps_the_start_of_each_chain():
    # Patient 1: a same-day replacement entered first (lower id) of pump 2, then a later one.
    rows = [row(1, 1, DAY, replaces_id=2), row(2, 1, DAY), row(3, 1, LATER, replaces_id=1), row(4, 2, LATER)]
    assert [r.id for r in first_of_each_patient(rows)] == [2, 4]


def test_a_replacement_pump_does_not_add_the_patient_to_overall_survival(first, data_manager_a):
    save_record(another(first, replaces=first), user=data_manager_a)
    save_record(
        another(first, implanted_on=LATER, replaces=Implantation.objects.get(replaces=first)), user=data_manager_a
    )
    rows = cohort()
    assert len(rows) == 3 and sorted(r.replaces_id is None for r in rows) == [False, False, True]
    subjects = OVERALL_SURVIVAL.subjects(rows)
    assert len(subjects) == 1 and subjects[0].row.id == first.pk


# --- Admin -----------------------------------------------------------------------------------------


def test_the_admin_offers_only_the_same_patients_earlier_pumps_and_saves_a_replacement(
    client, first, data_manager_a, centre_a
):
    from .admin_forms import implantation_form

    ImplantationFactory(patient=PatientFactory(centre=centre_a), surgeon=first.surgeon, implanted_on=DAY)
    replacement = ImplantationFactory(patient=first.patient, surgeon=first.surgeon, implanted_on=LATER)
    client.force_login(data_manager_a)
    page = client.get(f"/admin/registry/implantation/{replacement.pk}/change/")
    form = page.context["adminform"].form
    assert list(form.fields["replaces"].queryset) == [first]
    assert "trial" in form.fields and "trial_arm" in form.fields

    data = implantation_form(
        first.patient,
        first.surgeon,
        implanted_on=DAY.isoformat(),
        replaces=str(first.pk),
        trial="NCT01234567",
        trial_arm="HAI arm",
    )
    response = client.post("/admin/registry/implantation/add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    added = Implantation.objects.get(replaces=first)
    assert (added.implanted_on, added.trial, added.trial_arm) == (DAY, "NCT01234567", "HAI arm")
