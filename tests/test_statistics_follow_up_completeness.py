"""Known answers for Clark's C, the completeness of follow-up index.

Clark TG, Altman DG, De Stavola BL. Quantification of the completeness of
follow-up. *Lancet* 2002;359:1309–1310:  C = Σ observed / Σ potential follow-up,
observed = entry → last known alive or death, potential = entry → death (if known
by the end of the study) or → end of the study.  Every expected figure below is
computed by hand in the comments; days are counted from ``START`` (``d(n)`` is
day n), and the data cut is day 100 unless stated.
"""

import dataclasses
import datetime as dt
from operator import itemgetter

import pytest

from reports.statistics.completeness import FollowUpCompleteness, clark_c, clark_c_by

START = dt.date(2024, 1, 1)


def d(n: int) -> dt.date:
    return START + dt.timedelta(days=n)


CUT = d(100)


def test_all_deaths_gives_one():
    # Deaths: observed = potential.  (30 − 0) + (60 − 10) = 80 / 80.
    result = clark_c([(d(0), d(30), True), (d(10), d(60), True)], CUT)
    assert result == FollowUpCompleteness(c=1.0, observed_days=80, potential_days=80, patients=2)


def test_everyone_seen_at_the_cut_gives_one():
    # (100 − 0) + (100 − 40) = 160 observed = 160 potential.
    result = clark_c([(d(0), d(100), False), (d(40), d(100), False)], CUT)
    assert result == FollowUpCompleteness(c=1.0, observed_days=160, potential_days=160, patients=2)


def test_one_patient_lost_half_way():
    # Alone: observed 50 − 0 = 50, potential 100 − 0 = 100 → 0.5.
    assert clark_c([(d(0), d(50), False)], CUT).c == 0.5
    # With a patient seen at the cut: (100 + 50) / (100 + 100) = 150 / 200 = 0.75.
    result = clark_c([(d(0), d(100), False), (d(0), d(50), False)], CUT)
    assert result == FollowUpCompleteness(c=0.75, observed_days=150, potential_days=200, patients=2)


def test_mixed_death_loss_and_complete():
    # A died day 40:             observed 40, potential 40
    # B lost day 25:             observed 25, potential 100
    # C entered day 50, seen 100: observed 50, potential 50
    # C = (40 + 25 + 50) / (40 + 100 + 50) = 115 / 190.
    rows = [(d(0), d(40), True), (d(0), d(25), False), (d(50), d(100), False)]
    result = clark_c(rows, CUT)
    assert (result.observed_days, result.potential_days, result.patients) == (115, 190, 3)
    assert result.c == pytest.approx(115 / 190, rel=1e-15)


def test_real_calendar_dates():
    # Entry 2024-01-01, last seen 2024-07-01: 31+29+31+30+31+30 = 182 days (2024 is a leap year).
    # Cut 2024-12-31: 366 − 1 = 365 days.  C = 182 / 365.
    result = clark_c([(dt.date(2024, 1, 1), dt.date(2024, 7, 1), False)], dt.date(2024, 12, 31))
    assert (result.observed_days, result.potential_days) == (182, 365)
    assert result.c == pytest.approx(182 / 365, rel=1e-15)


def test_last_contact_after_the_cut_is_truncated():
    # Seen day 150 → truncated to the cut: observed 100, potential 100.
    assert clark_c([(d(0), d(150), False)], CUT) == FollowUpCompleteness(1.0, 100, 100, 1)
    # With one lost half-way: (100 + 50) / (100 + 100) = 0.75 (not (150 + 50) / 200 = 1.0).
    assert clark_c([(d(0), d(150), False), (d(0), d(50), False)], CUT).c == 0.75


def test_death_after_the_cut_counts_as_alive_at_the_cut():
    # Death day 130 is not known by the end of the study: alive at the cut, 100 / 100.
    assert clark_c([(d(0), d(130), True)], CUT) == FollowUpCompleteness(1.0, 100, 100, 1)
    # Same with one lost half-way: (100 + 50) / 200 = 0.75.
    assert clark_c([(d(0), d(130), True), (d(0), d(50), False)], CUT).c == 0.75


def test_death_on_the_cut_is_a_death():
    # Entry day 20, died day 100 (= cut): observed = potential = 80.
    assert clark_c([(d(20), d(100), True)], CUT) == FollowUpCompleteness(1.0, 80, 80, 1)


def test_entry_after_the_cut_is_excluded():
    # Day-120 entrant dropped; remaining: observed 50, potential 100 → 0.5, 1 patient.
    result = clark_c([(d(120), d(130), False), (d(0), d(50), False)], CUT)
    assert result == FollowUpCompleteness(c=0.5, observed_days=50, potential_days=100, patients=1)
    # Only late entrants: nobody included, C undefined.
    assert clark_c([(d(120), d(130), True)], CUT) == FollowUpCompleteness(None, 0, 0, 0)


def test_entry_on_the_cut_is_included_with_zero_time():
    # 0 / 0 → None, but the patient is counted.
    assert clark_c([(CUT, CUT, False)], CUT) == FollowUpCompleteness(None, 0, 0, 1)
    # Adds nothing to C otherwise: (0 + 50) / (0 + 100) = 0.5, 2 patients.
    assert clark_c([(CUT, CUT, False), (d(0), d(50), False)], CUT) == FollowUpCompleteness(0.5, 50, 100, 2)


def test_empty_gives_none():
    assert clark_c([], CUT) == FollowUpCompleteness(c=None, observed_days=0, potential_days=0, patients=0)
    assert clark_c_by([], CUT, key=itemgetter(3)) == {}


def test_accepts_a_generator_and_datetimes():
    # Datetimes reduce to dates: observed 50, potential 100.
    rows = ((dt.datetime(2024, 1, 1, 23, 59), dt.datetime.combine(d(50), dt.time(8)), False) for _ in range(2))
    assert clark_c(rows, dt.datetime.combine(CUT, dt.time(0))) == FollowUpCompleteness(0.5, 100, 200, 2)


def test_grouping_by_centre():
    rows = [
        # Centre "A": died day 40 (40/40) + lost day 25 (25/100) → 65 / 140.
        (d(0), d(40), True, "A"),
        (d(0), d(25), False, "A"),
        # Centre "B": entered day 50 seen at cut (50/50) + seen day 150, truncated (80/80) → 130 / 130 = 1.
        (d(50), d(100), False, "B"),
        (d(20), d(150), False, "B"),
        # Centre "C": only a late entrant → left out.
        (d(110), d(120), False, "C"),
    ]
    by_centre = clark_c_by(rows, CUT, key=itemgetter(3))
    assert list(by_centre) == ["A", "B"]
    assert by_centre["A"] == FollowUpCompleteness(c=65 / 140, observed_days=65, potential_days=140, patients=2)
    assert by_centre["B"] == FollowUpCompleteness(c=1.0, observed_days=130, potential_days=130, patients=2)
    # Group totals add up to the overall index: (65 + 130) / (140 + 130) = 195 / 270.
    overall = clark_c([r[:3] for r in rows], CUT)
    assert overall == FollowUpCompleteness(c=195 / 270, observed_days=195, potential_days=270, patients=4)


def test_grouping_with_custom_follow_up_extractor():
    records = [
        {"centre": 1, "entry": d(0), "last": d(50), "died": False},  # 50 / 100
        {"centre": 1, "entry": d(0), "last": d(100), "died": False},  # 100 / 100
        {"centre": 2, "entry": d(60), "last": d(70), "died": True},  # 10 / 10
    ]
    by_centre = clark_c_by(
        records,
        CUT,
        key=itemgetter("centre"),
        follow_up=itemgetter("entry", "last", "died"),
    )
    # Centre 1: 150 / 200 = 0.75; centre 2: 1.
    assert by_centre == {
        1: FollowUpCompleteness(0.75, 150, 200, 2),
        2: FollowUpCompleteness(1.0, 10, 10, 1),
    }


def test_invalid_input_raises():
    with pytest.raises(ValueError, match="before entry"):
        clark_c([(d(10), d(5), False)], CUT)
    with pytest.raises(ValueError, match="bool"):
        clark_c([(d(0), d(5), 1)], CUT)
    with pytest.raises(ValueError, match="date"):
        clark_c([(d(0), None, False)], CUT)


def test_result_is_frozen():
    result = clark_c([(d(0), d(50), False)], CUT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.c = 1.0
