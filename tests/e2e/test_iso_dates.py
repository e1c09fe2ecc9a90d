"""Dates in the admin, in a real browser (issue 13): ISO in and out, and each centre's own today.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_iso_dates.py -q``
"""

import datetime
import re

import pytest
from playwright.sync_api import expect

from registry import rules
from registry.models import Implantation
from sites.models import Role
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# 16:30 on 4 March in London is 01:30 on 5 March in Tokyo.
LATE_IN_LONDON = datetime.datetime(2026, 3, 4, 16, 30, tzinfo=datetime.UTC)


def log_in(page, live_server, user):
    admin = f"{live_server.url}/admin/"
    page.goto(admin)
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)
    return admin


def open_new_implantation(page, admin, patient, surgeon):
    page.goto(f"{admin}registry/implantation/add/?patient={patient.pk}&surgeon={surgeon.pk}")
    expect(page.locator("#select2-id_patient-container")).to_have_text(patient.pseudonym)
    page.locator("#id_indication").select_option("unresectable_first_line")
    page.locator("#id_approach").select_option("laparotomy")
    page.locator("#id_device").select_option("constant_flow_pump")


def test_an_iso_date_round_trip_and_a_day_month_date_refused(live_server, page, centre_a, data_manager_a):
    patient = factories.PatientFactory(centre=centre_a, pseudonym="HAI-ISODATE1")
    surgeon = factories.SurgeonFactory(centre=centre_a, code="SURG-ISO")
    admin = log_in(page, live_server, data_manager_a)
    open_new_implantation(page, admin, patient, surgeon)

    # The calendar shortcut writes ISO.
    page.locator(".field-implanted_on .datetimeshortcuts a").last.click()
    page.locator(".calendarbox .calendar td a", has_text=re.compile(r"^15$")).first.click()
    assert ISO.match(page.locator("#id_implanted_on").input_value())

    # 04/03/2024 as a Londoner writes it: refused, with both readings in ISO.
    page.locator("#id_implanted_on").fill("04/03/2024")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-implanted_on .errorlist")).to_have_text(
        "Write dates as YYYY-MM-DD. 04/03/2024 is 2024-03-04 (4 March) or 2024-04-03 (3 April)."
    )
    assert not Implantation.objects.filter(patient=patient).exists()
    expect(page.locator("#id_implanted_on")).to_have_value("04/03/2024")  # what was typed, to correct it

    page.locator("#id_implanted_on").fill("2024-03-04")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")
    implantation = Implantation.objects.get(patient=patient)
    assert implantation.implanted_on == datetime.date(2024, 3, 4)
    expect(page.locator("#result_list")).to_contain_text("2024-03-04")  # the list shows ISO too

    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    expect(page.locator("#id_implanted_on")).to_have_value("2024-03-04")
    assert page.problems == []


def test_a_tokyo_data_manager_enters_tokyos_today(live_server, page, monkeypatch):
    # The live server runs in this process: its "now" is the test's.
    monkeypatch.setattr(rules, "now", lambda: LATE_IN_LONDON)
    tokyo = factories.CentreFactory(code="TOKYO-01", country="JP", time_zone="Asia/Tokyo")
    dm = factories.user_with_role(Role.DATA_MANAGER, tokyo, username="dm-tokyo")
    patient = factories.PatientFactory(centre=tokyo, pseudonym="HAI-TOKYO001")
    surgeon = factories.SurgeonFactory(centre=tokyo, code="SURG-TKY")
    admin = log_in(page, live_server, dm)
    open_new_implantation(page, admin, patient, surgeon)

    page.locator("#id_implanted_on").fill("2026-03-05")  # already today in Tokyo, still tomorrow in London
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")
    assert Implantation.objects.get(patient=patient).implanted_on == datetime.date(2026, 3, 5)

    # The day after is Tokyo's tomorrow: refused.
    other = factories.PatientFactory(centre=tokyo, pseudonym="HAI-TOKYO002")
    open_new_implantation(page, admin, other, surgeon)
    page.locator("#id_implanted_on").fill("2026-03-06")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".field-implanted_on .errorlist")).to_have_text(
        "The implantation date cannot be in the future."
    )
    assert not Implantation.objects.filter(patient=other).exists()
    assert page.problems == []
