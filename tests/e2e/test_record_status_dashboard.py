"""A data manager opens the record status dashboard (issue 12) from the implantation list, in a real browser.

One row per own implantation, each cell in the state ``registry.dashboard`` gives it; never another
centre's implantation; the state filters narrow the rows; a cell opens the form it is about.

Run: ``CI=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_record_status_dashboard.py -q``
"""

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from registry import dashboard, rules
from registry.models import DataQueryStatus
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    # live_server needs a transactional database; serialized_rollback puts back
    # the migrations' vocabulary after the flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
OPERATIVE = {"operative_minutes": 180, "blood_loss_ml": 250, "length_of_stay_days": 7}
LABELS = dashboard.STATES  # {"complete": "Complete", ..., "query": "Open query"}


def ago(days):
    return rules.today() - datetime.timedelta(days=days)


def log_in(page, admin, user):
    page.goto(admin)
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def expect_cells(row, expected):
    """Each cell of ``row`` (a <tr>) in the state ``expected[column]``, by its data attribute and its label."""
    for column, state in expected.items():
        cell = row.locator(f'td[data-column="{column}"]')
        expect(cell).to_have_attribute("data-state", state)
        expect(cell).to_have_class(re.compile(rf"\bstate-{state}\b"))
        expect(cell).to_have_text(LABELS[state])


def expect_rows(page, implantations):
    """The dashboard shows exactly ``implantations``, in that order, and says how many."""
    rows = page.locator("#record-status tbody tr")
    expect(rows).to_have_count(len(implantations))
    for row, implantation in zip(rows.all(), implantations, strict=True):
        expect(row).to_have_attribute("data-implantation", str(implantation.pk))
    count = len(implantations)
    expect(page.locator("#content-main")).to_contain_text(f"{count} implantation{'' if count == 1 else 's'}.")


def test_data_manager_reads_filters_and_follows_the_record_status_dashboard(
    live_server, page, centre_a, centre_b, data_manager_a, coordinator
):
    # --- Centre A: three implantations, newest first on the dashboard.
    # Complete everywhere: operative fields, a perfusion check, a dose, a baseline liver test, a recent follow-up.
    complete = factories.ImplantationFactory(
        patient__centre=centre_a, patient__pseudonym="HAI-COMPLETE", implanted_on=ago(60), **OPERATIVE
    )
    factories.PerfusionCheckFactory(implantation=complete, checked_on=ago(55))
    factories.TreatmentFactory(implantation=complete, given_on=ago(45))
    factories.LiverTestFactory(implantation=complete, measured_on=ago(62), is_baseline=True)
    factories.FollowUpFactory(implantation=complete, contact_on=ago(10))
    # Everything entered but no follow-up, ten months after the operation: follow-up overdue (rule
    # follow_up_overdue), and the complications form not looked at since the operation.
    overdue = factories.ImplantationFactory(
        patient__centre=centre_a, patient__pseudonym="HAI-OVERDUE1", implanted_on=ago(300), **OPERATIVE
    )
    factories.PerfusionCheckFactory(implantation=overdue, checked_on=ago(295))
    factories.TreatmentFactory(implantation=overdue, given_on=ago(280))
    factories.LiverTestFactory(implantation=overdue, measured_on=ago(305), is_baseline=True)
    # Five days old, operative fields still empty, a baseline liver test with an open query about it; and
    # a query about the operation the coordinator closed already (a closed query is no open query).
    queried = factories.ImplantationFactory(
        patient__centre=centre_a, patient__pseudonym="HAI-QUERIED1", implanted_on=ago(5)
    )
    liver_test = factories.LiverTestFactory(implantation=queried, measured_on=ago(7), is_baseline=True)
    factories.DataQueryFactory(
        implantation=queried,
        record_model="registry.livertest",
        record_id=liver_test.pk,
        raised_by=coordinator,
        message="Bilirubin 12: µmol/L or mg/dL?",
    )
    factories.DataQueryFactory(
        implantation=queried,
        raised_by=coordinator,
        raised_on=timezone.now() - datetime.timedelta(days=3),
        status=DataQueryStatus.CLOSED,
        closed_by=coordinator,
        closed_at=timezone.now(),
    )
    # Centre B: an overdue case the data manager of A must never see.
    factories.ImplantationFactory(patient__centre=centre_b, patient__pseudonym="HAI-CENTREB1", implanted_on=ago(300))

    admin = f"{live_server.url}/admin/"
    log_in(page, admin, data_manager_a)

    # --- From the implantation list, the "Record status" button.
    page.goto(f"{admin}registry/implantation/")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    page.locator(".object-tools a", has_text="Record status").click()
    expect(page).to_have_url(f"{admin}registry/implantation/record-status/")
    expect(page.locator("h1")).to_have_text("Record status")

    # --- One row per own implantation, newest first; nothing of centre B, not even in the centre filter.
    expect_rows(page, [queried, complete, overdue])
    expect(page.locator("#record-status thead th")).to_have_text(
        ["Implantation", "Centre", *(c.label for c in dashboard.COLUMNS)]
    )
    expect(page.locator("#content-main")).not_to_contain_text("HAI-CENTREB1")
    expect(page.locator("#content-main")).not_to_contain_text("CENTRE-B")
    expect(page.locator("#record-status-filters li").first).to_have_text("All visible centres")
    expect(page.locator(f'#record-status-filters a[href="?centre={centre_a.pk}"]')).to_have_text("CENTRE-A")
    expect(page.locator(f'#record-status-filters a[href="?centre={centre_b.pk}"]')).to_have_count(0)

    row = page.locator(f'#record-status tr[data-implantation="{complete.pk}"]')
    expect(row.locator("td").nth(0)).to_have_text(f"HAI-COMPLETE – {complete.implanted_on:%Y-%m-%d}")
    expect(row.locator("td").nth(1)).to_have_text("CENTRE-A")
    expect_cells(row, dict.fromkeys(dashboard.COLUMN_KEYS, dashboard.COMPLETE))

    expect_cells(
        page.locator(f'#record-status tr[data-implantation="{overdue.pk}"]'),
        {
            "operation": dashboard.COMPLETE,
            "perfusion": dashboard.COMPLETE,
            "doses": dashboard.COMPLETE,
            "complications": dashboard.INCOMPLETE,
            "liver_tests": dashboard.COMPLETE,
            "follow_up": dashboard.OVERDUE,
        },
    )
    expect_cells(
        page.locator(f'#record-status tr[data-implantation="{queried.pk}"]'),
        {
            "operation": dashboard.INCOMPLETE,  # the closed query does not count
            "perfusion": dashboard.INCOMPLETE,  # not 14 days yet
            "doses": dashboard.INCOMPLETE,  # not 28 days yet
            "complications": dashboard.INCOMPLETE,
            "liver_tests": dashboard.QUERY,  # the open query wins over the baseline test's "complete"
            "follow_up": dashboard.INCOMPLETE,  # not 6 months yet
        },
    )

    # --- Filters by state: follow-up overdue, then also liver tests with a query (none), then only the latter.
    filters = page.locator("#record-status-filters")
    filters.locator('a[href="?follow_up=overdue"]', has_text="Overdue").click()
    expect(page).to_have_url(re.compile(r"record-status/\?follow_up=overdue$"))
    expect_rows(page, [overdue])
    selected = filters.locator("li.selected a")  # the centre's and each column's current choice
    expect(selected).to_have_text(["All visible centres", *["All"] * 5, "Overdue"])
    expect(selected.last).to_have_attribute("href", "?follow_up=overdue")

    filters.locator('a[href="?follow_up=overdue&liver_tests=query"]', has_text="Open query").click()
    expect(page.locator("#record-status tbody tr")).to_have_text(["No implantation matches."])
    expect(page.locator("#content-main")).to_contain_text("0 implantations.")

    filters.locator('a[href="?liver_tests=query"]', has_text="All").click()  # follow-up: All, the other kept
    expect_rows(page, [queried])

    filters.locator('a[href="?liver_tests=complete"]', has_text="Complete").click()
    expect_rows(page, [complete, overdue])  # the queried one's baseline test shows as a query, not complete

    # --- A filter on another centre's id shows nothing of it (the centre is not among the visible ones).
    page.goto(f"{admin}registry/implantation/record-status/?centre={centre_b.pk}&follow_up=overdue")
    expect_rows(page, [overdue])
    expect(page.locator("#content-main")).not_to_contain_text("HAI-CENTREB1")

    # --- A cell opens its form: the liver tests inline of the queried implantation's page.
    page.goto(f"{admin}registry/implantation/record-status/?liver_tests=query")
    cell = page.locator(f'#record-status tr[data-implantation="{queried.pk}"] td[data-column="liver_tests"] a')
    cell.click()
    expect(page).to_have_url(f"{admin}registry/implantation/{queried.pk}/change/#liver_tests-group")
    expect(page.locator("#select2-id_patient-container")).to_have_text("HAI-QUERIED1")
    expect(page.locator("#liver_tests-group")).to_be_in_viewport()
    expect(page.locator("#liver_tests-group #id_liver_tests-0-measured_on")).to_have_value(
        liver_test.measured_on.isoformat()  # the admin shows dates as YYYY-MM-DD (registry.formats)
    )

    # The operation cell opens the implantation record itself; the row's first cell too.
    page.go_back()
    expect(page).to_have_url(re.compile(r"record-status/\?liver_tests=query$"))
    page.locator(f'#record-status tr[data-implantation="{queried.pk}"] td[data-column="operation"] a').click()
    expect(page).to_have_url(f"{admin}registry/implantation/{queried.pk}/change/")
    expect(page.locator("#id_operative_minutes")).to_have_value("")

    assert page.problems == []
