"""Nothing is silently overwritten: versions, the admin's stale form, the API's ETag / If-Match (issue 11).

RFC 9110 §13.1.1 (If-Match), §15.5.13 (412) and RFC 6585 §3 (428).
"""

import pytest
from django.db import transaction
from django.urls import reverse
from rest_framework.test import APIClient

from registry.models import Implantation, Patient, Treatment
from registry.services import save_record
from sites.versioning import StaleRecord

from . import factories
from .admin_forms import implantation_form, inline_rows, patient_form


def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def implantation(centre_a):
    return factories.ImplantationFactory(
        patient__centre=centre_a, surgeon=factories.SurgeonFactory(centre=centre_a), approach="laparotomy"
    )


# --- The record's version ------------------------------------------------------------------


def test_a_record_starts_at_version_1_and_each_save_adds_one(data_manager_a, implantation):
    assert implantation.version == 1
    implantation.approach = "robotic"
    save_record(implantation, user=data_manager_a)
    implantation.refresh_from_db()
    assert implantation.version == 2


def test_saving_a_copy_read_before_someone_elses_save_is_refused(data_manager_a, implantation):
    mine = Implantation.objects.get(pk=implantation.pk)
    theirs = Implantation.objects.get(pk=implantation.pk)
    theirs.approach = "robotic"
    save_record(theirs, user=data_manager_a)

    mine.approach = "laparoscopic"
    with pytest.raises(StaleRecord), transaction.atomic():
        save_record(mine, user=data_manager_a)
    implantation.refresh_from_db()
    assert (implantation.approach, implantation.version) == ("robotic", 2)


def _form_of(implantation, **overrides):
    """The implantation's change form exactly as it stands."""
    names = ("indication", "approach", "device", "catheter_vessel", "never_treated_reason", "never_treated_note")
    values = {name: "" if getattr(implantation, name) is None else str(getattr(implantation, name)) for name in names}
    form = implantation_form(implantation.patient, implantation.surgeon, **values)
    form["implanted_on"] = implantation.implanted_on.isoformat()
    return {**form, **overrides}


# --- The admin's stale form ----------------------------------------------------------------


def _change_page(client, implantation):
    return reverse("admin:registry_implantation_change", args=[implantation.pk])


def test_the_admin_refuses_a_stale_form_and_says_who_changed_what(client, data_manager_a, centre_a, implantation):
    other = factories.user_with_role("data_manager", centre_a, username="dm-bertrand")
    url = _change_page(client, implantation)
    client.force_login(data_manager_a)
    page = client.get(url).content.decode()
    assert 'name="opened_version" value="1"' in page

    # Bertrand saves first, in his own session.
    second = type(client)()
    second.force_login(other)
    bertrand = implantation_form(implantation.patient, implantation.surgeon, approach="robotic", opened_version="1")
    assert second.post(url, bertrand).status_code == 302

    # The first data manager's form, opened at version 1, would put "laparoscopic" over "robotic".
    mine = implantation_form(implantation.patient, implantation.surgeon, approach="laparoscopic", opened_version="1")
    response = client.post(url, mine)

    assert response.status_code == 200
    message = " ".join(str(e) for e in response.context["adminform"].form.non_field_errors())
    assert "changed by dm-bertrand at" in message
    assert "since you opened it" in message
    assert "now Robotic (yours: Laparoscopic)" in message
    implantation.refresh_from_db()
    assert (implantation.approach, implantation.version) == ("robotic", 2)
    # The form now carries the current version: saving again keeps the user's value, deliberately.
    assert 'name="opened_version" value="2"' in response.content.decode()
    assert client.post(url, {**mine, "opened_version": "2"}).status_code == 302
    implantation.refresh_from_db()
    assert (implantation.approach, implantation.version) == ("laparoscopic", 3)


def test_a_stale_form_that_changes_nothing_is_not_refused(client, data_manager_a, implantation):
    url = _change_page(client, implantation)
    implantation.approach = "robotic"
    save_record(implantation, user=data_manager_a)
    client.force_login(data_manager_a)
    unchanged = _form_of(implantation, opened_version="1")
    assert client.post(url, unchanged).status_code == 302


def test_a_stale_inline_row_is_refused_too(client, data_manager_a, implantation):
    dose = factories.TreatmentFactory(implantation=implantation, dose="0.100")
    Treatment.objects.filter(pk=dose.pk).update(version=2, dose="0.120")  # someone else's save
    client.force_login(data_manager_a)
    row = {
        "id": str(dose.pk),
        "implantation": str(implantation.pk),
        "given_on": dose.given_on.isoformat(),
        "drug": dose.drug,
        "dose": "0.080",
        "dose_unit": dose.dose_unit,
        "dose_change": "",
        "dose_change_reason": "",
        "opened_version": "1",
    }
    data = {**implantation_form(implantation.patient, implantation.surgeon), **inline_rows("treatments", [row], 1)}
    data["implanted_on"] = implantation.implanted_on.isoformat()
    response = client.post(_change_page(client, implantation), data)
    assert response.status_code == 200
    assert "since you opened it" in response.content.decode()
    dose.refresh_from_db()
    assert str(dose.dose) == "0.120"


def test_the_patient_form_carries_its_version(client, data_manager_a, centre_a):
    patient = factories.PatientFactory(centre=centre_a, birth_year=1961)
    Patient.objects.filter(pk=patient.pk).update(version=4)
    client.force_login(data_manager_a)
    url = reverse("admin:registry_patient_change", args=[patient.pk])
    assert 'name="opened_version" value="4"' in client.get(url).content.decode()
    stale = patient_form(centre_a, pseudonym=patient.pseudonym, birth_year="1962", opened_version="3")
    assert client.post(url, stale).status_code == 200
    patient.refresh_from_db()
    assert patient.birth_year == 1961


# --- The API: ETag, If-Match, 428 and 412 ------------------------------------------------------


def _url(implantation):
    return f"/api/v1/implantations/{implantation.pk}/"


def test_a_read_sends_the_version_as_a_strong_etag(data_manager_a, implantation):
    response = api_client(data_manager_a).get(_url(implantation))
    assert response["ETag"] == '"1"'


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_write_without_if_match_is_428(data_manager_a, implantation, method):
    client = api_client(data_manager_a)
    data = client.get(_url(implantation)).json()
    body = {"reason": "Entered twice"} if method == "delete" else {**data, "approach": "robotic"}
    response = getattr(client, method)(_url(implantation), body, format="json")
    assert response.status_code == 428
    assert set(response.json()) == {"detail"}
    assert "If-Match" in response.json()["detail"]
    assert Implantation.objects.filter(pk=implantation.pk, approach="laparotomy", version=1).exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_write_naming_an_old_version_is_412(data_manager_a, implantation, method):
    client = api_client(data_manager_a)
    data = client.get(_url(implantation)).json()
    old_tag = client.get(_url(implantation))["ETag"]
    implantation.approach = "robotic"
    save_record(implantation, user=factories.user_with_role("data_manager", implantation.patient.centre))

    body = {"reason": "Entered twice"} if method == "delete" else {**data, "approach": "laparoscopic"}
    response = getattr(client, method)(_url(implantation), body, format="json", HTTP_IF_MATCH=old_tag)

    assert response.status_code == 412
    assert set(response.json()) == {"detail"}
    assert "changed by" in response.json()["detail"]
    implantation.refresh_from_db()
    assert (implantation.approach, implantation.version) == ("robotic", 2)


def test_a_write_naming_the_current_version_succeeds_and_sends_the_new_etag(data_manager_a, implantation):
    client = api_client(data_manager_a)
    tag = client.get(_url(implantation))["ETag"]
    response = client.patch(_url(implantation), {"approach": "robotic"}, format="json", HTTP_IF_MATCH=tag)
    assert response.status_code == 200
    assert response["ETag"] == '"2"'
    again = client.patch(_url(implantation), {"approach": "laparoscopic"}, format="json", HTTP_IF_MATCH=tag)
    assert again.status_code == 412


def test_if_match_takes_a_list_and_never_matches_a_weak_tag(data_manager_a, implantation):
    client = api_client(data_manager_a)
    weak = client.patch(_url(implantation), {"approach": "robotic"}, format="json", HTTP_IF_MATCH='W/"1"')
    assert weak.status_code == 412
    listed = client.patch(_url(implantation), {"approach": "robotic"}, format="json", HTTP_IF_MATCH='"7", "1"')
    assert listed.status_code == 200


def test_a_race_lost_after_the_check_is_412_too(data_manager_a, implantation, monkeypatch):
    """Someone saves between the If-Match check and this save: the compare-and-swap refuses it."""
    from api import preconditions

    real_check = preconditions.check_if_match

    def check_then_someone_saves(request, record):
        real_check(request, record)
        Implantation.objects.filter(pk=record.pk).update(version=record.version + 1, approach="robotic")

    monkeypatch.setattr(preconditions, "check_if_match", check_then_someone_saves)
    response = api_client(data_manager_a).patch(
        _url(implantation), {"approach": "laparoscopic"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert response.status_code == 412
    implantation.refresh_from_db()
    assert implantation.approach == "robotic"


def test_a_created_record_comes_back_with_its_etag(data_manager_a, implantation):
    client = api_client(data_manager_a)
    response = client.post(
        "/api/v1/treatments/",
        {
            "implantation": implantation.pk,
            # 14 days on: a first dose on the implantation day is a soft warning (tests/test_soft_warnings.py).
            "given_on": factories.days_after(14, implantation.implanted_on).isoformat(),
            "drug": "fudr",
            "dose": "0.12",
            "dose_unit": "mg/kg/day",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response["ETag"] == '"1"'
