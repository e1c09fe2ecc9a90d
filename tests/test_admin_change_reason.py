"""Each admin change may carry a reason, which the record's history keeps with the user (issue 11)."""

from django.urls import reverse

from registry.models import Implantation, Patient
from sites.models import Centre

from .admin_forms import implantation_form, patient_form
from .factories import ImplantationFactory, PatientFactory, SurgeonFactory


def test_a_change_with_a_reason_keeps_it_in_history(client, data_manager_a, centre_a):
    patient = PatientFactory(centre=centre_a, birth_year=1961)
    client.force_login(data_manager_a)
    url = reverse("admin:registry_patient_change", args=[patient.pk])
    assert 'name="change_reason"' in client.get(url).content.decode()

    data = patient_form(centre_a, pseudonym=patient.pseudonym, birth_year="1962")
    response = client.post(url, {**data, "change_reason": "Corrected from the referral letter"})

    assert response.status_code == 302
    latest = Patient.history.filter(id=patient.pk).latest()
    assert (latest.birth_year, latest.history_user, latest.history_change_reason) == (
        1962,
        data_manager_a,
        "Corrected from the referral letter",
    )


def test_a_reason_is_optional(client, data_manager_a, centre_a):
    patient = PatientFactory(centre=centre_a, birth_year=1961)
    client.force_login(data_manager_a)
    url = reverse("admin:registry_patient_change", args=[patient.pk])
    assert client.post(url, patient_form(centre_a, pseudonym=patient.pseudonym, birth_year="1963")).status_code == 302
    assert Patient.history.filter(id=patient.pk).latest().history_change_reason is None


def test_forms_with_fieldsets_get_the_reason_too(client, data_manager_a, centre_a):
    implantation = ImplantationFactory(patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a))
    client.force_login(data_manager_a)
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])
    data = implantation_form(implantation.patient, implantation.surgeon, operative_minutes="250")
    response = client.post(url, {**data, "change_reason": "Anaesthesia chart"})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert Implantation.history.filter(id=implantation.pk).latest().history_change_reason == "Anaesthesia chart"


def test_registry_wide_records_take_a_reason(client, coordinator, centre_a):
    centre_a.name = "Centre A"
    centre_a.save()
    client.force_login(coordinator)
    url = reverse("admin:sites_centre_change", args=[centre_a.pk])
    data = {
        "code": centre_a.code,
        "name": "Centre A (renamed)",
        "country": centre_a.country,
        "active": "on",
        "time_zone": centre_a.time_zone,  # the Centre admin shows both (issue 13)
        "bilirubin_unit": centre_a.bilirubin_unit,
        "change_reason": "Hospital merger",
        "report_recipients-TOTAL_FORMS": "0",
        "report_recipients-INITIAL_FORMS": "0",
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    latest = Centre.history.filter(id=centre_a.pk).latest()
    assert (latest.name, latest.history_change_reason) == ("Centre A (renamed)", "Hospital merger")


def test_a_read_only_user_sees_no_reason_box(client, centre_lead_a, centre_a):
    patient = PatientFactory(centre=centre_a)
    client.force_login(centre_lead_a)
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk]))
    assert page.status_code == 200
    assert 'name="change_reason"' not in page.content.decode()
