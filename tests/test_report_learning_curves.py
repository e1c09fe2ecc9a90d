"""The report's learning curves: a fixed control limit, risk from other surgeons, deaths left out."""

import datetime

from reports import rendering
from reports.cohort import CohortRow
from reports.statistics import fixed_control_limit

VOCABULARY = [
    {"code": "catheter_occlusion", "name": "Occlusion", "category": "technical", "catheter_related": True},
    {"code": "biliary_sclerosis", "name": "Biliary sclerosis", "category": "toxicity", "catheter_related": False},
]
START = datetime.date(2022, 1, 1)
CUT = datetime.date(2025, 7, 1)


def test_the_control_limit_is_the_method_versions_seeded_simulation():
    limit = fixed_control_limit(
        rendering.CUSUM_FALSE_ALARM,
        rendering.CUSUM_HORIZON,
        rendering.CUSUM_ODDS_RATIO,
        baseline_risk=rendering.CUSUM_REFERENCE_RISK,
    )
    assert limit["h"] == rendering.CUSUM_CONTROL_LIMIT
    assert abs(limit["false_signal_probability"] - 0.05) < 0.005


def _row(i, surgeon, sequence, *, complication=None, died=None):
    implanted = START + datetime.timedelta(days=3 * i)
    return CohortRow(
        id=i + 1,
        patient_id=i + 1,
        centre_id=1 if surgeon == "HOME" else 2,
        centre_code="A" if surgeon == "HOME" else "B",
        indication="adjuvant",
        sex="female",
        surgeon_id=1 if surgeon == "HOME" else 2,
        surgeon_code=surgeon,
        implanted_on=implanted,
        surgeon_sequence=sequence,
        last_contact_on=implanted + datetime.timedelta(days=400),
        died_on=implanted + datetime.timedelta(days=died) if died is not None else None,
        complications={"catheter_occlusion": implanted + datetime.timedelta(days=complication)}
        if complication is not None
        else {},
        follow_up_count=1,
    )


def test_cusum_uses_other_surgeons_risk_leaves_out_early_deaths_and_dates_its_signals():
    # An experienced reference surgeon: 200 cases, 10% technical complications.
    rows = [_row(i, "REF", 100 + i, complication=30 if i % 10 == 0 else None) for i in range(200)]
    # The charted surgeon: 30 cases, every other one complicated, and two early deaths without a complication.
    home = [_row(300 + i, "HOME", 1 + i, complication=20 if i % 2 == 0 else None) for i in range(30)]
    home[1] = _row(301, "HOME", 2, died=40)
    home[3] = _row(303, "HOME", 4, died=50)
    rows += home
    rows = rendering._registry.rows_for(rows)  # a fresh registry for the per-run memo
    cusum = rendering._cusum(rows, home, VOCABULARY, CUT, datetime.date(2025, 6, 1))
    [surgeon] = cusum["surgeons"]
    assert surgeon["risk_source"] == "experienced surgeons"  # the reference surgeon's 200 cases
    assert surgeon["n_cases"] == 28  # the two deaths within 90 days without a complication are left out
    assert surgeon["events"] == 15
    assert surgeon["expected"] is not None and 2.0 < surgeon["expected"] < 4.0  # about 10% of 28
    assert surgeon["h"] == rendering.CUSUM_CONTROL_LIMIT
    assert surgeon["signals"], "15 of 28 against 10% must signal"
    assert all(not s["new"] for s in surgeon["signals"])  # all windows closed long before the period
    assert surgeon["points"][-1]["vlad"] < 0  # more observed than expected
