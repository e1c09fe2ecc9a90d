"""Consensus concordance (reports.concordance): known answers on a small world, the data cut, suppression and
the report's "Consensus concordance" section (with the readmission and reoperation rates)."""

import datetime

import pytest
from django.utils import timezone
from scipy.stats import binomtest

from registry.models import Implantation
from registry.vocabulary import COMPLICATION_TYPES
from reports import concordance, disclosure, rendering, services
from reports.benchmarks import Grouping
from reports.cohort import cohort
from reports.models import ReportRun

from . import factories
from .factories import days_after

TRIAL = "NCT01234567"


def wilson(x, n):
    ci = binomtest(x, n).proportion_ci(method="wilson")
    return pytest.approx([ci.low, ci.high])


def treated(centre, **patient):
    """An implantation with doses on day 17 (the first) and day 45 (the last) after implantation."""
    implantation = factories.ImplantationFactory(
        patient__centre=centre, **{f"patient__{k}": v for k, v in patient.items()}
    )
    factories.TreatmentFactory(implantation=implantation, given_on=days_after(17, implantation.implanted_on))
    factories.TreatmentFactory(implantation=implantation, given_on=days_after(45, implantation.implanted_on))
    return implantation


def line(implantation, start, end, number=1, **fields):
    """A systemic line of the implantation's patient, ``start`` and ``end`` in days after implantation."""
    day0 = implantation.implanted_on
    return factories.SystemicTherapyLineFactory(
        patient=implantation.patient,
        line_number=number,
        started_on=days_after(start, day0),
        ended_on=None if end is None else days_after(end, day0),
        **fields,
    )


@pytest.fixture
def world(centre_a):
    """Centre A: 3 treated (2 with systemic therapy in the HAI period), 1 untreated with a line, 1 held only."""
    ongoing, last_day, before = treated(centre_a), treated(centre_a), treated(centre_a)
    line(ongoing, -60, None)  # running through the HAI period, no end date
    line(last_day, 45, 90)  # starts on the day of the last HAI dose: overlaps
    line(before, -100, 16)  # ended the day before the first HAI dose: no combination
    line(before, 46, 100, number=2)  # and the next line starts the day after the last: none either
    untreated = factories.ImplantationFactory(patient__centre=centre_a)
    line(untreated, -10, None)
    held = factories.ImplantationFactory(patient__centre=centre_a)
    factories.TreatmentFactory(implantation=held, dose_change="held")
    line(held, -10, None)
    return {"ongoing": ongoing, "last_day": last_day, "before": before, "untreated": untreated, "held": held}


def test_the_hai_period_runs_from_the_first_to_the_last_dose_both_days_included():
    first, last = datetime.date(2024, 3, 18), datetime.date(2024, 4, 15)
    overlaps = concordance.overlaps_hai_period
    assert overlaps(first, last, datetime.date(2024, 1, 1), None)
    assert overlaps(first, last, last, None)
    assert overlaps(first, last, datetime.date(2024, 1, 1), first)
    assert not overlaps(first, last, datetime.date(2024, 1, 1), first - datetime.timedelta(days=1))
    assert not overlaps(first, last, last + datetime.timedelta(days=1), None)
    assert not overlaps(None, None, datetime.date(2024, 1, 1), None)


def test_systemic_therapy_during_hai_among_treated_implantations(world):
    rows = cohort()
    [group] = concordance.systemic_with_hai(rows, Grouping())
    # Untreated and held-only implantations are not in the denominator, whatever their lines.
    assert group == {"group": "all", "implantations": 3, "events": 2, "rate": 2 / 3, "ci": wilson(2, 3)}
    by_id = {r.id: r.systemic_during_hai for r in rows}
    assert by_id[world["ongoing"].pk] and by_id[world["last_day"].pk] and not by_id[world["before"].pk]


def test_a_line_entered_after_the_data_cut_is_not_counted(world):
    cut = timezone.now()
    line(world["before"], 20, 30, number=3, created_at=cut + datetime.timedelta(hours=1))
    [at_cut] = concordance.systemic_with_hai(cohort(as_of=cut), Grouping())
    [now] = concordance.systemic_with_hai(cohort(), Grouping())
    assert (at_cut["events"], now["events"]) == (2, 3)


def test_extrahepatic_disease_outside_a_trial_with_unknown_status_counted_apart(centre_a):
    factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=True)
    factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=True, trial=TRIAL)
    factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=None)
    factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=None, trial=TRIAL)
    factories.ImplantationFactory(patient__centre=centre_a, patient__extrahepatic_disease=False)
    [group] = concordance.extrahepatic_outside_trial(cohort(), Grouping())
    # Of all 5: one discordant; the trial patient is not; one unknown outside a trial, counted apart, not as "no".
    assert group == {
        "group": "all",
        "implantations": 5,
        "events": 1,
        "unknown_status": 1,
        "rate": 1 / 5,
        "ci": wilson(1, 5),
    }


def test_the_concordance_query_count_does_not_grow_with_the_cohort(centre_a, django_assert_max_num_queries):
    for _ in range(3):
        line(treated(centre_a), -10, None)
    with django_assert_max_num_queries(8) as few:
        cohort()
    for _ in range(12):
        line(treated(centre_a), -10, None)
    with django_assert_max_num_queries(len(few.captured_queries)):
        rows = cohort()
    assert concordance.systemic_with_hai(rows, Grouping())[0]["events"] == 15


def test_small_groups_are_suppressed_with_their_complement():
    groups = [
        {"group": "A", "implantations": 20, "events": 10, "rate": 0.5, "ci": [0.3, 0.7]},
        {"group": "B", "implantations": 20, "events": 2, "rate": 0.1, "ci": [0.03, 0.3]},
        {"group": "C", "implantations": 20, "events": 8, "rate": 0.4, "ci": [0.2, 0.6]},
    ]
    out = concordance.suppress_systemic_with_hai(groups)
    assert [g["suppressed"] for g in out] == [False, True, True]
    assert out[1]["events"] is None and out[1]["implantations"] is None and out[1]["rate"] is None

    # Extrahepatic: the unknown status is a part of its own; 3 unknown hides the group.
    extrahepatic = [
        {"group": "A", "implantations": 30, "events": 10, "unknown_status": 10, "rate": 1 / 3, "ci": [0.2, 0.5]},
        {"group": "B", "implantations": 30, "events": 10, "unknown_status": 3, "rate": 1 / 3, "ci": [0.2, 0.5]},
        {"group": "C", "implantations": 30, "events": 10, "unknown_status": 10, "rate": 1 / 3, "ci": [0.2, 0.5]},
    ]
    out = concordance.suppress_extrahepatic_outside_trial(extrahepatic)
    assert [g["suppressed"] for g in out] == [False, True, True]
    assert out[1] == {
        "group": "B",
        "implantations": None,
        "events": None,
        "unknown_status": None,
        "rate": None,
        "ci": None,
        "suppressed": True,
    }
    assert out[0]["unknown_status"] == 10 and set(out[0]) == set(out[1])


def test_the_report_shows_the_registry_only_when_the_other_centres_share_passes_the_rule(world, centre_b):
    rows = cohort()
    own = [r for r in rows if r.centre_code == centre_a_code(world)]
    section = concordance.centre_section(rows, own)
    systemic = section["measures"][0]
    assert systemic["key"] == concordance.SYSTEMIC_WITH_HAI and "systemic chemotherapy" in systemic["recommendation"]
    assert systemic["centre"] == {"implantations": 3, "events": 2, "rate": 2 / 3, "ci": wilson(2, 3)}
    # No other centre yet: registry − own is 0, which is not small.
    assert systemic["registry"]["suppressed"] is False and systemic["registry"]["events"] == 2

    # Two treated implantations at centre B: its share (2) would be recoverable, so the registry is hidden.
    for _ in range(2):
        line(treated(centre_b), -10, None)
    rows = cohort()
    own = [r for r in rows if r.centre_code == centre_a_code(world)]
    section = concordance.centre_section(rows, own)
    registry = section["measures"][0]["registry"]
    assert registry == {"implantations": None, "events": None, "rate": None, "ci": None, "suppressed": True}
    assert section["measures"][0]["centre"]["events"] == 2  # the centre's own figures in full

    for _ in range(10):
        line(treated(centre_b), -10, None)
    factories.ImplantationFactory.create_batch(5, patient__centre=centre_b)
    rows = cohort()
    section = concordance.centre_section(rows, [r for r in rows if r.centre_code == centre_a_code(world)])
    registry = section["measures"][0]["registry"]
    assert (registry["implantations"], registry["events"], registry["suppressed"]) == (15, 14, False)
    assert registry["ci"] == wilson(14, 15)
    assert disclosure.THRESHOLD == 5


def centre_a_code(world):
    return world["ongoing"].patient.centre.code


@pytest.fixture
def media(settings, tmp_path, print_stand_in):
    settings.MEDIA_ROOT = tmp_path


def test_the_centre_report_has_the_consensus_concordance_section_with_readmissions(
    media, world, centre_b, django_capture_on_commit_callbacks
):
    factories.ReadmissionFactory(implantation=world["ongoing"])
    factories.ReadmissionFactory(implantation=world["before"], kind="reoperation")
    for _ in range(6):
        line(treated(centre_b), -10, None)
    period = world["ongoing"].implanted_on.replace(day=1)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(period, data_cut=timezone.now())
    run = ReportRun.objects.get(pk=run.pk)
    report = run.centre_reports.get(centre=world["ongoing"].patient.centre)
    numbers = report.numbers
    readmissions = {m["key"]: m for m in numbers["readmissions"]}
    # Five implantations at A, all with complete 30- and 90-day windows (2024 against a cut of now).
    assert readmissions["readmission_30d"]["centre"] == {
        "implantations": 5,
        "events": 1,
        "rate": 1 / 5,
        "ci": wilson(1, 5),
    }
    assert readmissions["reoperation_90d"]["centre"]["events"] == 1
    # Registry − own: 6 implantations, no readmission: shown.
    assert readmissions["readmission_30d"]["registry"]["implantations"] == 11
    assert numbers["concordance"]["measures"][0]["centre"]["events"] == 2
    html = report.html.open("rb").read().decode()
    assert "<h2>Consensus concordance</h2>" in html
    assert "<h3>Readmission and reoperation</h3>" in html
    assert concordance.SOURCE in html
    assert centre_b.code not in html  # other centres are never named
    assert "Consensus concordance" in rendering.render_html(numbers)


def test_a_report_stored_before_the_section_still_renders(world):
    rows = cohort()
    context = rendering.build_report_context(
        rows,
        centre_code=centre_a_code(world),
        period_start=datetime.date(2024, 3, 1),
        period_end=datetime.date(2024, 3, 31),
        data_cut=timezone.now(),
        complication_types=[
            {"code": c, "name": n, "category": cat, "catheter_related": cr} for c, n, _, cat, cr in COMPLICATION_TYPES
        ],
        method_version="test",
    )
    context.pop("concordance")
    html = rendering.render_html(context)
    assert "Consensus concordance" not in html and Implantation.objects.count() == 5
