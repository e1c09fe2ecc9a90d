"""The record status dashboard (issue 12): each cell's rule (registry.dashboard), and the admin page."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from registry import admin_dashboard, dashboard, rules
from registry.models import DataQueryStatus, Implantation
from registry.vocabulary import DoseChange, NeverTreatedReason, VitalStatus

from .factories import (
    DataQueryFactory,
    FollowUpFactory,
    ImplantationFactory,
    LiverTestFactory,
    PerfusionCheckFactory,
    TreatmentFactory,
)

URL = "admin:registry_implantation_record_status"
OPERATIVE = {"operative_minutes": 180, "blood_loss_ml": 200, "length_of_stay_days": 6}


def ago(days):
    return rules.today() - datetime.timedelta(days=days)


def implantation(centre, days_old, **fields):
    return ImplantationFactory(patient__centre=centre, implanted_on=ago(days_old), **fields)


def cells(imp):
    rows = dashboard.record_status_rows(Implantation.objects.all())
    return next(r["cells"] for r in rows if r["implantation_id"] == imp.pk)


def page_rows(client, **params):
    response = client.get(reverse(URL), params)
    assert response.status_code == 200
    return response, {r["implantation_id"]: r["cells"] for r in response.context["rows"]}


# --------------------------------------------------------------------------- operation


def test_operation_complete_when_operative_fields_filled(centre_a):
    assert cells(implantation(centre_a, 3, **OPERATIVE))["operation"] == dashboard.COMPLETE


@pytest.mark.parametrize("missing", dashboard.OPERATION_REQUIRED_FIELDS)
def test_operation_incomplete_when_an_operative_field_is_empty(centre_a, missing):
    imp = implantation(centre_a, 3, **{**OPERATIVE, missing: None})
    assert cells(imp)["operation"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- perfusion


def test_perfusion_complete_with_a_check(centre_a):
    imp = implantation(centre_a, 40)
    PerfusionCheckFactory(implantation=imp, checked_on=ago(35))
    assert cells(imp)["perfusion"] == dashboard.COMPLETE


def test_perfusion_overdue_without_check_14_days_after(centre_a):
    assert cells(implantation(centre_a, 14))["perfusion"] == dashboard.OVERDUE


def test_perfusion_incomplete_without_check_before_14_days(centre_a):
    assert cells(implantation(centre_a, 13))["perfusion"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- HAI doses


def test_doses_complete_with_a_dose(centre_a):
    imp = implantation(centre_a, 60)
    TreatmentFactory(implantation=imp, given_on=ago(40))
    assert cells(imp)["doses"] == dashboard.COMPLETE


def test_doses_complete_with_a_never_treated_reason(centre_a):
    imp = implantation(centre_a, 60, never_treated_reason=NeverTreatedReason.values[0])
    assert cells(imp)["doses"] == dashboard.COMPLETE


def test_doses_overdue_28_days_after_with_only_a_held_cycle(centre_a):
    imp = implantation(centre_a, 28)
    TreatmentFactory(implantation=imp, given_on=ago(20), dose_change=DoseChange.HELD, dose_change_reason="toxicity")
    assert cells(imp)["doses"] == dashboard.OVERDUE


def test_doses_overdue_is_the_data_quality_rule(centre_a, monkeypatch):
    """The dashboard reuses no_first_dose_28_days (reports.selectors.untreated_without_reason)."""
    imp = implantation(centre_a, 60)
    monkeypatch.setattr("reports.selectors.untreated_without_reason", lambda scope, data_cut: [])
    assert cells(imp)["doses"] == dashboard.INCOMPLETE


def test_doses_incomplete_before_28_days(centre_a):
    assert cells(implantation(centre_a, 27))["doses"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- complications


def test_complications_complete_once_a_follow_up_exists(centre_a):
    imp = implantation(centre_a, 60)
    FollowUpFactory(implantation=imp, contact_on=ago(10))
    assert cells(imp)["complications"] == dashboard.COMPLETE


def test_complications_incomplete_without_follow_up(centre_a):
    assert cells(implantation(centre_a, 60))["complications"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- liver tests


def test_liver_tests_complete_with_a_baseline(centre_a):
    imp = implantation(centre_a, 60)
    LiverTestFactory(implantation=imp, measured_on=ago(61), is_baseline=True)
    assert cells(imp)["liver_tests"] == dashboard.COMPLETE


def test_liver_tests_incomplete_without_a_baseline(centre_a):
    imp = implantation(centre_a, 60)
    LiverTestFactory(implantation=imp, measured_on=ago(30), is_baseline=False)
    assert cells(imp)["liver_tests"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- follow-up


def test_follow_up_complete_with_a_recent_contact(centre_a):
    imp = implantation(centre_a, 400)
    FollowUpFactory(implantation=imp, contact_on=ago(30))
    assert cells(imp)["follow_up"] == dashboard.COMPLETE


def test_follow_up_complete_when_death_recorded(centre_a):
    imp = implantation(centre_a, 600)
    FollowUpFactory(implantation=imp, contact_on=ago(400), vital_status=VitalStatus.DEAD, died_on=ago(400))
    assert cells(imp)["follow_up"] == dashboard.COMPLETE


def test_follow_up_complete_when_death_recorded_on_another_pump_of_the_patient(centre_a):
    first = implantation(centre_a, 700)
    FollowUpFactory(implantation=first, contact_on=ago(500), vital_status=VitalStatus.DEAD, died_on=ago(500))
    second = ImplantationFactory(patient=first.patient, implanted_on=ago(600))
    assert cells(second)["follow_up"] == dashboard.COMPLETE


def test_follow_up_overdue_when_alive_and_last_contact_over_6_months_ago(centre_a):
    imp = implantation(centre_a, 600)
    FollowUpFactory(implantation=imp, contact_on=ago(200))
    assert cells(imp)["follow_up"] == dashboard.OVERDUE


def test_follow_up_overdue_without_follow_up_6_months_after(centre_a):
    assert cells(implantation(centre_a, 200))["follow_up"] == dashboard.OVERDUE


def test_follow_up_overdue_is_the_data_quality_rule(centre_a, monkeypatch):
    """The dashboard reuses follow_up_overdue (reports.selectors.overdue_follow_ups)."""
    imp = implantation(centre_a, 200)
    monkeypatch.setattr("reports.selectors.overdue_follow_ups", lambda scope, data_cut: [])
    assert cells(imp)["follow_up"] == dashboard.INCOMPLETE


def test_follow_up_incomplete_without_follow_up_before_6_months(centre_a):
    assert cells(implantation(centre_a, 100))["follow_up"] == dashboard.INCOMPLETE


# --------------------------------------------------------------------------- open queries


def _close(query):
    query.status = DataQueryStatus.CLOSED
    query.closed_at = timezone.now()
    query.save()


@pytest.mark.parametrize(
    ("record_model", "rule", "column"),
    [
        ("registry.implantation", "manual", "operation"),
        ("registry.perfusioncheck", "manual", "perfusion"),
        ("registry.treatment", "manual", "doses"),
        ("registry.complication", "manual", "complications"),
        ("registry.livertest", "manual", "liver_tests"),
        ("registry.followup", "manual", "follow_up"),
        ("registry.implantation", "no_first_dose_28_days", "doses"),
        ("registry.implantation", "follow_up_overdue", "follow_up"),
    ],
)
def test_open_query_marks_its_form(centre_a, record_model, rule, column):
    imp = implantation(centre_a, 3, **OPERATIVE)
    other = implantation(centre_a, 3, **OPERATIVE)
    DataQueryFactory(implantation=imp, record_model=record_model, record_id=imp.pk, rule=rule, raised_by=None)
    got = cells(imp)
    assert got[column] == dashboard.QUERY
    assert [k for k, v in got.items() if v == dashboard.QUERY] == [column]
    assert dashboard.QUERY not in cells(other).values()


def test_answered_query_still_shows_closed_does_not(centre_a):
    imp = implantation(centre_a, 3, **OPERATIVE)
    query = DataQueryFactory(implantation=imp)
    query.status, query.answer, query.answered_at = DataQueryStatus.ANSWERED, "Checked.", timezone.now()
    query.save()
    assert cells(imp)["operation"] == dashboard.QUERY
    _close(query)
    assert cells(imp)["operation"] == dashboard.COMPLETE


# --------------------------------------------------------------------------- the page: access and scope


@pytest.fixture
def two_centres(centre_a, centre_b):
    return implantation(centre_a, 3), implantation(centre_b, 3)


@pytest.mark.parametrize("user", ["data_manager_a", "centre_lead_a"])
def test_centre_roles_see_only_their_centre(client, request, two_centres, centre_b, user):
    a, b = two_centres
    client.force_login(request.getfixturevalue(user))
    response, rows = page_rows(client)
    assert set(rows) == {a.pk}
    assert [c["label"] for c in response.context["centre_choices"]] == ["All visible centres", "CENTRE-A"]
    _, rows = page_rows(client, centre=str(centre_b.pk))  # another centre's id is ignored, never widened
    assert set(rows) == {a.pk}
    assert b.patient.pseudonym not in response.content.decode()


def test_coordinator_sees_every_centre_and_filters_by_centre(client, coordinator, two_centres, centre_b):
    a, b = two_centres
    client.force_login(coordinator)
    response, rows = page_rows(client)
    assert set(rows) == {a.pk, b.pk}
    assert {c["label"] for c in response.context["centre_choices"]} >= {"CENTRE-A", "CENTRE-B"}
    _, rows = page_rows(client, centre=str(centre_b.pk))
    assert set(rows) == {b.pk}


def test_investigator_has_no_page(client, investigator, two_centres):
    client.force_login(investigator)
    response = client.get(reverse(URL))
    assert response.status_code in (302, 403)
    assert "rows" not in (getattr(response, "context", None) or {})


def test_anonymous_is_sent_to_login(client, two_centres):
    response = client.get(reverse(URL))
    assert response.status_code == 302


# --------------------------------------------------------------------------- filtering, links, pages, queries


def test_filter_by_state_of_a_column(client, data_manager_a, centre_a):
    overdue = implantation(centre_a, 300)
    FollowUpFactory(implantation=overdue, contact_on=ago(250))
    recent = implantation(centre_a, 300)
    FollowUpFactory(implantation=recent, contact_on=ago(20))
    client.force_login(data_manager_a)
    _, rows = page_rows(client, follow_up="overdue")
    assert set(rows) == {overdue.pk}
    _, rows = page_rows(client, follow_up="complete")
    assert set(rows) == {recent.pk}
    _, rows = page_rows(client, follow_up="complete", perfusion="incomplete")
    assert rows == {}
    _, rows = page_rows(client, follow_up="nonsense")
    assert set(rows) == {overdue.pk, recent.pk}


def test_cells_link_to_the_form(client, data_manager_a, centre_a):
    imp = implantation(centre_a, 3)
    client.force_login(data_manager_a)
    response, _ = page_rows(client)
    html = response.content.decode()
    change = reverse("admin:registry_implantation_change", args=[imp.pk])
    for column in dashboard.COLUMNS:
        href = f"{change}#{column.anchor}" if column.anchor else change
        assert re.search(rf'data-column="{column.key}"[^>]*><a href="{re.escape(href)}"', html), column.key
    assert f'href="{change}#treatments-group"' in html


def test_paginates(client, coordinator, centre_a, monkeypatch):
    monkeypatch.setattr(admin_dashboard, "PER_PAGE", 2)
    for days in (3, 4, 5):
        implantation(centre_a, days)
    client.force_login(coordinator)
    response, rows = page_rows(client)
    assert len(rows) == 2 and response.context["total"] == 3
    _, rows = page_rows(client, p="2")
    assert len(rows) == 1


def test_page_size_is_100():
    assert admin_dashboard.PER_PAGE == 100


def _varied(centre, n):
    for i in range(n):
        imp = implantation(centre, 10 + i * 20)
        if i % 2:
            TreatmentFactory(implantation=imp, given_on=ago(5 + i * 20))
            PerfusionCheckFactory(implantation=imp, checked_on=ago(5 + i * 20))
        if i % 3 == 0:
            FollowUpFactory(implantation=imp, contact_on=ago(i * 10))
            LiverTestFactory(implantation=imp, measured_on=ago(10 + i * 20), is_baseline=True)
        if i % 4 == 0:
            DataQueryFactory(implantation=imp)


def test_fixed_number_of_queries(client, coordinator, centre_a, django_assert_max_num_queries):
    _varied(centre_a, 3)
    client.force_login(coordinator)
    with CaptureQueriesContext(connection) as small:
        page_rows(client)
    _varied(centre_a, 27)
    with django_assert_max_num_queries(len(small.captured_queries)):
        _, rows = page_rows(client)
    assert len(rows) == 30


def test_the_implantation_list_links_to_the_dashboard(client, data_manager_a):
    client.force_login(data_manager_a)
    page = client.get(reverse("admin:registry_implantation_changelist")).content.decode()
    assert reverse("admin:registry_implantation_record_status") in page
    assert "Import" in page  # the import button is still there
