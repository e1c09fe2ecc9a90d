"""Aalen–Johansen cumulative incidence against R ``survival``'s multi-state ``survfit``.

Known answers: ``tests/reference/competing_risks_mgus2.json``, written by
``tests/reference/competing_risks_mgus2.R`` (R 4.2.2, survival 3.5.3; console output
in ``competing_risks_mgus2.Rout``) from ``survival::mgus2`` — progression to a plasma
cell malignancy (PCM) with death as the competing event, the set-up of Therneau's
vignette "Multi-state models and competing risks" — and from small cases also
worked out by hand below.  R is not needed to run these tests.
"""

import csv
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reports.statistics import CumulativeIncidenceResult, aalen_johansen, cumulative_incidence_at, kaplan_meier

REFERENCE = Path(__file__).parent / "reference"
R = json.loads((REFERENCE / "competing_risks_mgus2.json").read_text())
with (REFERENCE / "mgus2.csv").open(newline="") as fh:
    MGUS2 = list(csv.DictReader(fh))
ETIME = [float(r["etime"]) for r in MGUS2]
STATUS = [int(r["status"]) for r in MGUS2]  # 0 censored, 1 PCM, 2 death
ENTRY = [float(r["entry"]) for r in MGUS2]
SWAPPED = [{0: 0, 1: 2, 2: 1}[s] for s in STATUS]  # death as the event of interest

TOL = 1e-9  # R's numbers are stored with 15 significant digits


def assert_table_matches_r(table, ref):
    """Every row: time, numbers at risk / events / censored, estimate, IJ std.err, log CI."""
    assert [r["time"] for r in table] == ref["time"]
    assert [r["at_risk"] for r in table] == ref["n_risk"]
    assert [r["events"] for r in table] == ref["n_event"]
    assert [r["censored"] for r in table] == ref["n_censor"]
    for row, p, se, low, high in zip(table, ref["pstate"], ref["std_err"], ref["lower"], ref["upper"], strict=True):
        assert row["estimate"] == pytest.approx(p, abs=TOL)
        assert row["std_err"] == pytest.approx(se, abs=TOL)
        if low is None:  # R: NA where the estimate is 0
            assert row["estimate"] == 0 and row["ci_low"] is None and row["ci_high"] is None
        else:
            assert row["ci_low"] == pytest.approx(low, abs=TOL)
            assert row["ci_high"] == pytest.approx(high, abs=TOL)


@pytest.mark.parametrize(
    ("reference", "statuses", "entries"),
    [
        (R["aj"]["pcm"], STATUS, None),
        (R["aj"]["death"], SWAPPED, None),
        (R["aj_delayed"]["pcm"], STATUS, ENTRY),
        (R["aj_delayed"]["death"], SWAPPED, ENTRY),
    ],
    ids=["pcm", "death", "pcm-delayed-entry", "death-delayed-entry"],
)
def test_mgus2_matches_r_survfit_multistate(reference, statuses, entries):
    res = aalen_johansen(ETIME, statuses, entries=entries)
    assert_table_matches_r(res.table, reference)
    assert res.n == 1384
    assert (res.events, res.competing_events) == ((115, 860) if statuses is STATUS else (860, 115))


def test_mgus2_summary_times_from_the_rout_file():
    # summary(survfit(Surv(etime, event) ~ 1, data = mgus2), times = c(12, 60, 120, 360)), PCM column.
    res = aalen_johansen(ETIME, STATUS)
    expected = {
        12: (0.009401259345, 0.005472899208, 0.01614933400),
        60: (0.034103712974, 0.025749551974, 0.04516829030),
        120: (0.063722168013, 0.051700906076, 0.07853855966),
        360: (0.134041644326, 0.099867494352, 0.17991001507),
    }
    for day, (p, low, high) in expected.items():
        at = cumulative_incidence_at(res, day)
        assert (at["estimate"], at["ci_low"], at["ci_high"]) == pytest.approx((p, low, high), abs=1e-11)


def test_mgus2_states_add_up_to_one():
    # PCM incidence + death incidence + all-cause Kaplan–Meier = 1 at every time.
    for entries in (None, ENTRY):
        pcm = aalen_johansen(ETIME, STATUS, entries=entries).table
        death = aalen_johansen(ETIME, SWAPPED, entries=entries).table
        km = kaplan_meier(ETIME, [int(s != 0) for s in STATUS], entries=entries).table
        for a, b, s in zip(pcm, death, km, strict=True):
            assert a["estimate"] + b["estimate"] + s["survival"] == pytest.approx(1.0, abs=1e-12)


def test_one_minus_km_is_not_the_cumulative_incidence():
    # (time, status): (1,1) (2,2) (3,1) (4,0) (5,1) (6,2).  By hand:
    #   t=1: n=6  F = 1/6,             S = 5/6
    #   t=2: n=5  competing            S = 2/3
    #   t=3: n=4  F = 1/6 + 2/3·1/4 = 1/3,   S = 1/2
    #   t=5: n=2  F = 1/3 + 1/2·1/2 = 7/12,  S = 1/4
    #   t=6: n=1  competing            S = 0
    # 1 − KM with the competing event censored: 1 − 5/6·3/4·1/2 = 11/16 > 7/12 at t = 5.
    ref = R["small_a"]
    res = aalen_johansen(ref["time"], ref["status"])
    exact = [Fraction(1, 6), Fraction(1, 6), Fraction(1, 3), Fraction(1, 3), Fraction(7, 12), Fraction(7, 12)]
    assert [r["estimate"] for r in res.table] == pytest.approx([float(f) for f in exact], abs=1e-15)
    km = kaplan_meier(ref["time"], [int(s == 1) for s in ref["status"]])
    one_minus_km = [1 - r["survival"] for r in km.table]
    assert one_minus_km == pytest.approx(ref["one_minus_km"], abs=1e-12)
    assert one_minus_km[4] == pytest.approx(float(Fraction(11, 16)))
    assert all(f <= g + 1e-15 for f, g in zip(exact, one_minus_km, strict=True))
    assert one_minus_km[2] > exact[2] and one_minus_km[4] > exact[4]
    assert_table_matches_r(res.table, ref["aj"])
    # Competing incidence 1/6 + 1/4 = 5/12 at t = 6: the two incidences add up to 1 once S = 0.
    other = aalen_johansen(ref["time"], [{0: 0, 1: 2, 2: 1}[s] for s in ref["status"]])
    assert other.table[-1]["estimate"] == pytest.approx(5 / 12)


def test_without_competing_events_it_is_one_minus_km():
    t = [9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161]
    e = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0]
    aj = aalen_johansen(t, e)
    km = kaplan_meier(t, e)
    for a, k in zip(aj.table, km.table, strict=True):
        assert a["estimate"] == pytest.approx(1 - k["survival"], abs=1e-15)
        # IJ and Greenwood standard errors are close but are not the same estimator.
        assert a["std_err"] == pytest.approx(k["std_err"], rel=0.1)


def test_event_and_competing_event_at_the_same_time_share_the_risk_set():
    # t=2: n=5, one event, one competing, one censored: F = 1/5, S = 3/5.
    # t=4: n=2 (the censored one at 2 was at risk at 2 only): F = 1/5 + 3/5·1/2 = 1/2.
    res = aalen_johansen([2, 2, 2, 4, 5], [1, 2, 0, 1, 0])
    rows = [(r["time"], r["at_risk"], r["events"], r["competing_events"], r["censored"]) for r in res.table]
    assert rows == [(2, 5, 1, 1, 1), (4, 2, 1, 0, 0), (5, 1, 0, 0, 1)]
    assert [r["estimate"] for r in res.table] == pytest.approx([1 / 5, 1 / 2, 1 / 2])
    # Ties of the event of interest: two at t = 1 out of 4, then one of 2 at t = 2.
    tied = aalen_johansen([1, 1, 2, 2], [1, 1, 1, 0])
    assert [r["estimate"] for r in tied.table] == pytest.approx([1 / 2, 3 / 4])
    assert tied.table[0]["events"] == 2


def test_delayed_entry_ties_and_risk_set_emptied_match_r():
    # t=1: n=5 (entries 0 and 0.5; the one entering at 1 is not yet at risk): F = 1/5, S = 4/5.
    # t=2: n=5, one event + one competing + one censored: F = 1/5 + 4/5·1/5 = 9/25, S = 12/25.
    # t=3: n=2, both have an event: F = 9/25 + 12/25·1/2 = 3/5, S = 0; later entrants change nothing.
    ref = R["small_b"]
    res = aalen_johansen(ref["exit"], ref["status"], entries=ref["entry"])
    assert [r["estimate"] for r in res.table] == pytest.approx([1 / 5, 9 / 25, 3 / 5, 3 / 5, 3 / 5])
    assert [r["at_risk"] for r in res.table] == [5, 5, 2, 2, 1]
    # IJ at t=1: the event contributes (1 − 1/5)/5, the 4 others −1/25 each: se² = (16 + 4)/625.
    assert res.table[0]["std_err"] == pytest.approx(math.sqrt(20) / 25)
    assert_table_matches_r(res.table, ref["aj"])
    assert cumulative_incidence_at(res, 100)["estimate"] == pytest.approx(3 / 5)  # S = 0: final


def _weighted_aj(entry, exit_, status, weights):
    """Definition-based AJ with case weights (independent of the module's closed form)."""
    f, s, out = 0.0, 1.0, []
    for t in sorted(set(exit_)):
        n = sum(w for a, x, w in zip(entry, exit_, weights, strict=True) if a < t <= x)
        d1 = sum(w for x, st, w in zip(exit_, status, weights, strict=True) if x == t and st == 1)
        d = sum(w for x, st, w in zip(exit_, status, weights, strict=True) if x == t and st != 0)
        if n > 0:
            f += s * d1 / n
            s *= 1 - d / n
        out.append(f)
    return np.array(out)


def test_ij_standard_error_is_the_weight_derivative():
    # se(t)² = Σ_i (∂F1(t)/∂w_i)²: central differences on an independent weighted estimator.
    entry = [0, 0, 0, 1, 0, 2, 0.5, 0, 3, 0, 1.5, 0]
    exit_ = [2, 2, 3, 3, 4, 5, 1, 6, 7, 7, 8, 9]
    status = [1, 2, 0, 1, 2, 1, 1, 0, 2, 1, 0, 1]
    res = aalen_johansen(exit_, status, entries=entry)
    h = 1e-6
    grads = []
    for i in range(len(exit_)):
        up = [1.0 + h * (j == i) for j in range(len(exit_))]
        down = [1.0 - h * (j == i) for j in range(len(exit_))]
        grads.append((_weighted_aj(entry, exit_, status, up) - _weighted_aj(entry, exit_, status, down)) / (2 * h))
    se = np.sqrt((np.array(grads) ** 2).sum(axis=0))
    assert [r["estimate"] for r in res.table] == pytest.approx(_weighted_aj(entry, exit_, status, [1.0] * 12))
    assert [r["std_err"] for r in res.table] == pytest.approx(se, abs=1e-8)
    # log interval: F·exp(±z·se/F), upper capped at 1
    row = res.table[-1]
    z = 1.959963984540054
    assert row["ci_low"] == pytest.approx(row["estimate"] * math.exp(-z * row["std_err"] / row["estimate"]))
    assert row["ci_high"] == pytest.approx(min(1.0, row["estimate"] * math.exp(z * row["std_err"] / row["estimate"])))


def test_everyone_censored():
    res = aalen_johansen([3, 5, 5, 8], [0, 0, 0, 0])
    assert (res.n, res.events, res.competing_events) == (4, 0, 0)
    assert all(r["estimate"] == 0 and r["std_err"] == 0 for r in res.table)
    assert all(r["ci_low"] is None and r["ci_high"] is None for r in res.table)
    assert cumulative_incidence_at(res, 6) == {
        "time": 6,
        "estimate": 0.0,
        "ci_low": None,
        "ci_high": None,
        "at_risk": 1,
    }
    assert cumulative_incidence_at(res, 9) is None  # follow-up ended before day 9


def test_only_competing_events():
    res = aalen_johansen([1, 2, 3], [2, 2, 2])
    assert [r["estimate"] for r in res.table] == [0, 0, 0]
    assert cumulative_incidence_at(res, 10)["estimate"] == 0  # S = 0: no one left, F1 is final


def test_empty_input():
    res = aalen_johansen([], [])
    assert isinstance(res, CumulativeIncidenceResult)
    assert (res.n, res.events, res.competing_events, res.table) == (0, 0, 0, [])
    assert cumulative_incidence_at(res, 90) is None


def test_all_entered_late():
    # Nobody is at risk before t = 5: the incidence stays 0 there, and at risk is 0.
    res = aalen_johansen([6, 7, 8, 9], [1, 0, 2, 1], entries=[5, 5, 5, 5])
    assert cumulative_incidence_at(res, 3) == {
        "time": 3,
        "estimate": 0.0,
        "ci_low": None,
        "ci_high": None,
        "at_risk": 0,
    }
    assert cumulative_incidence_at(res, 5)["at_risk"] == 4
    assert [r["at_risk"] for r in res.table] == [4, 3, 2, 1]
    # t=6: F = 1/4, S = 3/4; t=8: competing of 2, S = 3/8; t=9: F = 1/4 + 3/8.
    assert [r["estimate"] for r in res.table] == pytest.approx([1 / 4, 1 / 4, 1 / 4, 1 / 4 + 3 / 8])
    # A subject entering at an event time is not at risk for that event.
    gap = aalen_johansen([3, 4], [1, 1], entries=[0, 3])
    assert [(r["time"], r["at_risk"]) for r in gap.table] == [(3, 1), (4, 1)]
    assert [r["estimate"] for r in gap.table] == [1.0, 1.0]


def test_entries_equal_to_none_when_all_zero():
    a = aalen_johansen([2, 3, 3, 5], [1, 2, 0, 1])
    b = aalen_johansen([2, 3, 3, 5], [1, 2, 0, 1], entries=[0, 0, 0, 0])
    assert a.table == b.table


def test_entry_after_exit_raises_and_entry_equal_to_exit_is_dropped():
    with pytest.raises(ValueError, match="after its exit"):
        aalen_johansen([2, 3], [1, 0], entries=[0, 4])
    # R: Surv(2, 2, 1) is NA ("Stop time must be > start time") and survfit omits the row.
    with pytest.warns(UserWarning, match="entry == exit"):
        res = aalen_johansen([2, 3, 5], [1, 1, 0], entries=[2, 0, 1])
    assert res.table == aalen_johansen([3, 5], [1, 0], entries=[0, 1]).table
    assert (res.n, res.events) == (2, 1)


def test_validation():
    for bad in ([1, 3], [1, -1], [1, 1.5], ["1", "0"]):
        with pytest.raises(ValueError):
            aalen_johansen([1, 2], bad)
    with pytest.raises(ValueError):
        aalen_johansen([1, 2], [1])
    with pytest.raises(ValueError):
        aalen_johansen([1, -2], [1, 0])
    with pytest.raises(ValueError):
        aalen_johansen([1, float("nan")], [1, 0])
    with pytest.raises(ValueError):
        aalen_johansen([1, 2], [1, 0], entries=[0])
    with pytest.raises(ValueError):
        aalen_johansen([1, 2], [1, 0], confidence=1.0)


def test_cumulative_incidence_at_is_a_step_function():
    res = aalen_johansen([2, 2, 2, 4, 5], [1, 2, 0, 1, 0])
    assert cumulative_incidence_at(res, 1)["estimate"] == 0.0
    assert cumulative_incidence_at(res, 1)["at_risk"] == 5
    at3 = cumulative_incidence_at(res, 3)
    assert at3["estimate"] == pytest.approx(1 / 5) and at3["at_risk"] == 2
    assert at3["ci_low"] == res.table[0]["ci_low"] and at3["ci_high"] == res.table[0]["ci_high"]
    assert cumulative_incidence_at(res, 5)["estimate"] == pytest.approx(1 / 2)
    assert cumulative_incidence_at(res, 5.5) is None  # last subject censored at 5


def test_confidence_level_and_to_dict():
    res90 = aalen_johansen(ETIME, STATUS, confidence=0.90)
    res95 = aalen_johansen(ETIME, STATUS)
    row90, row95 = res90.table[-1], res95.table[-1]
    assert row90["estimate"] == row95["estimate"] and row90["std_err"] == row95["std_err"]
    assert row95["ci_low"] < row90["ci_low"] < row90["estimate"] < row90["ci_high"] < row95["ci_high"]
    assert "infinitesimal-jackknife" in res95.interval_method
    d = res95.to_dict()
    text = json.dumps(d)
    assert set(d) == {"n", "events", "competing_events", "table", "confidence", "interval_method"}
    assert '"n": 1384' in text
