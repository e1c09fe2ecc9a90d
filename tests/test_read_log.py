"""Reads are logged (issue 11): who opened which patients' records, in the admin and the API (sites.reads).

One ``sites.RecordRead`` per request that read patients' records, written after a 2xx response, with
at most two queries (the INSERT, and one finding the patients of child records); never for centres,
surgeons or vocabularies; seen by the coordinator only.
"""

import csv
import io
import logging
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from api.tokens import create_token
from sites.models import RecordRead, Role

from . import factories
from .release_codes import release_codec

WITHOUT_READ_LOG = [m for m in settings.MIDDLEWARE if m != "sites.reads.ReadLogMiddleware"]


def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def token_client(user, role):
    _, token = create_token(user, role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def admin_client(user):
    client = Client()
    client.force_login(user)
    return client


def the_one_read():
    reads = list(RecordRead.objects.all())
    assert len(reads) == 1, reads
    return reads[0]


@pytest.fixture
def implantation(centre_a):
    return factories.ImplantationFactory(patient__centre=centre_a)


# --- The admin -------------------------------------------------------------------------------------------


def test_a_patient_opened_in_the_admin_writes_one_row_naming_the_user_and_the_patient(implantation, data_manager_a):
    patient = implantation.patient
    response = admin_client(data_manager_a).get(reverse("admin:registry_patient_change", args=[patient.pk]))
    assert response.status_code == 200
    read = the_one_read()
    assert (read.user, read.username, read.role, read.channel, read.method) == (
        data_manager_a,
        "dm-a",
        Role.DATA_MANAGER,
        "admin",
        "GET",
    )
    assert (read.path, read.record_kind, read.patient_ids, read.record_count) == (
        f"/admin/registry/patient/{patient.pk}/change/",
        "registry.patient",
        [patient.pk],
        1,
    )


@pytest.mark.parametrize("kind", ["implantation", "treatment", "followup"])
def test_an_implantation_or_a_child_record_opened_in_the_admin_names_its_patient(implantation, data_manager_a, kind):
    record = {
        "implantation": implantation,
        "treatment": factories.TreatmentFactory(implantation=implantation),
        "followup": factories.FollowUpFactory(implantation=implantation),
    }[kind]
    response = admin_client(data_manager_a).get(reverse(f"admin:registry_{kind}_change", args=[record.pk]))
    assert response.status_code == 200
    read = the_one_read()
    assert (read.record_kind, read.patient_ids, read.record_count) == (
        f"registry.{kind}",
        [implantation.patient_id],
        1,
    )


def test_the_history_page_and_the_delete_confirmation_are_reads(implantation, data_manager_a):
    client = admin_client(data_manager_a)
    assert client.get(reverse("admin:registry_implantation_history", args=[implantation.pk])).status_code == 200
    assert client.get(reverse("admin:registry_implantation_delete", args=[implantation.pk])).status_code == 200
    reads = RecordRead.objects.order_by("id")
    assert [(r.path.rsplit("/", 2)[-2], r.patient_ids, r.record_count) for r in reads] == [
        ("history", [implantation.patient_id], 1),
        ("delete", [implantation.patient_id], 1),
    ]


def test_the_admin_list_notes_the_rows_shown_with_one_more_query(centre_a, coordinator):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    implantations = factories.ImplantationFactory.create_batch(12, patient__centre=centre_a, surgeon=surgeon)
    url = reverse("admin:registry_implantation_changelist")

    def statements(middleware):
        with override_settings(MIDDLEWARE=middleware):
            client = admin_client(coordinator)
            client.get(url)  # warm the caches
            with CaptureQueriesContext(connection) as queries:
                assert client.get(url).status_code == 200
        return [q["sql"] for q in queries]

    without = statements(WITHOUT_READ_LOG)
    with_log = statements(settings.MIDDLEWARE)
    # Only the INSERT: the rows shown are read from the page the template evaluated.
    assert len(with_log) - len(without) == 1, with_log[len(without) :]
    read = RecordRead.objects.first()
    assert RecordRead.objects.count() == 2  # the warm-up and the measured request
    assert read.patient_ids == sorted(i.patient_id for i in implantations)
    assert (read.record_kind, read.record_count, read.role) == ("registry.implantation", 12, Role.COORDINATOR)


# --- The API ---------------------------------------------------------------------------------------------


def test_an_api_detail_read_writes_one_row(implantation, data_manager_a):
    response = api_client(data_manager_a).get(f"/api/v1/patients/{implantation.patient_id}/")
    assert response.status_code == 200
    read = the_one_read()
    assert (read.user, read.channel, read.method, read.path, read.record_kind, read.patient_ids) == (
        data_manager_a,
        "api",
        "GET",
        f"/api/v1/patients/{implantation.patient_id}/",
        "registry.patient",
        [implantation.patient_id],
    )


def test_an_api_list_read_writes_one_row_with_every_listed_patient(centre_a, centre_lead_a):
    implantations = factories.ImplantationFactory.create_batch(3, patient__centre=centre_a)
    treatments = [factories.TreatmentFactory(implantation=i) for i in implantations]
    treatments.append(factories.TreatmentFactory(implantation=implantations[0]))
    other = factories.ImplantationFactory(patient__centre=factories.CentreFactory(code="ELSEWHERE"))
    factories.TreatmentFactory(implantation=other)  # another centre's: not listed, not logged
    response = api_client(centre_lead_a).get("/api/v1/treatments/", {"page_size": 100, "drug": "fudr"})
    assert response.status_code == 200 and len(response.json()["results"]) == 4
    read = the_one_read()
    assert read.patient_ids == sorted(i.patient_id for i in implantations)  # deduplicated, sorted
    assert (read.record_kind, read.record_count, read.role) == ("registry.treatment", 4, Role.CENTRE_LEAD)
    # The path only; of the query string, the parameters' names.
    assert (read.path, read.query_parameters) == ("/api/v1/treatments/", ["drug", "page_size"])


@pytest.mark.parametrize("endpoint", ["implantations", "treatments"])
def test_a_list_of_50_writes_one_row_with_at_most_two_more_queries(centre_a, coordinator, endpoint):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    implantations = factories.ImplantationFactory.create_batch(50, patient__centre=centre_a, surgeon=surgeon)
    if endpoint == "treatments":
        for i in implantations:
            factories.TreatmentFactory(implantation=i)

    def statements(middleware):
        with override_settings(MIDDLEWARE=middleware):
            client = api_client(coordinator)  # a new client loads the middleware of the moment
            client.get(f"/api/v1/{endpoint}/")  # warm the caches (roles, page count)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(f"/api/v1/{endpoint}/")
            assert response.status_code == 200 and len(response.json()["results"]) == 50
        return [q["sql"] for q in queries]

    without = statements(WITHOUT_READ_LOG)
    assert not RecordRead.objects.exists()
    with_log = statements(settings.MIDDLEWARE)
    assert len(with_log) - len(without) <= 2, with_log[len(without) :]
    assert sum(sql.startswith("INSERT") and "sites_recordread" in sql for sql in with_log) == 1
    assert RecordRead.objects.count() == 2  # the warm-up and the measured request: one row each
    assert RecordRead.objects.first().patient_ids == sorted(i.patient_id for i in implantations)


def test_the_row_is_written_after_the_response_is_sent_when_the_server_closes_it(implantation, data_manager_a):
    """A WSGI server sends the body, then calls close(): the INSERT does not delay the response."""
    _, token = create_token(data_manager_a, Role.DATA_MANAGER)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": f"/api/v1/patients/{implantation.patient_id}/",
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.input": io.BytesIO(),
    }
    setup_testing_defaults(environ)
    statuses = []
    # As the test client does: the test's transaction must outlive the request's end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, lambda status, headers: statuses.append(status))
        body = b"".join(response)
        assert statuses == ["200 OK"] and implantation.patient.pseudonym.encode() in body
        assert not RecordRead.objects.exists()  # produced and sent, not yet closed
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert the_one_read().patient_ids == [implantation.patient_id]


def test_a_csv_export_is_one_row_written_when_the_stream_closes(centre_a, coordinator):
    implantations = factories.ImplantationFactory.create_batch(5, patient__centre=centre_a)
    response = api_client(coordinator).get("/api/v1/implantations/", {"format": "csv"})
    assert response.streaming
    assert not RecordRead.objects.exists()  # nothing sent yet
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 5
    read = the_one_read()
    assert read.patient_ids == sorted(i.patient_id for i in implantations)
    assert (read.record_count, read.query_parameters) == (5, ["format"])


def test_investigators_reads_are_logged_with_the_real_ids(centre_a):
    investigator = factories.user_with_role(Role.INVESTIGATOR, username="researcher")
    implantations = factories.ImplantationFactory.create_batch(2, patient__centre=centre_a)
    client = token_client(investigator, Role.INVESTIGATOR)
    assert client.get("/api/v1/implantations/").status_code == 200
    code = release_codec("implantation").encode(implantations[0].pk)
    assert client.get(f"/api/v1/implantations/{code}/").status_code == 200
    listed, detail = RecordRead.objects.order_by("id")
    assert (listed.username, listed.role, listed.channel) == ("researcher", Role.INVESTIGATOR, "api")
    assert listed.patient_ids == sorted(i.patient_id for i in implantations)
    assert detail.patient_ids == [implantations[0].patient_id]


def test_a_token_logs_the_role_it_acts_in(centre_a, implantation):
    user = factories.user_with_role(Role.INVESTIGATOR, username="two-hats")
    factories.MembershipFactory(user=user, role=Role.DATA_MANAGER, centre=centre_a)
    assert token_client(user, Role.DATA_MANAGER).get(f"/api/v1/patients/{implantation.patient_id}/").status_code == 200
    assert the_one_read().role == Role.DATA_MANAGER


# --- What is not logged ------------------------------------------------------------------------------------


def test_a_failed_read_writes_nothing(implantation, centre_b, data_manager_a, centre_lead_a):
    elsewhere = factories.ImplantationFactory(patient__centre=centre_b)
    client = api_client(data_manager_a)
    assert client.get(f"/api/v1/patients/{elsewhere.patient_id}/").status_code == 404
    assert client.get(f"/api/v1/implantations/{elsewhere.pk}/").status_code == 404
    # Opened (get_object noted it), then refused: a centre lead may not delete.
    response = admin_client(centre_lead_a).get(reverse("admin:registry_patient_delete", args=[implantation.patient_id]))
    assert response.status_code == 403
    assert client.options(f"/api/v1/patients/{implantation.patient_id}/").status_code == 200
    assert not RecordRead.objects.exists()


def test_centres_surgeons_and_vocabularies_are_not_patient_records(implantation, coordinator):
    client = api_client(coordinator)
    centre, surgeon = implantation.patient.centre, implantation.surgeon
    for url in (
        "/api/v1/centres/",
        f"/api/v1/centres/{centre.code}/",
        "/api/v1/surgeons/",
        f"/api/v1/surgeons/{surgeon.code}/",
        "/api/v1/vocabularies/complication-types/",
        "/api/v1/vocabularies/",
    ):
        assert client.get(url).status_code == 200, url
    admin = admin_client(coordinator)
    for url in (
        reverse("admin:sites_centre_change", args=[centre.pk]),
        reverse("admin:sites_surgeon_change", args=[surgeon.pk]),
        reverse("admin:sites_surgeon_changelist"),
    ):
        assert admin.get(url).status_code == 200, url
    assert not RecordRead.objects.exists()


# --- The row outlives the account; the log never breaks a response ----------------------------------------


def test_the_username_survives_deleting_the_user(implantation, centre_a):
    reader = factories.user_with_role(Role.CENTRE_LEAD, centre_a, username="leaving-soon")
    admin_client(reader).get(reverse("admin:registry_patient_change", args=[implantation.patient_id]))
    reader.delete()
    read = the_one_read()
    assert (read.user, read.username, read.patient_ids) == (None, "leaving-soon", [implantation.patient_id])


def test_a_failed_write_is_logged_without_patient_data_and_the_response_goes_out(
    implantation, data_manager_a, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError(f"patient {implantation.patient.pseudonym}")

    monkeypatch.setattr(RecordRead.objects, "create", broken)
    with caplog.at_level(logging.ERROR, logger="sites.reads"):
        response = api_client(data_manager_a).get(f"/api/v1/patients/{implantation.patient_id}/")
    assert response.status_code == 200 and response.json()["pseudonym"] == implantation.patient.pseudonym
    [record] = [r for r in caplog.records if r.name == "sites.reads"]
    message = record.getMessage()
    assert "api:patient-detail" in message and "RuntimeError" in message
    assert implantation.patient.pseudonym not in message and f"/{implantation.patient_id}/" not in message
    assert record.exc_info is None  # no traceback: the error's text could hold patient data


# --- The coordinator reads the log --------------------------------------------------------------------------


def test_the_read_log_admin_is_the_coordinators_only(implantation, centre_a, coordinator, data_manager_a):
    other_patient = factories.PatientFactory(centre=centre_a)
    api_client(data_manager_a).get(f"/api/v1/patients/{implantation.patient_id}/")
    api_client(data_manager_a).get(f"/api/v1/patients/{other_patient.pk}/")
    changelist = reverse("admin:sites_recordread_changelist")
    lead = factories.user_with_role(Role.CENTRE_LEAD, centre_a)
    for user in (data_manager_a, lead):
        client = admin_client(user)
        assert client.get(changelist).status_code == 403
        assert (
            client.get(reverse("admin:sites_recordread_change", args=[RecordRead.objects.first().pk])).status_code
            == 403
        )
        assert b"recordread" not in client.get(reverse("admin:index")).content
    client = admin_client(coordinator)
    response = client.get(changelist, {"q": str(implantation.patient_id)})
    assert response.status_code == 200
    assert [r.patient_ids for r in response.context["cl"].result_list] == [[implantation.patient_id]]
    response = client.get(changelist, {"channel__exact": "api", "q": "dm-a"})
    assert response.context["cl"].result_count == 2
    assert client.get(reverse("admin:sites_recordread_add")).status_code == 403
    read = RecordRead.objects.first()
    client.post(reverse("admin:sites_recordread_delete", args=[read.pk]), {"post": "yes"})
    assert RecordRead.objects.filter(pk=read.pk).exists()  # seen, never added, changed or deleted
