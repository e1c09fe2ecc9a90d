"""The outcome definitions (reports.outcomes): events, denominators, time origins, competing events.

Pure tests on cohort rows; the estimators themselves have their own known-answer tests
(tests/test_statistics_cumulative_incidence.py, tests/test_statistics_survival.py).
"""

import datetime
from fractions import Fraction

import pytest

from registry.vocabulary import (
    COMPLICATION_TYPES,
    PUMP_FAILURE_END_REASONS,
    ComplicationCategory,
    PumpEndReason,
    is_severe,
)
from reports import benchmarks, outcomes
from reports.cohort import CohortRow
from reports.outcomes import COMPETING, EVENT

DAY0 = datetime.date(2024, 1, 1)
VOCABULARY = [
    {"code": c, "name": n, "category": cat, "catheter_related": cr} for c, n, _, cat, cr in COMPLICATION_TYPES
]
EVERYONE = benchmarks.Grouping()


def day(n):
    return DAY0 + datetime.timedelta(days=n)


_ids = iter(range(1, 10**6))


def row(**kwargs):
    """An implantation on DAY0 (unless ``implanted`` says otherwise), followed for ``followed`` days."""
    implanted = day(kwargs.pop("implanted", 0))
    followed = kwargs.pop("followed", 400)
    values = {
        "id": next(_ids),
        "patient_id": kwargs.pop("patient_id", None),
        "centre_id": 1,
        "centre_code": "A",
        "indication": "adjuvant",
        "sex": "female",
        "surgeon_id": 1,
        "surgeon_code": "S1",
        "implanted_on": implanted,
        "last_contact_on": implanted + datetime.timedelta(days=followed) if followed is not None else None,
        "follow_up_count": 1 if followed is not None else 0,
    }
    values["patient_id"] = values["patient_id"] or values["id"]
    values["patient_first_implanted_on"] = implanted
    values.update(kwargs)
    return CohortRow(**values)


def technical():
    return outcomes.event_outcome(ComplicationCategory.TECHNICAL, VOCABULARY)


def incidence(rows, outcome, at_days):
    [group] = benchmarks.cumulative_incidence(rows, outcome, at_days, EVERYONE)
    return group


# --- vocabulary -------------------------------------------------------------------------


def test_every_complication_type_has_a_category_and_catheter_types_are_technical():
    assert {t[3] for t in COMPLICATION_TYPES} <= set(ComplicationCategory.values)
    for code, _, _, category, catheter in COMPLICATION_TYPES:
        if catheter:
            assert category == ComplicationCategory.TECHNICAL, code
    by_code = {t[0]: t[3] for t in COMPLICATION_TYPES}
    assert {c for c, cat in by_code.items() if cat == "toxicity"} == {
        "biliary_sclerosis",
        "chemical_hepatitis",
        "gastroduodenal_ulcer",
    }
    assert by_code["pocket_infection"] == by_code["extrahepatic_perfusion"] == "technical"


def test_each_pump_end_reason_is_either_a_failure_or_a_competing_end():
    failure = {r for r in PumpEndReason if r in PUMP_FAILURE_END_REASONS}
    assert failure == {PumpEndReason.TECHNICAL_COMPLICATION, PumpEndReason.PUMP_FAILURE}
    for reason in PumpEndReason:
        assert reason.label.startswith("Pump failure:") == (reason in failure), reason
        assert reason.label.startswith("End of use:") == (reason not in failure), reason
    assert {"treatment_completed", "resection", "progression", "toxicity", "patient_choice", "other"} == {
        r.value for r in PumpEndReason if r not in failure
    }


@pytest.mark.parametrize(
    "grade, clavien_dindo, severe",
    [
        (2, "", False),
        (3, "", True),
        (5, "", True),
        (3, "II", False),  # Clavien-Dindo, where recorded, decides
        (2, "IIIa", True),
        (1, "I", False),
        (4, "IVb", True),
        (5, "V", True),
    ],
)
def test_severe_is_clavien_dindo_3a_or_above_else_grade_3_or_above(grade, clavien_dindo, severe):
    assert is_severe(grade, clavien_dindo) is severe


# --- surgeon experience ---------------------------------------------------------------


@pytest.mark.parametrize("sequence, experienced", [(1, False), (25, False), (26, True), (40, True)])
def test_experienced_means_25_pumps_placed_before(sequence, experienced):
    r = row(surgeon_sequence=sequence)
    assert r.pumps_before == sequence - 1
    assert outcomes.experienced(r) is experienced
    grouping = benchmarks.Grouping("surgeon_experience")
    assert grouping.key(r) == ("25 or more before" if experienced else "fewer than 25 before")


# --- technical complications: ITT from implantation, death and end of use compete -------------


def test_technical_complications_count_every_implantation_treated_or_not():
    rows = [
        row(complications={"pocket_infection": day(10)}),  # never treated
        row(first_dose_on=day(15)),
        row(first_dose_on=day(15), complications={"catheter_occlusion": day(40)}),
        row(),
    ]
    group = incidence(rows, technical(), 90)
    assert group["implantations"] == 4
    assert group["events"] == 2
    assert group["estimate"] == pytest.approx(0.5)


def test_a_complication_on_the_day_of_death_counts_as_the_complication():
    rows = [row(complications={"pocket_infection": day(30)}, died_on=day(30)), row(died_on=day(20)), row(), row()]
    subjects = technical().subjects(rows)
    assert [s.status for s in subjects] == [EVENT, COMPETING, 0, 0]
    group = incidence(rows, technical(), 90)
    assert (group["events"], group["competing_events"]) == (1, 1)
    # Aalen-Johansen by hand: death at day 20 (1 of 4), then the complication at day 30 (1 of 3 at risk).
    assert group["estimate"] == pytest.approx(float(Fraction(3, 4) * Fraction(1, 3)))


def test_a_complication_after_a_competing_end_of_use_is_not_counted():
    r = row(pump_use_ended_on=day(50), complications={"pocket_infection": day(60)})
    [subject] = technical().subjects([r])
    assert (subject.status, subject.exit) == (COMPETING, 50)


def test_pump_failure_from_another_technical_complication_competes_with_a_later_one():
    r = row(pump_failure_on=day(20), complications={"catheter_occlusion": day(20), "pocket_infection": day(25)})
    infection = outcomes.event_outcome("pocket_infection", VOCABULARY)
    [subject] = infection.subjects([r])
    assert (subject.status, subject.exit) == (COMPETING, 20)


def test_follow_up_shorter_than_the_window_is_censored_not_counted_as_complication_free():
    # A new centre: four pumps followed 45 days, one with a complication at day 40; four followed
    # the whole year with two complications by day 60. The crude share over all is 3/8; the truth is more.
    short = [row(followed=45, complications={"pocket_infection": day(40)})] + [row(followed=45) for _ in range(3)]
    long = [row(complications={"pocket_infection": day(50)}), row(complications={"pocket_seroma": day(60)})] + [
        row() for _ in range(2)
    ]
    group = incidence(short + long, technical(), 90)
    # Day 40: 1 of 8; day 45: three censored; day 50: 1 of 4; day 60: 1 of 3.
    expected = 1 - Fraction(7, 8) * Fraction(3, 4) * Fraction(2, 3)
    assert group["estimate"] == pytest.approx(float(expected))
    assert group["estimate"] > 3 / 8


def test_no_estimate_when_nobody_is_followed_to_the_window():
    group = incidence([row(followed=30), row(followed=60)], technical(), 90)
    assert group["estimate"] is None
    assert group["implantations"] == 2


def test_a_complication_on_the_day_of_implantation_counts():
    group = incidence([row(complications={"extrahepatic_perfusion": day(0)}), row()], technical(), 30)
    assert group["events"] == 1
    assert group["estimate"] == pytest.approx(0.5)


# --- toxicity: treated implantations, from the first dose -----------------------------------


def test_toxicity_is_over_treated_implantations_from_the_first_dose():
    toxicity = outcomes.event_outcome(ComplicationCategory.TOXICITY, VOCABULARY)
    assert toxicity.from_first_dose and toxicity.denominator.startswith("implantations that delivered")
    rows = [
        row(),  # never treated: not in the denominator
        row(complications={"biliary_sclerosis": day(200)}),  # never treated either
        row(first_dose_on=day(20), complications={"biliary_sclerosis": day(400)}),  # day 380 from the first dose
        row(first_dose_on=day(20), followed=500),
    ]
    [subject_a, subject_b] = toxicity.subjects(rows)
    assert (subject_a.exit, subject_a.status) == (380, EVENT)
    group = incidence(rows, toxicity, 365)
    assert group["implantations"] == 2
    assert group["events"] == 0  # 380 days after the first dose is outside 1 year
    assert incidence(rows, toxicity, 730)["events"] == 1


# --- pump failure ---------------------------------------------------------------------


def test_pump_failure_counts_technical_failures_with_every_other_end_and_death_competing():
    rows = [
        row(pump_failure_on=day(100)),
        row(pump_use_ended_on=day(60)),  # completed treatment: competing, not censored
        row(died_on=day(50)),
        row(),
    ]
    statuses = [s.status for s in outcomes.PUMP_FAILURE_OUTCOME.subjects(rows)]
    assert statuses == [EVENT, COMPETING, COMPETING, 0]
    group = incidence(rows, outcomes.PUMP_FAILURE_OUTCOME, 365)
    # Aalen-Johansen: S(99) = 2/4, then 1 failure of 2 at risk: 1/4. Censoring the competing
    # ends (1 − Kaplan-Meier) would say 1/2.
    assert group["estimate"] == pytest.approx(0.25)
    one_minus_km = benchmarks.survival(rows, "pump_failure", EVERYONE)[0]
    assert one_minus_km["table"][-1]["survival"] == pytest.approx(0.75)


# --- delayed entry ----------------------------------------------------------------------


def test_a_retrospective_entry_is_at_risk_only_from_consent():
    late = row(consent_on=day(200), died_on=day(300), followed=300)
    [subject] = outcomes.MORTALITY_90_DAYS.subjects([late])
    assert subject.entry == 199.5 and subject.exit == 300
    # Consent after the death: never at risk in the registry, left out.
    assert outcomes.MORTALITY_90_DAYS.subjects([row(consent_on=day(200), died_on=day(100), followed=100)]) == []


def test_ninety_day_mortality_is_not_biased_down_by_retrospective_entries():
    # Four patients entered at implantation, one dies on day 30; four entered at day 100 (all
    # necessarily alive then). Counting the late entries from day 0 would give 1/8.
    rows = [row(died_on=day(30)), row(), row(), row()] + [row(consent_on=day(100)) for _ in range(4)]
    [group] = benchmarks.mortality(rows, EVERYONE)
    assert group["rate"] == pytest.approx(0.25)


def test_overall_survival_is_per_patient_from_the_first_implantation():
    first = row(patient_id=7, implanted=0, followed=100, died_on=day(500))
    replacement = row(patient_id=7, implanted=100, followed=400, died_on=day(500))
    replacement.patient_first_implanted_on = first.implanted_on
    other = row(patient_id=8, followed=600)
    subjects = outcomes.OVERALL_SURVIVAL.subjects([replacement, first, other])
    assert len(subjects) == 2
    by_patient = {s.row.patient_id: s for s in subjects}
    assert (by_patient[7].exit, by_patient[7].status) == (500, EVENT)
    assert by_patient[7].row is first
    [group] = benchmarks.survival([replacement, first, other], "overall", EVERYONE)
    assert group["n"] == 2 and group["events"] == 1
    # Both implantations still count in an intention-to-treat complication rate.
    assert incidence([first, replacement], technical(), 30)["implantations"] == 2


def test_hepatic_progression_free_survival_ends_at_progression_or_death():
    progressed = row(hepatic_progression_on=day(200), died_on=day(300), followed=300)
    died = row(died_on=day(150), followed=150)
    alive = row(followed=400)
    subjects = outcomes.HEPATIC_PROGRESSION_FREE_SURVIVAL.subjects([progressed, died, alive])
    assert [(s.exit, s.status) for s in subjects] == [(200, EVENT), (150, EVENT), (400, 0)]


# --- severe-only -------------------------------------------------------------------------


def test_any_severe_complication_counts_only_severe_onsets():
    severe = outcomes.event_outcome(outcomes.ANY_COMPLICATION, VOCABULARY, severe_only=True)
    mild = row(complications={"pocket_seroma": day(10)})
    grave = row(
        complications={"hepatic_artery_thrombosis": day(12)},
        severe_complications={"hepatic_artery_thrombosis": day(12)},
    )
    assert [s.status for s in severe.subjects([mild, grave])] == [0, EVENT]


def test_methods_state_source_denominator_and_origin_for_every_definition():
    for definition in outcomes.methods():
        assert definition["source"] and definition["denominator"] and definition["origin"]
    labels = [d["label"] for d in outcomes.methods()]
    assert "Pump failure" in labels and "90-day mortality" in labels and "Overall survival" in labels
