"""Late entries (issue 13): a record dated in a month whose report already ran says it will be in the next one."""

import datetime

import pytest
from django.contrib.messages import WARNING, get_messages
from django.urls import reverse
from django.utils import timezone

from reports.late_entries import late_entry_notice
from reports.models import ReportRun

from .admin_forms import inline_rows, record_form
from .factories import (
    ComplicationFactory,
    FollowUpFactory,
    ImplantationFactory,
    LiverTestFactory,
    PatientFactory,
    SurgeonFactory,
    SystemicTherapyLineFactory,
    TreatmentFactory,
)

OCTOBER = datetime.date(2026, 10, 1)
CUT = datetime.datetime(2026, 11, 1, 6, 0, tzinfo=datetime.UTC)
AFTER_CUT = CUT + datetime.timedelta(days=3)


def run(period=OCTOBER, data_cut=CUT, status=ReportRun.Status.COMPLETED):
    return ReportRun.objects.create(period=period, data_cut=data_cut, method_version="test", status=status)


def implantation_on(day, **kwargs):
    return ImplantationFactory.build(implanted_on=day, **kwargs)


@pytest.mark.django_db
def test_a_record_dated_in_a_month_whose_report_ran_says_so():
    run()
    notice = late_entry_notice(implantation_on(datetime.date(2026, 10, 14)), now=AFTER_CUT)
    assert notice == (
        "This implantation is dated 2026-10-14, in October 2026, whose report already ran "
        "(data cut 2026-11-01 06:00 UTC). It will appear in the next monthly report."
    )


@pytest.mark.django_db
def test_a_record_dated_before_that_month_too():
    run()
    notice = late_entry_notice(implantation_on(datetime.date(2026, 8, 30)), now=AFTER_CUT)
    assert notice.startswith("This implantation is dated 2026-08-30, before October 2026, whose report already ran")


@pytest.mark.django_db
def test_the_newest_run_covering_the_date_is_named():
    run(period=datetime.date(2026, 9, 1), data_cut=datetime.datetime(2026, 10, 1, tzinfo=datetime.UTC))
    run()
    notice = late_entry_notice(implantation_on(datetime.date(2026, 9, 20)), now=AFTER_CUT)
    assert "before October 2026" in notice and "data cut 2026-11-01 06:00 UTC" in notice


@pytest.mark.django_db
def test_the_cut_is_shown_in_utc():
    run(data_cut=datetime.datetime(2026, 11, 1, 7, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1))))
    assert "(data cut 2026-11-01 06:00 UTC)" in late_entry_notice(
        implantation_on(datetime.date(2026, 10, 14)), now=AFTER_CUT
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "day, runs, now",
    [
        (datetime.date(2026, 11, 2), [{}], AFTER_CUT),  # a month whose report has not run
        (datetime.date(2026, 10, 14), [], AFTER_CUT),  # no report yet
        (datetime.date(2026, 10, 14), [{"status": ReportRun.Status.PENDING}], AFTER_CUT),  # not yet ran
        (datetime.date(2026, 10, 14), [{}], CUT - datetime.timedelta(minutes=1)),  # the cut is still to come
    ],
)
def test_no_notice_when_no_report_missed_it(day, runs, now):
    for fields in runs:
        run(**fields)
    assert late_entry_notice(implantation_on(day), now=now) is None


@pytest.mark.django_db
def test_a_failed_run_ran_too():
    run(status=ReportRun.Status.FAILED)
    assert late_entry_notice(implantation_on(datetime.date(2026, 10, 14)), now=AFTER_CUT)


@pytest.mark.django_db
def test_each_child_record_by_its_own_date(centre_a):
    run()
    implantation = ImplantationFactory(patient__centre=centre_a, implanted_on=datetime.date(2026, 9, 1))
    day = datetime.date(2026, 10, 14)
    records = {
        "HAI dose": TreatmentFactory.build(implantation=implantation, given_on=day),
        "complication": ComplicationFactory.build(implantation=implantation, onset_on=day),
        "liver test": LiverTestFactory.build(implantation=implantation, measured_on=day),
        "follow-up": FollowUpFactory.build(implantation=implantation, contact_on=day),
        "systemic therapy line": SystemicTherapyLineFactory.build(patient=implantation.patient, started_on=day),
    }
    for label, record in records.items():
        notice = late_entry_notice(record, now=AFTER_CUT)
        assert notice.startswith(f"This {label} is dated 2026-10-14, in October 2026"), notice
    assert late_entry_notice(PatientFactory.build(centre=centre_a), now=AFTER_CUT) is None


# --- In the admin ------------------------------------------------------------------------------------


def previous_month(today):
    return (today.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)


@pytest.fixture
def ran_last_month(db):
    """Last month's report ran, its data cut an hour ago at the latest."""
    period = previous_month(timezone.localdate())
    first_of_this_month = datetime.datetime.combine(
        timezone.localdate().replace(day=1), datetime.time(6), tzinfo=datetime.UTC
    )
    cut = min(first_of_this_month, timezone.now() - datetime.timedelta(hours=1))
    return run(period=period, data_cut=cut)


def warnings_of(response):
    return [m.message for m in get_messages(response.wsgi_request) if m.level == WARNING]


def test_saving_an_implantation_dated_in_a_reported_month_warns(client, data_manager_a, centre_a, ran_last_month):
    day = ran_last_month.period + datetime.timedelta(days=13)
    implantation = ImplantationFactory(
        patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a), implanted_on=day - datetime.timedelta(1)
    )
    client.force_login(data_manager_a)
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])

    response = client.post(url, record_form(implantation, implanted_on=day.isoformat()))

    assert response.status_code == 302
    month = f"{ran_last_month.period:%B %Y}"
    assert warnings_of(response) == [
        f"This implantation is dated {day.isoformat()}, in {month}, whose report already ran "
        f"(data cut {ran_last_month.data_cut.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC). "
        "It will appear in the next monthly report."
    ]


def test_a_dose_added_on_the_page_warns_and_the_unchanged_implantation_does_not(
    client, data_manager_a, centre_a, ran_last_month
):
    implantation = ImplantationFactory(
        patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a), implanted_on=ran_last_month.period
    )
    given_on = ran_last_month.period + datetime.timedelta(days=5)
    dose = {
        "id": "",
        "implantation": str(implantation.pk),
        "given_on": given_on.isoformat(),
        "drug": "fudr",
        "dose": "0.100",
        "dose_unit": "mg/kg/day",
        "dose_change": "full",
        "dose_change_reason": "",
    }
    client.force_login(data_manager_a)
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])

    response = client.post(url, {**record_form(implantation), **inline_rows("treatments", [dose])})

    assert response.status_code == 302
    [warning] = warnings_of(response)
    assert warning.startswith(f"This HAI dose is dated {given_on.isoformat()}, in ")
    assert "It will appear in the next monthly report." in warning


def test_no_warning_without_a_report_that_ran(client, data_manager_a, centre_a):
    implantation = ImplantationFactory(patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a))
    client.force_login(data_manager_a)
    url = reverse("admin:registry_implantation_change", args=[implantation.pk])
    response = client.post(url, record_form(implantation, operative_minutes="200"))
    assert response.status_code == 302
    assert warnings_of(response) == []


def test_a_child_record_saved_on_its_own_page_warns(client, data_manager_a, centre_a, ran_last_month):
    implantation = ImplantationFactory(
        patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a), implanted_on=ran_last_month.period
    )
    complication = ComplicationFactory(implantation=implantation, onset_on=ran_last_month.period, grade=2)
    client.force_login(data_manager_a)
    url = reverse("admin:registry_complication_change", args=[complication.pk])

    response = client.post(url, record_form(complication, grade="3"))

    assert response.status_code == 302, response.content.decode()[:2000]
    [warning] = warnings_of(response)
    assert warning.startswith(f"This complication is dated {ran_last_month.period.isoformat()}, in ")


# --- In the API (a response header) ----------------------------------------------------------------


def api_client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def test_an_api_write_of_a_late_record_says_so_in_a_header(data_manager_a, centre_a, ran_last_month):
    implantation = ImplantationFactory(
        patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a), implanted_on=ran_last_month.period
    )
    given_on = ran_last_month.period + datetime.timedelta(days=5)
    response = api_client(data_manager_a).post(
        "/api/v1/treatments/",
        {
            "implantation": implantation.pk,
            "given_on": given_on.isoformat(),
            "drug": "fudr",
            "dose": "0.120",
            "dose_unit": "mg/kg/day",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response["Late-Entry"].startswith(f"This HAI dose is dated {given_on.isoformat()}, in ")


def test_no_header_on_reads_or_without_a_report_that_ran(data_manager_a, centre_a):
    implantation = ImplantationFactory(patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a))
    client = api_client(data_manager_a)
    patched = client.patch(
        f"/api/v1/implantations/{implantation.pk}/", {"length_of_stay_days": 4}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert patched.status_code == 200 and "Late-Entry" not in patched
    run(period=implantation.implanted_on.replace(day=1), data_cut=timezone.now() - datetime.timedelta(hours=1))
    read = client.get(f"/api/v1/implantations/{implantation.pk}/")
    assert read.status_code == 200 and "Late-Entry" not in read
