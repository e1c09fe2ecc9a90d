"""The monthly report's completeness section shows the centre's open data queries by rule, as of the data cut
(issue 12): the figures come from ``registry.data_quality.open_query_counts``, the drawing from the template."""

import datetime
import re

import pytest
from django.utils import timezone

from registry.data_quality import open_query_counts
from registry.data_quality_services import answer_query, close_query, raise_query, run_checks
from registry.models import DataQuery, Implantation
from reports import services
from reports.models import CentreReport
from sites.models import Role

from . import factories, report_world

PERIOD = datetime.date(2024, 6, 1)


@pytest.fixture
def media(settings, tmp_path, print_stand_in):  # the counts are read from the stored HTML
    settings.MEDIA_ROOT = tmp_path


def row_of(html, rule):
    """The cells of the open-query table's row for ``rule``."""
    match = re.search(rf'<tr data-rule="{rule}">(.*?)</tr>', html, re.S)
    assert match, rule
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", match.group(1), re.S)]


def test_the_report_shows_the_centres_open_queries_by_rule_as_of_the_cut(
    db, media, coordinator, django_capture_on_commit_callbacks
):
    home, other, _ = report_world.build()  # per centre: 6 implantations of 2024, 2 never dosed, all followed in 2024
    run_checks(rule_codes=["no_first_dose_28_days", "follow_up_overdue"])
    manager = factories.user_with_role(Role.DATA_MANAGER, home)
    home_queries = DataQuery.objects.filter(patient__centre=home)
    answer_query(home_queries.filter(rule="no_first_dose_28_days").first(), user=manager, answer="Reason to follow.")
    implantation = Implantation.objects.filter(patient__centre=home).first()
    close_query(raise_query(implantation, user=coordinator, message="Surgeon?", field_name="surgeon"), user=coordinator)
    expected = open_query_counts(home)
    cut = timezone.now()
    # After the cut: a new query (not counted) and a query closed (still open at the cut).
    raise_query(implantation, user=coordinator, message="Operative time?", field_name="operative_minutes")
    close_query(home_queries.filter(rule="follow_up_overdue").first(), user=coordinator)

    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(PERIOD, centre_codes=[home.code], data_cut=cut)
    report = CentreReport.objects.get(run=run)
    html = report.html.open("rb").read().decode()

    stored = report.numbers["data_queries"]
    assert stored == {**expected, "as_of": cut.isoformat()}
    by_rule = {r["rule"]: (r["open"], r["answered"], r["total"]) for r in stored["rules"]}
    assert by_rule == {
        "no_first_dose_28_days": (1, 1, 2),
        "follow_up_overdue": (6, 0, 6),
        "death_without_date": (0, 0, 0),
        "liver_tests_missing_at_dose": (0, 0, 0),
        "liver_tests_rising_without_hold": (0, 0, 0),
        "manual": (0, 0, 0),
    }
    assert (stored["open"], stored["answered"], stored["total"]) == (7, 1, 8)
    assert '<strong id="open-data-queries-total">8</strong>' in html
    assert row_of(html, "no_first_dose_28_days") == [
        "Pump 28 days old with no dose and no never-treated reason",
        "1",
        "1",
        "2",
    ]
    assert row_of(html, "follow_up_overdue")[1:] == ["6", "0", "6"]
    assert row_of(html, "manual")[1:] == ["0", "0", "0"]
    assert other.code not in html


def test_open_query_counts_follow_the_history(db, coordinator, centre_a, centre_b):
    implantation = factories.ImplantationFactory(patient__centre=centre_a)
    factories.ImplantationFactory(patient__centre=centre_b)
    before = timezone.now()
    query = raise_query(implantation, user=coordinator, message="Approach?", field_name="approach")
    run_checks(rule_codes=["no_first_dose_28_days"])
    raised = timezone.now()
    close_query(query, user=coordinator)

    assert open_query_counts(centre_a, as_of=before)["total"] == 0
    at_raise = open_query_counts(centre_a, as_of=raised)
    assert (at_raise["total"], at_raise["open"]) == (2, 2)
    now = open_query_counts(centre_a)
    assert {r["rule"]: r["total"] for r in now["rules"] if r["total"]} == {"no_first_dose_28_days": 1}
