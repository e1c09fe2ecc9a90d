"""Deleting asks for a reason, which every deleted row's history keeps; only the coordinator deletes a
patient who has clinical records (issue 11)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from registry.models import Implantation, Patient, SystemicTherapyLine, Treatment
from registry.services import delete_record

from . import factories
from .admin_forms import implantation_form, inline_rows

REASON = "Entered twice; the other record is the right one"


def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def implantation(centre_a):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a, surgeon=factories.SurgeonFactory(centre=centre_a)
    )
    factories.TreatmentFactory(implantation=implantation)
    return implantation


def _deletion_row(model, pk):
    return model.history.filter(id=pk, history_type="-").get()


# --- The service ---------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_deletion_without_a_reason_is_refused(data_manager_a, implantation, reason):
    with pytest.raises(ValidationError) as error:
        delete_record(implantation, user=data_manager_a, reason=reason)
    assert "reason" in error.value.message_dict
    assert Implantation.objects.filter(pk=implantation.pk).exists()


def test_every_row_a_deletion_takes_with_it_keeps_the_user_and_the_reason(data_manager_a, implantation):
    rows = ((Implantation, implantation.pk), (Treatment, implantation.treatments.get().pk))
    delete_record(implantation, user=data_manager_a, reason=REASON)

    for model, pk in rows:
        row = _deletion_row(model, pk)
        assert (row.history_user, row.history_user_name, row.history_change_reason) == (
            data_manager_a,
            data_manager_a.username,
            REASON,
        )


def test_a_deletion_of_a_record_changed_since_it_was_read_is_refused(data_manager_a, implantation):
    from sites.versioning import StaleRecord

    Implantation.objects.filter(pk=implantation.pk).update(version=2)
    with pytest.raises(StaleRecord):
        delete_record(implantation, user=data_manager_a, reason=REASON)
    assert Implantation.objects.filter(pk=implantation.pk).exists()


# --- A patient with clinical records: the coordinator's alone --------------------------------


@pytest.mark.parametrize("records", ["implantation", "systemic line"])
def test_a_data_manager_cannot_delete_a_patient_who_has_clinical_records(data_manager_a, centre_a, records):
    patient = factories.PatientFactory(centre=centre_a)
    if records == "implantation":
        factories.ImplantationFactory(patient=patient, surgeon=factories.SurgeonFactory(centre=centre_a))
    else:
        SystemicTherapyLine.objects.create(patient=patient, line_number=1, regimen="folfox", started_on="2024-01-10")
    with pytest.raises(PermissionDenied, match="Only the registry coordinator"):
        delete_record(patient, user=data_manager_a, reason=REASON)
    assert Patient.objects.filter(pk=patient.pk).exists()


def test_a_data_manager_may_delete_their_patient_without_clinical_records(data_manager_a, centre_a):
    pk = factories.PatientFactory(centre=centre_a).pk
    delete_record(Patient.objects.get(pk=pk), user=data_manager_a, reason=REASON)
    assert not Patient.objects.filter(pk=pk).exists()
    assert _deletion_row(Patient, pk).history_change_reason == REASON


def test_the_coordinator_deletes_a_patient_with_records_and_each_row_keeps_the_reason(coordinator, implantation):
    rows = ((Patient, implantation.patient.pk), (Implantation, implantation.pk))
    delete_record(implantation.patient, user=coordinator, reason=REASON)
    assert not Implantation.objects.filter(pk=implantation.pk).exists()
    for model, pk in rows:
        assert _deletion_row(model, pk).history_change_reason == REASON


# --- The admin -----------------------------------------------------------------------------


def _delete_url(model, record):
    return reverse(f"admin:registry_{model}_delete", args=[record.pk])


def test_the_admin_asks_for_a_reason_and_keeps_it(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    url = _delete_url("implantation", implantation)
    page = client.get(url).content.decode()
    assert 'name="reason"' in page and 'name="opened_version" value="1"' in page

    refused = client.post(url, {"post": "yes"}, follow=True)
    assert "Give a reason for deleting" in refused.content.decode()
    assert Implantation.objects.filter(pk=implantation.pk).exists()

    assert client.post(url, {"post": "yes", "reason": REASON, "opened_version": "1"}).status_code == 302
    assert not Implantation.objects.filter(pk=implantation.pk).exists()
    row = _deletion_row(Implantation, implantation.pk)
    assert (row.history_user, row.history_change_reason) == (data_manager_a, REASON)


def test_the_admin_refuses_to_delete_what_changed_since_the_page_was_opened(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    Implantation.objects.filter(pk=implantation.pk).update(version=2)
    response = client.post(
        _delete_url("implantation", implantation), {"post": "yes", "reason": REASON, "opened_version": "1"}, follow=True
    )
    assert "nothing was deleted" in response.content.decode()
    assert Implantation.objects.filter(pk=implantation.pk).exists()


def test_the_admin_has_no_bulk_delete(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    changelist = reverse("admin:registry_implantation_changelist")
    assert "delete_selected" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_selected", "_selected_action": [implantation.pk], "post": "yes"})
    assert Implantation.objects.filter(pk=implantation.pk).exists()


def test_the_admin_offers_no_delete_of_a_patient_with_records_to_a_data_manager(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    patient = implantation.patient
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk])).content.decode()
    assert reverse("admin:registry_patient_delete", args=[patient.pk]) not in page
    response = client.post(_delete_url("patient", patient), {"post": "yes", "reason": REASON})
    assert response.status_code == 403
    assert Patient.objects.filter(pk=patient.pk).exists()


def _page_deleting_the_dose(implantation, **extra):
    dose = implantation.treatments.get()
    row = {
        "id": str(dose.pk),
        "implantation": str(implantation.pk),
        "given_on": dose.given_on.isoformat(),
        "drug": dose.drug,
        "dose": str(dose.dose),
        "dose_unit": dose.dose_unit,
        "DELETE": "on",
    }
    data = {**implantation_form(implantation.patient, implantation.surgeon), **inline_rows("treatments", [row], 1)}
    for name in ("indication", "approach", "device", "catheter_vessel"):
        data[name] = getattr(implantation, name)
    data["implanted_on"] = implantation.implanted_on.isoformat()
    return dose, {**data, **extra}


def test_a_row_deleted_on_its_parents_page_needs_the_pages_reason(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])
    dose, data = _page_deleting_the_dose(implantation)

    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "Give a reason for this change" in refused.content.decode()
    assert Treatment.objects.filter(pk=dose.pk).exists()

    assert client.post(url, {**data, "change_reason": REASON}).status_code == 302
    assert not Treatment.objects.filter(pk=dose.pk).exists()
    row = _deletion_row(Treatment, dose.pk)
    assert (row.history_user, row.history_change_reason) == (data_manager_a, REASON)


# --- The API -------------------------------------------------------------------------------


def test_the_api_asks_for_a_reason_and_keeps_it(data_manager_a, implantation):
    client = api_client(data_manager_a)
    url = f"/api/v1/implantations/{implantation.pk}/"
    tag = client.get(url)["ETag"]

    refused = client.delete(url, format="json", HTTP_IF_MATCH=tag)
    assert refused.status_code == 400
    assert refused.json()["errors"]["reason"]
    assert Implantation.objects.filter(pk=implantation.pk).exists()

    assert client.delete(url, {"reason": REASON}, format="json", HTTP_IF_MATCH=tag).status_code == 204
    row = _deletion_row(Implantation, implantation.pk)
    assert (row.history_user, row.history_change_reason) == (data_manager_a, REASON)


def test_the_api_refuses_a_data_manager_deleting_a_patient_with_records(data_manager_a, coordinator, implantation):
    url = f"/api/v1/patients/{implantation.patient.pk}/"
    for user, expected in ((data_manager_a, 403), (coordinator, 204)):
        client = api_client(user)
        tag = client.get(url)["ETag"]
        response = client.delete(url, {"reason": REASON}, format="json", HTTP_IF_MATCH=tag)
        assert response.status_code == expected
        if expected == 403:
            assert "Only the registry coordinator" in response.json()["detail"]
