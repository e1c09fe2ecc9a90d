"""The audit trail: who, when and what changed, for every create, change and delete; never editable."""

import pytest
from django.urls import reverse

from registry.models import Implantation, Patient
from registry.services import delete_record, save_record

from .admin_forms import implantation_form, patient_form
from .factories import ImplantationFactory, PatientFactory, SurgeonFactory


def test_admin_create_change_delete_each_leave_a_history_row_with_the_user(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    # The registry generates the pseudonym (only the coordinator sets one: tests/test_api_deidentification.py).
    client.post(reverse("admin:registry_patient_add"), patient_form(centre_a))
    patient = Patient.objects.get(centre=centre_a)
    client.post(
        reverse("admin:registry_patient_change", args=[patient.pk]),
        patient_form(centre_a, pseudonym=patient.pseudonym, birth_year="1970"),
    )
    client.post(reverse("admin:registry_patient_delete", args=[patient.pk]), {"post": "yes", "reason": "Test entry"})

    history = Patient.history.filter(id=patient.pk).order_by("history_date")
    assert [h.history_type for h in history] == ["+", "~", "-"]
    assert {h.history_user for h in history} == {data_manager_a}
    changed = history[1].diff_against(history[0])
    assert [(c.field, c.old, c.new) for c in changed.changes] == [("birth_year", 1961, 1970)]


def test_child_records_entered_inline_are_audited_too(client, data_manager_a, centre_a):
    from .admin_forms import inline_rows

    client.force_login(data_manager_a)
    patient, surgeon = PatientFactory(centre=centre_a), SurgeonFactory(centre=centre_a)
    data = implantation_form(patient, surgeon)
    data.update(
        inline_rows(
            "treatments",
            [
                {
                    "given_on": "2024-05-20",
                    "drug": "fudr",
                    "dose": "0.12",
                    "dose_unit": "mg/kg/day",
                    "dose_change": "full",
                }
            ],
        )
    )
    assert client.post(reverse("admin:registry_implantation_add"), data).status_code == 302
    from registry.models import Treatment

    assert Treatment.history.get().history_user == data_manager_a


def test_service_writes_record_the_user_and_reason(data_manager_a, centre_a):
    implantation = ImplantationFactory(patient__centre=centre_a)
    implantation.length_of_stay_days = 6
    save_record(implantation, user=data_manager_a, reason="Discharge letter received")
    latest = implantation.history.latest()
    assert (latest.history_user, latest.history_change_reason, latest.length_of_stay_days) == (
        data_manager_a,
        "Discharge letter received",
        6,
    )
    pk = implantation.pk
    delete_record(implantation, user=data_manager_a, reason="Entered in error")
    deleted = Implantation.history.filter(id=pk).latest()
    assert (deleted.history_type, deleted.history_user) == ("-", data_manager_a)


def test_service_refuses_another_centres_record(data_manager_a, centre_b):
    from django.core.exceptions import PermissionDenied

    implantation = ImplantationFactory(patient__centre=centre_b)
    with pytest.raises(PermissionDenied):
        save_record(implantation, user=data_manager_a)
    with pytest.raises(PermissionDenied):
        delete_record(implantation, user=data_manager_a, reason="Entered in error")


def test_history_is_viewable_in_the_admin_but_not_editable(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    patient = PatientFactory(centre=centre_a, birth_year=1960)
    patient.birth_year = 1961
    patient.save()
    first = patient.history.earliest()
    assert client.get(reverse("admin:registry_patient_history", args=[patient.pk])).status_code == 200
    url = reverse("admin:registry_patient_simple_history", args=[patient.pk, first.history_id])
    page = client.get(url)
    assert page.status_code == 200 and "Revert" not in page.content.decode()
    response = client.post(url, patient_form(centre_a, pseudonym=patient.pseudonym, birth_year="1960"))
    assert response.status_code == 403
    patient.refresh_from_db()
    assert patient.birth_year == 1961


def test_history_of_another_centres_record_is_not_shown(client, data_manager_a, centre_b):
    client.force_login(data_manager_a)
    other = PatientFactory(centre=centre_b)
    assert client.get(reverse("admin:registry_patient_history", args=[other.pk])).status_code in (403, 404)
    version = other.history.latest().history_id
    assert client.get(reverse("admin:registry_patient_simple_history", args=[other.pk, version])).status_code == 403
