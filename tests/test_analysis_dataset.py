"""The analysis dataset's rows (reports.analysis_dataset): one per implantation, outcomes as the statistics fit them."""

import datetime

import pytest
from lifelines import KaplanMeierFitter

from registry import demo
from registry.models import ComplicationType, Implantation
from reports import benchmarks, outcomes
from reports.analysis_dataset import analysis_rows
from reports.cohort import cohort

from . import factories

CUT = datetime.date(2026, 10, 31)


def code(kind, pk):
    return f"{kind}-{pk}"


@pytest.fixture
def dataset(db):
    demo.seed_registry(3, 400, 5, reference_date=min(demo.REFERENCE_DATE, datetime.date.today()))
    rows = cohort()
    types = list(ComplicationType.objects.values("code", "name", "category"))
    return rows, analysis_rows(rows, types, CUT, code)


def test_one_row_per_implantation_and_no_calendar_date(dataset):
    rows, table = dataset
    assert len(table) == Implantation.objects.count() == 400
    assert {r["implantation"] for r in table} == {
        code("implantation", pk) for pk in Implantation.objects.values_list("pk", flat=True)
    }
    for row in table:
        for name, value in row.items():
            assert not isinstance(value, datetime.date), name


@pytest.mark.parametrize(
    "endpoint, days, event",
    [
        (outcomes.OVERALL_SURVIVAL.code, "os_days", "os_event"),
        (outcomes.HEPATIC_PROGRESSION_FREE_SURVIVAL.code, "hepatic_pfs_days", "hepatic_pfs_event"),
    ],
)
def test_a_kaplan_meier_on_the_columns_gives_the_survival_statistics_median(dataset, endpoint, days, event):
    rows, table = dataset
    expected = benchmarks.survival_curve(benchmarks.survival_subjects(rows, endpoint), endpoint)
    fitted = [r for r in table if r[days] is not None]
    assert len(fitted) == expected["n"]
    km = KaplanMeierFitter().fit(
        [r[days] for r in fitted],
        [r[event] == 1 for r in fitted],
        entry=[r["entry_day"] - outcomes.ENTRY_OFFSET for r in fitted],
    )
    assert expected["median_days"] is not None
    assert km.median_survival_time_ == pytest.approx(expected["median_days"])


def test_pump_failure_columns_are_the_competing_risks_subjects(dataset):
    rows, table = dataset
    subjects = {s.row.id: s for s in outcomes.PUMP_FAILURE_OUTCOME.subjects(rows)}
    by_code = {r["implantation"]: r for r in table}
    statuses = set()
    for row in rows:
        subject, values = subjects.get(row.id), by_code[code("implantation", row.id)]
        assert values["pump_failure_days"] == (None if subject is None else int(subject.exit))
        assert values["pump_failure_event"] == (None if subject is None else subject.status)
        statuses.add(values["pump_failure_event"])
    assert {0, 1, 2} <= statuses


def test_a_replacement_pump_leaves_the_patients_outcomes_to_the_first_row(db):
    first = factories.ImplantationFactory(implanted_on=datetime.date(2024, 1, 1))
    replacement = factories.ImplantationFactory(
        patient=first.patient,
        surgeon=first.surgeon,
        implanted_on=first.implanted_on + datetime.timedelta(days=200),
        replaces=first,
    )
    factories.FollowUpFactory(
        implantation=replacement, contact_on=replacement.implanted_on + datetime.timedelta(days=30)
    )
    rows = cohort()
    table = {r["implantation"]: r for r in analysis_rows(rows, [], CUT, code)}
    assert table[code("implantation", first.pk)]["first_of_patient"] is True
    assert table[code("implantation", first.pk)]["os_days"] == 230
    assert table[code("implantation", replacement.pk)]["first_of_patient"] is False
    assert table[code("implantation", replacement.pk)]["os_days"] is None
    assert table[code("implantation", replacement.pk)]["patient"] == table[code("implantation", first.pk)]["patient"]
