"""The data-quality rules (issue 12): each raises one query per offending record and none on a clean one,
re-running raises no duplicate, a fixed problem closes its query, and a centre sees only its own queries.

Dates count back from the registry's today (``rules.today``), as the rules do.
"""

import datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_celery_beat.models import PeriodicTask

from registry import data_quality, rules, tasks
from registry.data_quality_services import AUTOMATIC_CLOSE_NOTE, RULE_AUTHOR, close_query, run_checks
from registry.models import DataQuery, DataQueryStatus
from sites.models import Role

from . import factories

TODAY = rules.today()
CODES = list(data_quality.RULES)


def ago(days):
    return TODAY - datetime.timedelta(days=days)


def implantation(centre, days_old=60, **fields):
    return factories.ImplantationFactory(patient__centre=centre, implanted_on=ago(days_old), **fields)


def liver_test(implantation, days_ago, ast=35, alp=110, bilirubin="12.0"):
    return factories.LiverTestFactory(
        implantation=implantation,
        measured_on=ago(days_ago),
        ast_u_per_l=ast,
        alp_u_per_l=alp,
        bilirubin_umol_per_l=None if bilirubin is None else Decimal(bilirubin),
    )


def fudr(implantation, days_ago, change="full"):
    return factories.TreatmentFactory(
        implantation=implantation,
        given_on=ago(days_ago),
        dose_change=change,
        dose_change_reason="" if change == "full" else "Liver tests",
    )


def follow_up(implantation, days_ago, **fields):
    return factories.FollowUpFactory(implantation=implantation, contact_on=ago(days_ago), **fields)


def clean(centre):
    """An implantation no rule finds anything wrong with: dosed on day 17 with its liver tests, followed up."""
    record = implantation(centre, 60)
    liver_test(record, 45)
    fudr(record, 43)
    follow_up(record, 10)
    return record


def run(code, **kwargs):
    return run_checks(rule_codes=[code], **kwargs)[code]


def raised(code):
    return {(q.record_model, q.record_id) for q in DataQuery.objects.filter(rule=code).unresolved()}


def about(record):
    return (record._meta.label_lower, record.pk)


# --------------------------------------------------------------------------- each rule


def test_no_first_dose_28_days(centre_a):
    due = implantation(centre_a, 28)
    held_only = implantation(centre_a, 40)
    fudr(held_only, 20, change="held")  # a held cycle is not a dose
    implantation(centre_a, 27)  # too young
    implantation(centre_a, 40, never_treated_reason="progression")
    clean(centre_a)

    counts = run("no_first_dose_28_days")

    assert raised("no_first_dose_28_days") == {about(due), about(held_only)}
    assert (counts.raised, counts.closed, counts.still_open) == (2, 0, 2)
    query = DataQuery.objects.get(record_id=due.pk, rule="no_first_dose_28_days")
    assert (query.patient, query.implantation, query.field_name) == (due.patient, due, "never_treated_reason")
    assert "28 days after the implantation" in query.message and query.status == DataQueryStatus.OPEN
    assert query.raised_by is None and query.history.get().history_user_name == RULE_AUTHOR


def test_follow_up_overdue(centre_a):
    stale = implantation(centre_a, 400)
    follow_up(stale, 200)  # over 6 calendar months ago, alive
    never_followed = implantation(centre_a, 200)
    recent = implantation(centre_a, 400)
    follow_up(recent, 150)
    dead = implantation(centre_a, 400)
    follow_up(dead, 200, vital_status="dead", died_on=ago(200))
    implantation(centre_a, 100)  # no follow-up yet, but implanted less than 6 months ago

    run("follow_up_overdue")

    assert raised("follow_up_overdue") == {about(stale), about(never_followed)}
    messages = dict(DataQuery.objects.filter(rule="follow_up_overdue").values_list("record_id", "message"))
    assert f"last contact recorded is on {ago(200):%Y-%m-%d}" in messages[stale.pk]
    assert "no follow-up is recorded since the implantation" in messages[never_followed.pk]


def test_death_without_date(centre_a):
    record = clean(centre_a)
    death = factories.ComplicationFactory(implantation=record, grade=5, onset_on=ago(20))
    factories.ComplicationFactory(implantation=record, grade=3, onset_on=ago(30))
    dated = clean(centre_a)
    factories.ComplicationFactory(implantation=dated, grade=5, onset_on=ago(8))
    follow_up(dated, 5, vital_status="dead", died_on=ago(7))

    run("death_without_date")

    assert raised("death_without_date") == {about(death)}
    query = DataQuery.objects.get(rule="death_without_date")
    assert query.implantation == record and query.field_name == "grade" and "no date of death" in query.message


def test_liver_tests_missing_at_dose(centre_a):
    record = implantation(centre_a, 90)
    follow_up(record, 5)
    liver_test(record, 67)
    tested = fudr(record, 60)  # its tests 7 days before: in the window
    untested = fudr(record, 40)
    liver_test(record, 20, alp=None)
    no_alp = fudr(record, 20)
    liver_test(record, 9)
    late_tests = fudr(record, 1)  # the last tests 8 days before: out of the window
    fudr(record, 30, change="held")  # held: no dose, nothing to test for

    run("liver_tests_missing_at_dose")

    assert raised("liver_tests_missing_at_dose") == {about(untested), about(no_alp), about(late_tests)}
    messages = dict(DataQuery.objects.filter(rule="liver_tests_missing_at_dose").values_list("record_id", "message"))
    assert messages[untested.pk].startswith("No AST, ALP, bilirubin measured in the 7 days up to the HAI dose")
    assert messages[no_alp.pk].startswith("No ALP measured")
    assert tested.pk not in messages


def fudr_course(centre, *, reference, current, change="full"):
    """Two FUDR fills 14 days apart, liver tests at each: ``reference`` at the first, ``current`` at the second."""
    record = implantation(centre, 80)
    follow_up(record, 5)
    liver_test(record, 62, **reference)
    fudr(record, 60)
    liver_test(record, 47, **current)
    return fudr(record, 46, change=change)


@pytest.mark.parametrize(
    "reference,current,change,expected",
    [
        ({"ast": 40}, {"ast": 160}, "full", "hold"),  # 4 × reference: hold
        ({"ast": 40}, {"ast": 160}, "reduced", "hold"),  # reduced is not held
        ({"ast": 40}, {"ast": 160}, "held", None),
        ({"alp": 80}, {"alp": 125}, "full", "50% of the dose"),  # 1.56 ×: 50%
        ({"alp": 80}, {"alp": 125}, "reduced", None),
        ({"bilirubin": "10.0"}, {"bilirubin": "20.0"}, "full", "hold"),  # 2 × a reference under 1.2 mg/dL
        ({"ast": 40}, {"ast": 79}, "full", None),  # just under 2 ×: full dose
    ],
)
def test_liver_tests_rising_without_hold(centre_a, reference, current, change, expected):
    dose = fudr_course(centre_a, reference=reference, current=current, change=change)

    run("liver_tests_rising_without_hold")

    if expected is None:
        assert raised("liver_tests_rising_without_hold") == set()
        return
    assert raised("liver_tests_rising_without_hold") == {about(dose)}
    query = DataQuery.objects.get(rule="liver_tests_rising_without_hold")
    assert query.field_name == "dose_change" and f"calls for {expected}" in query.message
    assert f"last FUDR fill, {ago(60):%Y-%m-%d}" in query.message


def test_the_first_fudr_fill_has_no_reference_and_raises_nothing(centre_a):
    record = implantation(centre_a, 60)
    follow_up(record, 5)
    liver_test(record, 44, ast=30)
    liver_test(record, 43, ast=300)
    fudr(record, 43)

    run("liver_tests_rising_without_hold")

    assert raised("liver_tests_rising_without_hold") == set()


def test_a_clean_registry_raises_nothing(centre_a, centre_b):
    clean(centre_a)
    clean(centre_b)

    counts = run_checks()

    assert all((c.raised, c.still_open) == (0, 0) for c in counts.values()), counts
    assert not DataQuery.objects.exists()


def test_messages_name_no_patient(centre_a):
    record = implantation(centre_a, 400)
    factories.ComplicationFactory(implantation=record, grade=5, onset_on=ago(300))
    fudr_course(centre_a, reference={"ast": 40}, current={"ast": 200})

    run_checks()

    messages = list(DataQuery.objects.values_list("message", flat=True))
    assert len(messages) >= 4
    for pseudonym in factories.Patient.objects.values_list("pseudonym", flat=True):
        assert not any(pseudonym in message for message in messages)


# --------------------------------------------------------------------------- re-running, fixing, recurring


def offending_world(centre):
    """A record offending each rule."""
    untreated = implantation(centre, 200)  # no dose (28 days) and no follow-up (6 months)
    factories.ComplicationFactory(implantation=untreated, grade=5, onset_on=ago(100))
    record = implantation(centre, 90)
    follow_up(record, 5)
    fudr(record, 60)  # no liver tests
    fudr_course(centre, reference={"ast": 40}, current={"ast": 200})
    return untreated


def test_rerunning_raises_no_duplicate(centre_a):
    offending_world(centre_a)

    first = run_checks()
    second = run_checks()

    assert all(first[code].raised == 1 for code in CODES), first
    assert all((c.raised, c.closed, c.still_open) == (0, 0, 1) for c in second.values()), second
    assert DataQuery.objects.count() == len(CODES)


def test_a_fixed_problem_closes_its_query_with_a_note(centre_a):
    record = implantation(centre_a, 40)
    run("no_first_dose_28_days")
    query = DataQuery.objects.get()

    record.never_treated_reason = "patient_choice"
    record.save()
    counts = run("no_first_dose_28_days")

    query.refresh_from_db()
    assert (counts.raised, counts.closed, counts.still_open) == (0, 1, 0)
    assert query.status == DataQueryStatus.CLOSED and query.closed_automatically
    assert query.closed_by is None and query.closed_at is not None and query.close_note == AUTOMATIC_CLOSE_NOTE
    latest = query.history.order_by("-history_date", "-history_id").first()
    assert (latest.history_type, latest.status, latest.history_user_name) == ("~", "closed", RULE_AUTHOR)
    assert latest.history_change_reason == AUTOMATIC_CLOSE_NOTE


def test_a_problem_back_after_it_was_fixed_raises_a_new_query(centre_a):
    record = implantation(centre_a, 40)
    run("no_first_dose_28_days")
    record.never_treated_reason = "patient_choice"
    record.save()
    run("no_first_dose_28_days")
    record.never_treated_reason = ""
    record.save()

    counts = run("no_first_dose_28_days")

    assert counts.raised == 1
    old, new = DataQuery.objects.order_by("pk")
    assert old.status == DataQueryStatus.CLOSED and new.status == DataQueryStatus.OPEN
    assert "An earlier query about this record was resolved on" in new.message


def test_a_query_the_coordinator_closed_is_not_raised_again(centre_a, coordinator):
    implantation(centre_a, 40)
    run("no_first_dose_28_days")
    close_query(DataQuery.objects.get(), user=coordinator, note="Pump kept for a later line; no reason yet")

    counts = run("no_first_dose_28_days")

    assert (counts.raised, counts.still_open) == (0, 0)
    assert DataQuery.objects.count() == 1


def test_a_centres_run_raises_and_closes_only_that_centres_queries(centre_a, centre_b):
    in_a = implantation(centre_a, 40)
    in_b = implantation(centre_b, 40)
    run("no_first_dose_28_days", centre=centre_b)
    assert raised("no_first_dose_28_days") == {about(in_b)}

    counts = run("no_first_dose_28_days", centre=centre_a)

    assert (counts.raised, counts.closed, counts.still_open) == (1, 0, 1)
    assert raised("no_first_dose_28_days") == {about(in_a), about(in_b)}


def test_another_centres_user_sees_nothing(centre_a, centre_b):
    offending_world(centre_a)
    run_checks()
    assert DataQuery.objects.count() == len(CODES)

    for role in (Role.DATA_MANAGER, Role.CENTRE_LEAD):
        user = factories.user_with_role(role, centre_b)
        assert not DataQuery.objects.visible_to(user).exists()
        assert not DataQuery.objects.editable_by(user).exists()
    own = factories.user_with_role(Role.DATA_MANAGER, centre_a)
    assert DataQuery.objects.visible_to(own).count() == len(CODES)


# --------------------------------------------------------------------------- cost, command, schedule


def test_a_run_costs_the_same_few_queries_per_rule_for_10_or_40_implantations(centre_a):
    def cost(copies):
        DataQuery.objects.all().delete()
        for _ in range(copies):
            offending_world(centre_a)
        with CaptureQueriesContext(connection) as captured:
            counts = run_checks()
        assert all(c.raised >= copies for c in counts.values())
        return len(captured)

    small, large = cost(2), cost(8)
    assert small == large, (small, large)
    assert large <= 12 * len(CODES)


def test_the_command_prints_counts_and_refuses_an_unknown_centre(centre_a, capsys):
    offending_world(centre_a)

    call_command("check_data_quality", "--centre", centre_a.code, "--rule", "death_without_date")

    out = capsys.readouterr().out
    assert "raised  closed  still open" in out
    assert [line.split() for line in out.splitlines()[1:]] == [
        ["death_without_date", "1", "0", "1"],
        ["total", "1", "0", "1"],
    ]
    with pytest.raises(CommandError):
        call_command("check_data_quality", "--centre", "NOPE")


def test_the_checks_run_nightly_from_celery_beat(centre_a):
    task = PeriodicTask.objects.get(task="registry.tasks.check_data_quality")
    assert task.enabled and (task.crontab.hour, task.crontab.day_of_month) == ("2", "*")
    offending_world(centre_a)

    result = tasks.check_data_quality.apply().get()

    assert result["death_without_date"] == {"raised": 1, "closed": 0, "still_open": 1}
    assert tasks.check_data_quality.apply(kwargs={"centre_id": centre_a.pk}).get()["death_without_date"]["raised"] == 0
