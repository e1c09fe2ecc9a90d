"""The stored report has "Cases to review" (pseudonyms); the emailed copy leaves it out and links to the stored one.

The template shows the section when ``cases_to_review`` is in the context and ``for_email`` is
false; the emailed copy is rendered with ``for_email`` true, without the key, and with
``stored_report_url``. Checked on the real PDFs, read back with pdftotext.
"""

import datetime
import shutil
import subprocess
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from registry.models import Patient
from reports import rendering, services
from reports.models import CentreReport
from sites.models import Role

from . import factories, report_world

PERIOD = datetime.date(2024, 6, 1)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def world(db, media):
    return report_world.build(centres=2, per_centre=4)


def pdf_text(content):
    if shutil.which("pdftotext") is None:  # a privacy check is never skipped quietly
        pytest.fail("These tests need pdftotext (poppler-utils; `make test` installs it).")
    return subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout.decode()


def read(field):
    with field.open("rb") as handle:
        return handle.read()


def run_for(centre, django_capture_on_commit_callbacks):
    # Cut now: the test world was entered just now (report_world does not back-date entry).
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(PERIOD, centre_codes=[centre.code], data_cut=timezone.now())
    return CentreReport.objects.select_related("run", "centre").get(run=run)


def pseudonyms_of(centre=None):
    patients = Patient.objects.filter(centre=centre) if centre else Patient.objects.all()
    return set(patients.values_list("pseudonym", flat=True))


def listed(report):
    return {case["pseudonym"] for section in report.numbers["cases_to_review"] for case in section["cases"]}


def test_only_the_stored_copy_lists_the_cases_and_the_email_links_to_it(world, django_capture_on_commit_callbacks):
    centre, other = world
    report = run_for(centre, django_capture_on_commit_callbacks)

    # The stored context has the section, with the centre's own patients only.
    own = listed(report)
    assert own and own <= pseudonyms_of(centre)
    assert [s["key"] for s in report.numbers["cases_to_review"]][:3] == [
        "new_complications",
        "untreated_without_reason",
        "overdue_follow_ups",
    ]
    assert not {"for_email", "stored_report_url", services.ALARM_IMPLANTATIONS_KEY} & set(report.numbers)

    # The stored copy (HTML and PDF) shows them, and no other centre's patient.
    stored_text = pdf_text(read(report.pdf))
    assert "Cases to review" in stored_text
    assert own <= {p for p in pseudonyms_of(centre) if p in stored_text}
    assert all(p in read(report.html).decode() for p in own)
    assert not {p for p in pseudonyms_of(other) if p in stored_text}

    # The email attaches the emailed copy: no pseudonym at all, in the PDF or the body; a link instead.
    (message,) = mail.outbox
    ((_, attachment, mimetype),) = message.attachments
    assert attachment == read(report.email_pdf) and attachment != read(report.pdf) and mimetype == "application/pdf"
    emailed_text = pdf_text(attachment)
    assert centre.code in emailed_text  # the text is readable: a missing pseudonym is really missing
    assert not {p for p in pseudonyms_of() if p in emailed_text}
    assert not {p for p in pseudonyms_of() if p in message.body}
    url = f"/api/v1/reports/{report.pk}/pdf/"
    assert url in message.body and url in emailed_text
    assert f"SHA-256 of the full report: {report.checksum}" in message.body

    # After login, the API hands out the stored copy, section included.
    client = APIClient()
    client.force_authenticate(factories.user_with_role(Role.DATA_MANAGER, centre))
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == read(report.pdf)


def test_the_email_copy_is_rendered_with_for_email_and_without_the_section():
    seen = []
    context = {"centre_code": "X", "cases_to_review": [{"key": "overdue_follow_ups", "rows": [["PT-1"]]}]}
    with mock.patch("reports.rendering.render_html", side_effect=lambda c: seen.append(c) or "html"):
        services.render_stored_html(context)
        services.render_email_html(context, stored_url="https://hai.example.org/api/v1/reports/7/pdf/")
    stored, emailed = seen
    assert stored["for_email"] is False and stored["cases_to_review"] == context["cases_to_review"]
    assert emailed["for_email"] is True and "cases_to_review" not in emailed
    assert emailed["stored_report_url"] == "https://hai.example.org/api/v1/reports/7/pdf/"
    assert set(context) == {"centre_code", "cases_to_review"}  # the stored context is left as it was


def test_the_cases_behind_a_signal_are_resolved_to_pseudonyms(world, django_capture_on_commit_callbacks):
    own, other = world
    own_implantation = own.patients.first().implantations.first()
    other_implantation = other.patients.first().implantations.first()
    real = rendering.build_report_context

    def with_alarm(rows, **kwargs):
        context = real(rows, **kwargs)
        context[services.ALARM_IMPLANTATIONS_KEY] = [
            {
                "measure": "technical_90",
                "label": "Technical complication within 90 days",
                "implantations": [own_implantation.pk, other_implantation.pk],
            }
        ]
        return context

    with mock.patch("reports.rendering.build_report_context", with_alarm):
        report = run_for(own, django_capture_on_commit_callbacks)
    alarm = {s["key"]: s for s in report.numbers["cases_to_review"]}["alarm:technical_90"]
    assert [c["pseudonym"] for c in alarm["cases"]] == [own_implantation.patient.pseudonym]
    assert services.ALARM_IMPLANTATIONS_KEY not in report.numbers
    assert other_implantation.patient.pseudonym not in str(report.numbers)
    assert own_implantation.patient.pseudonym in pdf_text(read(report.pdf))
    assert own_implantation.patient.pseudonym not in pdf_text(read(report.email_pdf))


def test_the_previous_months_report_is_passed_to_the_renderer(world, django_capture_on_commit_callbacks):
    centre = world[0]
    with django_capture_on_commit_callbacks(execute=True):
        services.start_run(datetime.date(2024, 5, 1), centre_codes=[centre.code], data_cut=timezone.now())
    may = CentreReport.objects.get()
    seen = []
    real = rendering.build_report_context

    def spy(rows, **kwargs):
        seen.append(kwargs)
        return real(rows, **kwargs)

    with mock.patch("reports.rendering.build_report_context", spy):
        run_for(centre, django_capture_on_commit_callbacks)
    (kwargs,) = seen
    # The run's own stored model is passed: the report is reproducible from its run alone.
    june = CentreReport.objects.exclude(pk=may.pk).get()
    assert kwargs["previous"] == may.numbers and kwargs["case_mix"] == june.run.case_mix
    assert set(kwargs["case_mix"]) == {"technical_90d", "severe", "mortality_90d", "never_treated"}


def test_a_report_without_an_emailed_copy_is_not_sent_with_its_stored_copy(world, django_capture_on_commit_callbacks):
    report = run_for(world[0], django_capture_on_commit_callbacks)
    CentreReport.objects.filter(pk=report.pk).update(email_pdf="", delivery_state="pending", sent_at=None)
    with pytest.raises(RuntimeError, match="no emailed copy"):
        services.deliver_report(report.pk)
    # Rendered before there were two copies: no section in the stored PDF either, so that one goes.
    numbers = {k: v for k, v in report.numbers.items() if k != "cases_to_review"}
    CentreReport.objects.filter(pk=report.pk).update(numbers=numbers)
    mail.outbox.clear()
    services.deliver_report(report.pk)
    ((_, attachment, _),) = mail.outbox[0].attachments
    assert attachment == read(report.pdf)


def test_the_link_is_absolute_when_the_site_address_is_known(world, settings, django_capture_on_commit_callbacks):
    report = run_for(world[0], django_capture_on_commit_callbacks)
    assert services.stored_report_url(report) == f"/api/v1/reports/{report.pk}/pdf/"
    settings.CSRF_TRUSTED_ORIGINS = ["https://registry.example.org"]
    assert services.stored_report_url(report) == f"https://registry.example.org/api/v1/reports/{report.pk}/pdf/"
    settings.SITE_URL = "https://hai.example.org/"
    assert services.stored_report_url(report) == f"https://hai.example.org/api/v1/reports/{report.pk}/pdf/"
