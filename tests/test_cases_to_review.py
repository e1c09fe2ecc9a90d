"""The "Cases to review" lists (reports.selectors): by pseudonym, one centre's own, as of the data cut."""

import datetime

import pytest
from django.utils import timezone

from registry.models import ComplicationType, Implantation
from registry.vocabulary import DoseChange, NeverTreatedReason, VitalStatus
from reports import selectors
from sites.models import Centre

from . import factories

PERIOD_START, PERIOD_END = datetime.date(2024, 6, 1), datetime.date(2024, 6, 30)
CUT = timezone.make_aware(datetime.datetime(2024, 7, 1))  # the default cut of June 2024: midnight, 1 July
CUT_DATE = datetime.date(2024, 7, 1)


def at(day):
    """Entered at noon (local time) on ``day``."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))


def implant(centre, implanted_on, pseudonym, entered=None, **fields):
    return factories.ImplantationFactory(
        patient__centre=centre,
        patient__pseudonym=pseudonym,
        implanted_on=implanted_on,
        created_at=entered or at(implanted_on),
        **fields,
    )


def complication(implantation, onset_on, entered, **fields):
    return factories.ComplicationFactory(implantation=implantation, onset_on=onset_on, created_at=entered, **fields)


def dose(implantation, given_on, entered=None, **fields):
    return factories.TreatmentFactory(
        implantation=implantation, given_on=given_on, created_at=entered or at(given_on), **fields
    )


def follow_up(implantation, contact_on, entered=None, **fields):
    return factories.FollowUpFactory(
        implantation=implantation, contact_on=contact_on, created_at=entered or at(contact_on), **fields
    )


def pseudonyms(cases):
    return [case["pseudonym"] for case in cases]


@pytest.fixture
def centres(db):
    return factories.CentreFactory(code="OWN"), factories.CentreFactory(code="OTHER")


# --------------------------------------------------------------------------- new complications


def new_complications(scope):
    return selectors.new_complications(scope, period_start=PERIOD_START, period_end=PERIOD_END, data_cut=CUT)


def test_new_complications_are_those_with_onset_or_entry_in_the_period(centres):
    own, other = centres
    a = implant(own, datetime.date(2024, 3, 1), "PT-A")
    b = implant(own, datetime.date(2024, 4, 1), "PT-B")
    cd_type = ComplicationType.objects.get(code="pocket_infection")  # graded by Clavien-Dindo
    both = complication(a, datetime.date(2024, 6, 10), at(datetime.date(2024, 6, 12)), grade=3)
    entered = complication(b, datetime.date(2024, 4, 20), at(datetime.date(2024, 6, 5)), grade=1)
    onset = complication(
        a, datetime.date(2024, 6, 30), at(datetime.date(2024, 6, 30)), type=cd_type, grade=2, clavien_dindo="IIIa"
    )
    complication(a, datetime.date(2024, 5, 1), at(datetime.date(2024, 5, 2)))  # neither: before the period
    complication(b, datetime.date(2024, 6, 20), CUT + datetime.timedelta(minutes=1))  # entered after the cut
    complication(implant(other, datetime.date(2024, 3, 1), "PT-OTHER"), datetime.date(2024, 6, 10), at(PERIOD_START))

    cases = new_complications(own)

    assert [(c["complication_id"], c["pseudonym"]) for c in cases] == [
        (entered.pk, "PT-B"),
        (both.pk, "PT-A"),
        (onset.pk, "PT-A"),
    ]
    first, second, third = cases
    assert first == {
        "implantation_id": b.pk,
        "centre_code": "OWN",
        "pseudonym": "PT-B",
        "implanted_on": datetime.date(2024, 4, 1),
        "complication_id": entered.pk,
        "type_code": "biliary_sclerosis",
        "type_name": "Biliary sclerosis",
        "grade": 1,
        "clavien_dindo": "",
        "severe": False,
        "onset_on": datetime.date(2024, 4, 20),
        "entered_on": datetime.date(2024, 6, 5),
        "onset_in_period": False,
        "entered_in_period": True,
        "reason": "Biliary sclerosis (grade 1), entered in the period",
    }
    assert (second["severe"], second["onset_in_period"], second["entered_in_period"]) == (True, True, True)
    assert second["reason"] == "Biliary sclerosis (grade 3, severe), onset and entered in the period"
    # Clavien-Dindo decides where it is recorded: grade 2 but IIIa is severe.
    assert (third["severe"], third["clavien_dindo"], third["type_code"]) == (True, "IIIa", "pocket_infection")
    assert third["reason"] == "Pump pocket infection (Clavien-Dindo IIIa, severe), onset and entered in the period"


def test_a_later_cut_brings_in_an_onset_in_the_period_entered_after_it(centres):
    own, _ = centres
    a = implant(own, datetime.date(2024, 3, 1), "PT-A")
    late = complication(a, datetime.date(2024, 6, 30), at(datetime.date(2024, 7, 2)))
    assert new_complications(own) == []
    later_cut = timezone.make_aware(datetime.datetime(2024, 7, 5, 9))
    (case,) = selectors.new_complications(own, period_start=PERIOD_START, period_end=PERIOD_END, data_cut=later_cut)
    assert (case["complication_id"], case["onset_in_period"], case["entered_in_period"]) == (late.pk, True, False)
    assert case["reason"] == "Biliary sclerosis (grade 2), onset in the period"


def test_entry_in_the_period_is_counted_in_local_days(centres):
    own, _ = centres
    a = implant(own, datetime.date(2024, 3, 1), "PT-A")
    # 23:30 on 31 May London time is 22:30 UTC: still May, not in June.
    late_may = timezone.make_aware(datetime.datetime(2024, 5, 31, 23, 30))
    early_june = timezone.make_aware(datetime.datetime(2024, 6, 1, 0, 30))
    complication(a, datetime.date(2024, 5, 1), late_may)
    kept = complication(a, datetime.date(2024, 5, 2), early_june)
    assert [c["complication_id"] for c in new_complications(own)] == [kept.pk]


# --------------------------------------------------------------------------- untreated without a reason


def untreated(scope, **kwargs):
    return selectors.untreated_without_reason(scope, data_cut=CUT, **kwargs)


def test_pumps_28_days_old_with_no_dose_and_no_reason(centres):
    own, other = centres
    implant(own, CUT_DATE - datetime.timedelta(days=28), "PT-28")  # just old enough
    implant(own, CUT_DATE - datetime.timedelta(days=27), "PT-27")  # too young
    dose(implant(own, datetime.date(2024, 4, 1), "PT-DOSED"), datetime.date(2024, 4, 18))
    held = implant(own, datetime.date(2024, 4, 2), "PT-HELD")
    dose(held, datetime.date(2024, 4, 19), dose_change=DoseChange.HELD, dose_change_reason="Bilirubin raised")
    implant(own, datetime.date(2024, 4, 3), "PT-REASON", never_treated_reason=NeverTreatedReason.PROGRESSION)
    late_dose = implant(own, datetime.date(2024, 4, 4), "PT-LATE-DOSE")
    dose(late_dose, datetime.date(2024, 6, 29), entered=CUT + datetime.timedelta(hours=1))
    implant(own, datetime.date(2024, 4, 5), "PT-LATE-ENTRY", entered=CUT + datetime.timedelta(hours=1))
    implant(other, datetime.date(2024, 4, 1), "PT-OTHER")

    cases = untreated(own)

    # A held cycle is no dose; a dose entered after the cut was not there at the cut.
    assert pseudonyms(cases) == ["PT-HELD", "PT-LATE-DOSE", "PT-28"]
    last = cases[-1]
    assert last["days_since_implantation"] == 28 and last["implanted_on"] == datetime.date(2024, 6, 3)
    assert last["reason"] == "No HAI dose and no never-treated reason 28 days after implantation"
    assert set(last) == {
        "implantation_id",
        "centre_code",
        "pseudonym",
        "implanted_on",
        "days_since_implantation",
        "reason",
    }


# --------------------------------------------------------------------------- overdue follow-ups


def overdue(scope):
    return selectors.overdue_follow_ups(scope, data_cut=CUT)


def test_overdue_follow_ups(centres):
    own, other = centres
    six_months_before = datetime.date(2024, 1, 1)  # 6 calendar months before 1 July
    follow_up(implant(own, datetime.date(2023, 6, 1), "PT-STALE"), datetime.date(2023, 12, 31))
    follow_up(implant(own, datetime.date(2023, 6, 2), "PT-RECENT"), six_months_before)  # not *more than* 6 months
    implant(own, datetime.date(2023, 12, 31), "PT-NONE-OLD")
    implant(own, six_months_before, "PT-NONE-YOUNG")
    # Dead: a death recorded on another of the patient's implantations ends follow-up of all of them.
    first = implant(own, datetime.date(2023, 3, 1), "PT-DEAD")
    second = factories.ImplantationFactory(
        patient=first.patient, implanted_on=datetime.date(2023, 9, 1), created_at=at(datetime.date(2023, 9, 1))
    )
    follow_up(second, datetime.date(2023, 10, 1), vital_status=VitalStatus.DEAD, died_on=datetime.date(2023, 10, 1))
    # A recent contact entered after the cut does not count; a death entered after the cut neither.
    late = implant(own, datetime.date(2023, 5, 1), "PT-LATE-CONTACT")
    follow_up(late, datetime.date(2023, 11, 1))
    follow_up(late, datetime.date(2024, 6, 30), entered=CUT + datetime.timedelta(minutes=1))
    implant(other, datetime.date(2023, 1, 1), "PT-OTHER")

    cases = overdue(own)

    assert pseudonyms(cases) == ["PT-NONE-OLD", "PT-LATE-CONTACT", "PT-STALE"]
    none_old, late_contact, stale = cases
    assert none_old["last_contact_on"] is None and none_old["overdue_since"] == six_months_before
    assert none_old["reason"] == "No follow-up recorded, implanted more than 6 months before the cut"
    assert late_contact["last_contact_on"] == datetime.date(2023, 11, 1)
    assert stale["reason"] == "Last contact on 2023-12-31, more than 6 months before the cut"


def test_a_death_entered_after_the_cut_is_not_known_at_the_cut(centres):
    own, _ = centres
    implantation = implant(own, datetime.date(2023, 1, 1), "PT-A")
    follow_up(
        implantation,
        datetime.date(2024, 6, 1),
        entered=CUT + datetime.timedelta(days=1),
        vital_status=VitalStatus.DEAD,
        died_on=datetime.date(2024, 6, 1),
    )
    assert pseudonyms(overdue(own)) == ["PT-A"]


# --------------------------------------------------------------------------- cases behind an alarm


def test_cases_behind_an_alarm_by_pseudonym_with_the_outcome_date(centres):
    own, other = centres
    a = implant(own, datetime.date(2024, 1, 10), "PT-A")
    b = implant(own, datetime.date(2024, 2, 10), "PT-B")
    stranger = implant(other, datetime.date(2024, 1, 10), "PT-OTHER")
    label = "Technical complication within 90 days"

    cases = selectors.cases_behind(
        own, {b.pk: "2024-02-20", a.pk: datetime.date(2024, 3, 1), stranger.pk: "2024-01-20"}, label
    )

    assert cases == [
        {
            "implantation_id": b.pk,
            "centre_code": "OWN",
            "pseudonym": "PT-B",
            "implanted_on": datetime.date(2024, 2, 10),
            "outcome": label,
            "outcome_on": datetime.date(2024, 2, 20),
            "reason": f"{label} on 2024-02-20",
        },
        {
            "implantation_id": a.pk,
            "centre_code": "OWN",
            "pseudonym": "PT-A",
            "implanted_on": datetime.date(2024, 1, 10),
            "outcome": label,
            "outcome_on": datetime.date(2024, 3, 1),
            "reason": f"{label} on 2024-03-01",
        },
    ]
    # Plain ids: no outcome date; another centre's id is never shown.
    plain = selectors.cases_behind(own, [a.pk, stranger.pk], label)
    assert [(c["pseudonym"], c["outcome_on"], c["reason"]) for c in plain] == [("PT-A", None, label)]
    assert selectors.cases_behind(own, [], label) == []


# --------------------------------------------------------------------------- scope and the report's section


def tables(sections):
    return {section["key"]: section for section in sections}


def test_another_centres_patients_never_appear_in_any_list(centres):
    own, other = centres
    for centre, prefix in ((own, "OWN"), (other, "OTHER")):
        stale = implant(centre, datetime.date(2023, 1, 1), f"{prefix}-STALE")  # no follow-up, no dose
        complication(stale, datetime.date(2024, 6, 2), at(datetime.date(2024, 6, 2)))
    everyone = list(Implantation.objects.values_list("pk", flat=True))
    sections = selectors.cases_to_review(
        own,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        data_cut=CUT,
        alarms=[{"measure": "technical_90", "label": "Technical", "implantations": everyone}],
    )
    keys = ["new_complications", "untreated_without_reason", "overdue_follow_ups", "alarm:technical_90"]
    assert [s["key"] for s in sections] == keys
    for section in sections:
        assert pseudonyms(section["cases"]) == ["OWN-STALE"], section["key"]
        assert [row[0] for row in section["rows"]] == ["OWN-STALE"], section["key"]
    # The other centre's own report lists its patient only.
    theirs = selectors.cases_to_review(other, period_start=PERIOD_START, period_end=PERIOD_END, data_cut=CUT)
    for section in theirs:
        assert pseudonyms(section["cases"]) == ["OTHER-STALE"], section["key"]
        assert "OWN-STALE" not in str(section)


def test_the_report_section_is_plain_json_tables_as_printed(centres):
    import json

    own, _ = centres
    stale = implant(own, datetime.date(2023, 1, 1), "PT-A")
    complication(stale, datetime.date(2024, 6, 2), at(datetime.date(2024, 6, 2)), grade=3)
    sections = selectors.cases_to_review(
        own,
        period_start=PERIOD_START,
        period_end=PERIOD_END,
        data_cut=CUT,
        alarms=[{"measure": "any", "label": "Any severe complication", "implantations": {stale.pk: "2024-06-02"}}],
    )
    assert json.loads(json.dumps(sections)) == sections
    by_key = tables(sections)
    new = by_key["new_complications"]
    assert new["title"] == "New complications: onset or entered in 1 June 2024 – 30 June 2024"
    assert new["columns"] == ["Pseudonym", "Implanted", "Complication", "Grade", "Severe", "Onset", "Entered"]
    assert new["rows"] == [
        ["PT-A", "1 January 2023", "Biliary sclerosis", "Grade 3", "yes", "2 June 2024", "2 June 2024"]
    ]
    assert new["cases"][0]["onset_on"] == "2024-06-02" and new["cases"][0]["severe"] is True
    untreated_table = by_key["untreated_without_reason"]
    assert untreated_table["rows"] == [["PT-A", "1 January 2023", 547]]
    assert "at least 28 days old" in untreated_table["title"]
    overdue_table = by_key["overdue_follow_ups"]
    assert overdue_table["rows"] == [["PT-A", "1 January 2023", "", "No follow-up recorded"]]
    assert "no contact since 1 January 2024 (6 months before the cut)" in overdue_table["title"]
    alarm = by_key["alarm:any"]
    assert alarm["title"] == "The cases behind the signal: Any severe complication"
    assert alarm["rows"] == [["PT-A", "1 January 2023", "2 June 2024"]]
    # Every table is there when empty, so the reader sees "None" rather than a missing list.
    empty = selectors.cases_to_review(centres[1], period_start=PERIOD_START, period_end=PERIOD_END, data_cut=CUT)
    assert [(s["key"], s["rows"], s["cases"]) for s in empty] == [
        ("new_complications", [], []),
        ("untreated_without_reason", [], []),
        ("overdue_follow_ups", [], []),
    ]


def test_a_centre_scoped_queryset_is_a_scope(centres):
    own, other = centres
    implant(own, datetime.date(2023, 1, 1), "OWN-STALE")
    implant(other, datetime.date(2023, 1, 1), "OTHER-STALE")
    lead = factories.user_with_role("centre_lead", own)
    coordinator = factories.user_with_role("coordinator")
    assert pseudonyms(overdue(Implantation.objects.visible_to(lead))) == ["OWN-STALE"]
    assert pseudonyms(overdue(Centre.objects.visible_to(lead))) == ["OWN-STALE"]
    everyone = overdue(Implantation.objects.visible_to(coordinator))
    assert sorted((c["centre_code"], c["pseudonym"]) for c in everyone) == [
        ("OTHER", "OTHER-STALE"),
        ("OWN", "OWN-STALE"),
    ]
    with pytest.raises(TypeError, match="scope"):
        overdue(own.pk)


def test_each_list_is_one_query_whatever_the_centre_size(centres, django_assert_num_queries):
    own, _ = centres
    for n in range(5):
        stale = implant(own, datetime.date(2023, 1, 1 + n), f"PT-{n}")
        complication(stale, datetime.date(2024, 6, 2), at(datetime.date(2024, 6, 2)))
    with django_assert_num_queries(1):
        assert len(new_complications(own)) == 5
    with django_assert_num_queries(1):
        assert len(untreated(own)) == 5
    with django_assert_num_queries(1):
        assert len(overdue(own)) == 5
