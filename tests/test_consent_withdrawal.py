"""Consent withdrawn (issue 11): the patient's records are erased, a tombstone without clinical values is kept.

Erasure: the live rows, every history row of them, the report runs' frozen cohorts and the stored
reports' cases; the statistics' caches recompute. Only the coordinator records a withdrawal; after a
restore, ``reapply_consent_withdrawals`` erases again.
"""

import datetime
import gzip
import json

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection, models
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from rest_framework.test import APIClient

from registry import consent, rules
from registry.models import (
    ConsentWithdrawal,
    Implantation,
    Patient,
    Treatment,
)
from registry.services import save_record, withdraw_consent
from reports import services as report_services
from reports.cohort import cohort, live_cohort
from reports.models import CentreReport, OutlierReview, ReportRun
from sites.models import Role

from . import factories, report_world
from .factories import days_after

TODAY = rules.today()  # the registry's calendar, as the service's "not in the future" check
REASON = "Patient's written request to the centre, letter ref. W-17."


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def full_patient(centre, *, implantations=2, user=None):
    """A patient with a record of every kind, a change and an earlier deletion in the history."""
    patient = factories.PatientFactory(centre=centre, consent_on=days_after(-10))
    surgeon = factories.SurgeonFactory(centre=centre)
    factories.SystemicTherapyLineFactory(patient=patient)
    for number in range(implantations):
        implantation = factories.ImplantationFactory(
            patient=patient, surgeon=surgeon, implanted_on=days_after(number * 30)
        )
        factories.PerfusionCheckFactory(implantation=implantation)
        factories.TreatmentFactory(implantation=implantation)
        factories.ComplicationFactory(implantation=implantation)
        factories.LiverTestFactory(implantation=implantation)
        factories.FollowUpFactory(implantation=implantation)
        factories.SystemicToxicityFactory(implantation=implantation)
        factories.ReadmissionFactory(implantation=implantation)
    if user is not None:
        patient.birth_year = 1959
        save_record(patient, user=user, reason="Birth year corrected from the referral letter")
        # A data-quality query quotes the record's values (issue 12).
        factories.DataQueryFactory(implantation=implantation, message=f"Is the dose of {implantation} right?")
    # A dose entered and deleted before the withdrawal: its history rows name the implantation.
    Treatment.objects.create(
        implantation=implantation,
        given_on=days_after(40, implantation.implanted_on),
        drug="fudr",
        dose="0.1",
        dose_unit="mg/kg/day",
    ).delete()
    return patient


def record_ids(patient):
    """{model: ids} of every record of the patient, live now (every kind registry.consent erases)."""
    implantations = Implantation.objects.filter(patient=patient)
    ids = {}
    for _, model, link in consent.ERASED_MODELS:
        if link is None:
            ids[model] = {patient.pk}
        elif link == "patient":
            ids[model] = set(model.objects.filter(patient=patient).values_list("pk", flat=True))
        else:
            ids[model] = set(model.objects.filter(implantation__in=implantations).values_list("pk", flat=True))
    return ids


def history_rows_of(patient_id, ids):
    """Every history row of the records in ``ids`` or naming the patient or one of its implantations."""
    implantation_ids = ids[Implantation] | set(
        Implantation.history.filter(patient_id=patient_id).values_list("id", flat=True)
    )
    rows = {}
    for _, model, link in consent.ERASED_MODELS:
        query = models.Q(id__in=ids[model])
        if link == "patient":
            query |= models.Q(patient_id=patient_id)
        elif link == "implantation":
            query |= models.Q(implantation_id__in=implantation_ids)
        rows[model.__name__] = model.history.filter(query).count()
    return rows


def withdraw(patient, user, django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=True):
        return withdraw_consent(
            patient, user=user, withdrawn_on=kwargs.get("withdrawn_on", TODAY), reason=kwargs.get("reason", REASON)
        )


# --------------------------------------------------------------------------- statistics


def test_a_withdrawn_patient_leaves_the_statistics_and_the_cohort(
    centre_a, coordinator, django_capture_on_commit_callbacks
):
    for number in range(4):
        implantation = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(number))
        factories.TreatmentFactory(implantation=implantation)
    patient = full_patient(centre_a)
    gone = set(patient.implantations.values_list("pk", flat=True))
    client = APIClient()
    client.force_authenticate(coordinator)

    def pump_use(**params):
        (group,) = client.get("/api/v1/stats/pump-use/", params).json()["groups"]
        return group["implantations"], group["treated"]

    # Asked before: the live cohort and the cached responses hold the patient.
    assert pump_use() == (6, 6) and pump_use(centre="CENTRE-A") == (6, 6)
    assert gone <= set(live_cohort())

    withdraw(patient, coordinator, django_capture_on_commit_callbacks)

    assert pump_use() == (4, 4) and pump_use(centre="CENTRE-A") == (4, 4)
    complications = client.get("/api/v1/stats/complications/", {"type": "any"}).json()["groups"][0]
    assert (complications["implantations"], complications["events"]) == (4, 0)
    assert not gone & set(live_cohort()) and not gone & {row.id for row in cohort()}
    assert client.get("/api/v1/implantations/").json()["count"] == 4


# --------------------------------------------------------------------------- reports


def test_a_withdrawn_patient_leaves_report_runs_stored_reports_and_new_reports(
    db, media, coordinator, django_capture_on_commit_callbacks, monkeypatch
):
    # The HTML is rendered for real; printing it to PDF (tests/test_report_runs.py) takes long and adds nothing here.
    monkeypatch.setattr("reports.rendering.render_pdf", lambda html: b"%PDF-1.7 " + html.encode())
    centres = report_world.build()
    period = datetime.date(2024, 6, 1)
    with django_capture_on_commit_callbacks(execute=True):
        before = report_services.start_run(period, centre_codes=[centres[0].code], data_cut=timezone.now())
    # Centre 1's first pump: never dosed and no reason given, so its report lists it under "Cases to review".
    implantation = Implantation.objects.filter(patient__centre=centres[0]).order_by("implanted_on").first()
    patient = implantation.patient
    report = CentreReport.objects.get(run=before, centre=centres[0])
    listed = [c["pseudonym"] for s in report.numbers["cases_to_review"] for c in s["cases"]]
    assert patient.pseudonym in listed
    assert patient.pseudonym in report.html.read().decode()
    old_checksum, own_total = report.checksum, report.numbers["implantations"]["totals"]["centre"]["cumulative"]
    review = OutlierReview.objects.create(
        run=before, centre=centres[0], measure="technical_90", level="alarm", query=f"Please check {patient.pseudonym}."
    )

    tombstone = withdraw(patient, coordinator, django_capture_on_commit_callbacks)

    # The run's frozen cohort: the patient's row is gone from the file every re-render reads.
    before.refresh_from_db()
    with before.snapshot.open("rb") as handle:
        rows = json.loads(gzip.decompress(handle.read()))["rows"]
    assert len(rows) == 17 and patient.pk not in {r["patient_id"] for r in rows}
    # The stored report: the cases no longer name the patient, and its stored copy was rendered again.
    report.refresh_from_db()
    listed = [c["pseudonym"] for s in report.numbers["cases_to_review"] for c in s["cases"]]
    assert listed and patient.pseudonym not in listed
    assert report.html and report.pdf and report.checksum != old_checksum
    html = report.html.read().decode()
    assert patient.pseudonym not in html and listed[0] in html
    assert patient.pseudonym.encode() not in report.pdf.read()
    review.refresh_from_db()
    assert review.query == f"Please check {consent.REDACTED}."
    assert tombstone.erased_counts["report_snapshot_rows"] == 1 and tombstone.erased_counts["report_cases"] >= 1

    # A report prepared and rendered now: the implantation no longer counts.
    with django_capture_on_commit_callbacks(execute=True):
        after = report_services.start_run(period, centre_codes=[centres[0].code], data_cut=timezone.now())
    fresh = CentreReport.objects.get(run=after)
    assert fresh.numbers["implantations"]["totals"]["centre"]["cumulative"] == own_total - 1
    assert patient.pseudonym not in fresh.html.read().decode()
    assert ReportRun.objects.get(pk=after.pk).status == "completed"


# --------------------------------------------------------------------------- the tombstone


def test_the_tombstone_names_who_when_and_why_and_holds_no_clinical_value(
    centre_a, coordinator, django_capture_on_commit_callbacks
):
    patient = full_patient(centre_a)
    pk, pseudonym = patient.pk, patient.pseudonym
    withdrawn_on = TODAY - datetime.timedelta(days=3)

    tombstone = withdraw(patient, coordinator, django_capture_on_commit_callbacks, withdrawn_on=withdrawn_on)

    tombstone = ConsentWithdrawal.objects.get()
    assert (tombstone.former_patient_id, tombstone.pseudonym, tombstone.centre) == (pk, pseudonym, centre_a)
    assert (tombstone.withdrawn_on, tombstone.reason) == (withdrawn_on, REASON)
    assert (tombstone.recorded_by, tombstone.recorded_by_name) == (coordinator, "coordinator")
    assert abs((tombstone.recorded_at - datetime.datetime.now(datetime.UTC)).total_seconds()) < 60
    assert tombstone.erased_counts == {
        **{key: 0 for key, _, _ in consent.ERASED_MODELS},  # kinds of record the patient has none of
        "patients": 1,
        "implantations": 2,
        "perfusion_checks": 2,
        "treatments": 2,
        "complications": 2,
        "liver_tests": 2,
        "follow_ups": 2,
        "systemic_toxicities": 2,
        "readmissions": 2,
        "systemic_therapy_lines": 1,
        "history_rows": tombstone.erased_counts["history_rows"],
        "admin_log_entries": 0,
        "report_snapshot_rows": 0,
        "report_cases": 0,
        "outlier_review_mentions": 0,
    }
    assert tombstone.erased_counts["history_rows"] >= 2 * 14 + 2  # each row's "+" and "-", the deleted dose's two
    # Nothing clinical: these fields and no others, in the tombstone and in its own history.
    fields = {f.name for f in ConsentWithdrawal._meta.concrete_fields}
    assert fields == {
        "id",
        "former_patient_id",
        "pseudonym",
        "centre",
        "withdrawn_on",
        "reason",
        "recorded_by",
        "recorded_by_name",
        "recorded_at",
        "erased_counts",
    }
    assert all(isinstance(value, int) for value in tombstone.erased_counts.values())
    (history,) = ConsentWithdrawal.history.all()
    assert (history.history_type, history.history_user, history.history_user_name) == ("+", coordinator, "coordinator")
    # Kept when the recorder's account goes.
    coordinator.delete()
    tombstone.refresh_from_db()
    assert (tombstone.recorded_by, tombstone.recorded_by_name) == (None, "coordinator")


@pytest.mark.parametrize(
    "withdrawn_on,reason,field",
    [
        (TODAY + datetime.timedelta(days=1), REASON, "withdrawn_on"),
        (days_after(-11), REASON, "withdrawn_on"),  # the day before the consent date
        (TODAY, "   ", "reason"),
    ],
)
def test_a_withdrawal_needs_a_reason_and_a_date_between_consent_and_today(
    centre_a, coordinator, withdrawn_on, reason, field
):
    patient = full_patient(centre_a)
    with pytest.raises(ValidationError) as error:
        withdraw_consent(patient, user=coordinator, withdrawn_on=withdrawn_on, reason=reason)
    assert field in error.value.message_dict
    assert Patient.objects.filter(pk=patient.pk).exists() and not ConsentWithdrawal.objects.exists()


# --------------------------------------------------------------------------- the audit trail


def test_no_history_row_of_the_patients_records_remains(
    centre_a, data_manager_a, coordinator, django_capture_on_commit_callbacks
):
    patient = full_patient(centre_a, user=data_manager_a)
    other = full_patient(centre_a, user=data_manager_a, implantations=1)
    ids, other_ids = record_ids(patient), record_ids(other)
    implantation = Implantation.objects.filter(patient=patient).first()
    LogEntry.objects.create(
        user=data_manager_a,
        content_type=ContentType.objects.get_for_model(Implantation),
        object_id=str(implantation.pk),
        object_repr=str(implantation),
        action_flag=CHANGE,
        change_message="[]",
    )
    before = history_rows_of(patient.pk, ids)
    assert all(count > 0 for count in before.values()), before
    other_before = history_rows_of(other.pk, other_ids)

    withdraw(patient, coordinator, django_capture_on_commit_callbacks)

    assert history_rows_of(patient.pk, ids) == dict.fromkeys(before, 0)
    for model, pks in ids.items():
        assert not model.objects.filter(pk__in=pks).exists()
    assert not LogEntry.objects.filter(object_id=str(implantation.pk)).exists()
    # Another patient's records and history are untouched.
    assert history_rows_of(other.pk, other_ids) == other_before
    assert Implantation.objects.filter(patient=other).count() == 1


def test_every_model_that_refers_to_a_patient_or_implantation_is_erased():
    """A new kind of clinical record must be added to registry.consent.ERASED_MODELS."""
    erased = {model for _, model, _ in consent.ERASED_MODELS}
    referring = {
        model
        for model in apps.get_models()
        if not model.__name__.startswith("Historical")
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model in (Patient, Implantation)
    }
    assert referring <= erased, referring - erased


# --------------------------------------------------------------------------- who may


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.CENTRE_LEAD])
def test_only_the_coordinator_withdraws(centre_a, client, role):
    user = factories.user_with_role(role, centre_a)
    patient = full_patient(centre_a)
    with pytest.raises(PermissionDenied):
        withdraw_consent(patient, user=user, withdrawn_on=TODAY, reason=REASON)
    client.force_login(user)
    url = reverse("admin:registry_patient_withdraw_consent", args=[patient.pk])
    assert client.get(url).status_code == 403
    data = {"withdrawn_on": TODAY.isoformat(), "reason": REASON, "confirm": "on"}
    assert client.post(url, data).status_code == 403
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk]))
    assert page.status_code == 200 and b"withdraw-consent-link" not in page.content
    assert Patient.objects.filter(pk=patient.pk).exists() and not ConsentWithdrawal.objects.exists()


# --------------------------------------------------------------------------- the admin


def test_admin_flow_from_the_patient_to_the_tombstone(
    centre_a,
    centre_b,
    client,
    coordinator,
    data_manager_a,
    centre_lead_a,
    investigator,
    django_capture_on_commit_callbacks,
):
    patient = full_patient(centre_a)
    client.force_login(coordinator)
    page = client.get(reverse("admin:registry_patient_change", args=[patient.pk]))
    url = reverse("admin:registry_patient_withdraw_consent", args=[patient.pk])
    assert f'href="{url}"'.encode() in page.content
    form = client.get(url)
    assert (
        form.status_code == 200 and b"I understand this erases" in form.content and b"2 implantations" in form.content
    )

    # Without the box ticked nothing happens.
    data = {"withdrawn_on": TODAY.isoformat(), "reason": REASON}
    assert client.post(url, data).status_code == 200
    assert Patient.objects.filter(pk=patient.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**data, "confirm": "on"})
    tombstone = ConsentWithdrawal.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:registry_consentwithdrawal_change", args=[tombstone.pk])
    assert not Patient.objects.filter(pk=patient.pk).exists()
    page = client.get(response["Location"])
    assert page.status_code == 200 and escape(REASON).encode() in page.content and b"coordinator" in page.content

    # Permanent: no add, change or delete for anyone, the coordinator included.
    change_url = reverse("admin:registry_consentwithdrawal_change", args=[tombstone.pk])
    delete_url = reverse("admin:registry_consentwithdrawal_delete", args=[tombstone.pk])
    client.post(change_url, {"reason": "changed"})
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:registry_consentwithdrawal_add")).status_code == 403
    assert ConsentWithdrawal.objects.get().reason == REASON

    # The centre's data manager and lead read it; another centre's users and investigators do not.
    other_manager = factories.user_with_role(Role.DATA_MANAGER, centre_b)
    changelist = reverse("admin:registry_consentwithdrawal_changelist")
    for user, sees in ((data_manager_a, True), (centre_lead_a, True), (other_manager, False)):
        client.force_login(user)
        listing = client.get(changelist)
        assert listing.status_code == 200 and (tombstone.pseudonym.encode() in listing.content) is sees
        assert client.get(change_url).status_code == (200 if sees else 302)  # another centre's: "does not exist"
        assert client.post(delete_url, {"post": "yes"}).status_code in (302, 403)
        assert ConsentWithdrawal.objects.filter(pk=tombstone.pk).exists()
    client.force_login(investigator)
    assert client.get(changelist).status_code == 302  # to the login page: the admin is not theirs


# --------------------------------------------------------------------------- after a restore


def restore(tombstone, centre):
    """What a restore from an older backup brings back: the patient with the same id and pseudonym, and records."""
    patient = factories.PatientFactory(id=tombstone.former_patient_id, pseudonym=tombstone.pseudonym, centre=centre)
    implantation = factories.ImplantationFactory(patient=patient)
    factories.TreatmentFactory(implantation=implantation)
    return patient


def test_reapply_erases_a_restored_patient_again_and_is_idempotent(
    centre_a, coordinator, capsys, django_capture_on_commit_callbacks
):
    patient = full_patient(centre_a)
    kept = factories.ImplantationFactory(patient__centre=centre_a)
    tombstone = withdraw(patient, coordinator, django_capture_on_commit_callbacks)
    restored = restore(tombstone, centre_a)
    ids = record_ids(restored)

    call_command("reapply_consent_withdrawals")
    assert "1 patient(s) erased again" in capsys.readouterr().out
    assert not Patient.objects.filter(pk=restored.pk).exists()
    assert history_rows_of(restored.pk, ids) == dict.fromkeys(history_rows_of(restored.pk, ids), 0)
    assert Implantation.objects.filter(pk=kept.pk).exists()

    call_command("reapply_consent_withdrawals")
    assert "0 patient(s) erased again, 0 other row(s)" in capsys.readouterr().out
    assert ConsentWithdrawal.objects.get().erased_counts == tombstone.erased_counts  # the tombstone is not rewritten

    # The id taken by another patient after the restore: left alone, and said so.
    factories.PatientFactory(id=tombstone.former_patient_id, pseudonym="HAI-OTHER001", centre=centre_a)
    call_command("reapply_consent_withdrawals")
    assert "now belongs to HAI-OTHER001" in capsys.readouterr().err
    assert Patient.objects.filter(pk=tombstone.former_patient_id).exists()


def test_tombstones_exported_before_a_restore_are_put_back_and_applied(
    centre_a, coordinator, tmp_path, capsys, django_capture_on_commit_callbacks
):
    patient = full_patient(centre_a)
    tombstone = withdraw(patient, coordinator, django_capture_on_commit_callbacks)
    exported = tmp_path / "withdrawals.json"
    call_command("reapply_consent_withdrawals", "--export", str(exported))
    (row,) = json.loads(exported.read_text())["consent_withdrawals"]
    assert (row["former_patient_id"], row["centre"], row["reason"]) == (patient.pk, "CENTRE-A", REASON)

    # A backup taken before the patient was entered: no tombstone, and the ids handed out since are handed out again.
    ConsentWithdrawal.history.all().delete()
    ConsentWithdrawal.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('registry_patient', 'id'), %s, false)", [patient.pk])

    call_command("reapply_consent_withdrawals", "--from-file", str(exported))
    assert "(1 put back from the file): 0 patient(s) erased again" in capsys.readouterr().out
    back = ConsentWithdrawal.objects.get()
    assert (back.former_patient_id, back.pseudonym, back.centre, back.withdrawn_on, back.reason) == (
        tombstone.former_patient_id,
        tombstone.pseudonym,
        centre_a,
        TODAY,
        REASON,
    )
    assert (back.recorded_by_name, back.recorded_at, back.erased_counts) == (
        "coordinator",
        tombstone.recorded_at,
        tombstone.erased_counts,
    )
    # The next patient never takes the withdrawn patient's id (which a later reapply would meet).
    assert factories.PatientFactory(centre=centre_a).pk > patient.pk
    call_command("reapply_consent_withdrawals", "--from-file", str(exported))
    assert "1 consent withdrawal(s): 0 patient(s) erased again, 0 other row(s)" in capsys.readouterr().out
