"""Kaplan–Meier, median CI and log-rank against R ``survival``'s ``aml`` data.

Data: ``survival::aml`` (Miller 1981, acute myelogenous leukaemia, weeks; + = censored)
    Maintained:    9, 13, 13+, 18, 23, 28+, 31, 34, 45+, 48, 161+
    Nonmaintained: 5, 5, 8, 8, 12, 16+, 23, 27, 30, 33, 43, 45

Published R output asserted here:

* ``print(survfit(Surv(time, status) ~ x, data = aml))`` (default conf.type "log")::

                     n events median 0.95LCL 0.95UCL
    x=Maintained    11      7     31      18      NA
    x=Nonmaintained 12     11     23       8      NA

* ``summary(survfit(...))`` rows for the Maintained arm (time, n.risk, n.event,
  survival, std.err, lower 95% CI, upper 95% CI), as reproduced on RPubs
  (rstudio-pubs-static.s3.amazonaws.com/610133_9d2b480275e04433aae84c8c4c4a7527.html;
  that page's data mistype one Nonmaintained time as censored, so only its
  Maintained rows are used)::

     9  11  1  0.909  0.0867  0.7541  1.000
    13  10  1  0.818  0.1163  0.6192  1.000
    18   8  1  0.716  0.1397  0.4884  1.000
    23   7  1  0.614  0.1526  0.3769  0.999
    31   5  1  0.491  0.1642  0.2549  0.946

* ``survdiff(Surv(time, status) ~ x, data = aml)``: Observed 7 / 11, Expected
  10.69 / 7.31, Chisq = 3.4 on 1 degrees of freedom, p = 0.0653 (older survival
  versions print p = 0.0653; newer ones round to 0.07).

Delayed entry (left truncation) and the median's CI where the band is not monotone:
``tests/reference/competing_risks_mgus2.json``, written by
``tests/reference/competing_risks_mgus2.R`` (R 4.2.2, survival 3.5.3; console output in
``competing_risks_mgus2.Rout``): ``survfit(Surv(entry, futime, death) ~ 1)`` on
``survival::mgus2`` with deterministic synthetic entries (every third id enters at
``min(etime - 0.5, id %% 37)``), data in ``tests/reference/mgus2.csv``.  R is not needed
to run these tests.
"""

import csv
import json
import math
from pathlib import Path

import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from reports.statistics.survival import kaplan_meier, log_rank, survival_at

MAINTAINED_T = [9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161]
MAINTAINED_E = [1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0]
NONMAINTAINED_T = [5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45]
NONMAINTAINED_E = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1]


def test_aml_medians_and_ci_match_r_survfit():
    m = kaplan_meier(MAINTAINED_T, MAINTAINED_E)
    assert (m.n, m.events, m.median) == (11, 7, 31)
    assert m.median_ci == (18, None)
    nm = kaplan_meier(NONMAINTAINED_T, NONMAINTAINED_E)
    assert (nm.n, nm.events, nm.median) == (12, 11, 23)
    assert nm.median_ci == (8, None)
    assert m.conf_type == "log" and m.confidence == 0.95


R_SUMMARY_MAINTAINED = [
    (9, 11, 1, 0.909, 0.0867, 0.7541, 1.000),
    (13, 10, 1, 0.818, 0.1163, 0.6192, 1.000),
    (18, 8, 1, 0.716, 0.1397, 0.4884, 1.000),
    (23, 7, 1, 0.614, 0.1526, 0.3769, 0.999),
    (31, 5, 1, 0.491, 0.1642, 0.2549, 0.946),
]


def test_aml_maintained_table_matches_r_summary():
    rows = {r["time"]: r for r in kaplan_meier(MAINTAINED_T, MAINTAINED_E).table}
    for time, at_risk, events, surv, se, low, high in R_SUMMARY_MAINTAINED:
        row = rows[time]
        assert (row["at_risk"], row["events"]) == (at_risk, events)
        assert round(row["survival"], 3) == surv
        assert round(row["std_err"], 4) == se
        assert round(row["ci_low"], 4) == low
        assert round(row["ci_high"], 3) == high


def test_table_lists_censor_times_too():
    table = kaplan_meier(MAINTAINED_T, MAINTAINED_E).table
    assert [r["time"] for r in table] == [9, 13, 18, 23, 28, 31, 34, 45, 48, 161]
    row13 = table[1]
    assert (row13["events"], row13["censored"]) == (1, 1)
    assert sum(r["events"] for r in table) == 7
    assert sum(r["censored"] for r in table) == 4


def test_band_is_undefined_where_survival_reaches_zero():
    last = kaplan_meier(NONMAINTAINED_T, NONMAINTAINED_E).table[-1]
    assert last["survival"] == 0.0
    assert last["ci_low"] is None and last["ci_high"] is None


def test_aml_log_rank_matches_r_survdiff():
    res = log_rank(MAINTAINED_T, MAINTAINED_E, NONMAINTAINED_T, NONMAINTAINED_E)
    assert round(res["chisq"], 1) == 3.4
    assert res["df"] == 1
    assert round(res["p_value"], 4) == 0.0653
    assert (res["observed_a"], res["observed_b"]) == (7, 11)
    assert (round(res["expected_a"], 2), round(res["expected_b"], 2)) == (10.69, 7.31)
    # Our O, E and V reproduce lifelines' statistic: (O - E)^2 / V.
    assert (res["observed_a"] - res["expected_a"]) ** 2 / res["variance"] == pytest.approx(res["chisq"])


def test_log_rank_is_symmetric_and_handles_degenerate_input():
    ab = log_rank(MAINTAINED_T, MAINTAINED_E, NONMAINTAINED_T, NONMAINTAINED_E)
    ba = log_rank(NONMAINTAINED_T, NONMAINTAINED_E, MAINTAINED_T, MAINTAINED_E)
    assert ab["chisq"] == pytest.approx(ba["chisq"]) and ab["p_value"] == pytest.approx(ba["p_value"])
    assert log_rank([], [], [1, 2], [1, 0]) is None
    assert log_rank([1, 2], [0, 0], [3], [0]) is None


def test_log_log_band_matches_lifelines_default():
    # lifelines' default band is the "exponential Greenwood" (log-log) one; its median CI
    # comes from median_survival_times(kmf.confidence_interval_).
    for t, e in [(MAINTAINED_T, MAINTAINED_E), (NONMAINTAINED_T, NONMAINTAINED_E)]:
        ours = kaplan_meier(t, e, conf_type="log-log")
        kmf = KaplanMeierFitter().fit(t, e)
        ci = kmf.confidence_interval_
        for row in ours.table:
            if row["ci_low"] is None:
                continue
            assert row["ci_low"] == pytest.approx(ci.iloc[:, 0].loc[row["time"]], abs=1e-9)
            assert row["ci_high"] == pytest.approx(ci.iloc[:, 1].loc[row["time"]], abs=1e-9)
        lifelines_ci = median_survival_times(ci).iloc[0].tolist()
        expected = tuple(None if math.isinf(v) else v for v in lifelines_ci)
        assert ours.median_ci == expected
        assert ours.median == kmf.median_survival_time_
    assert kaplan_meier(MAINTAINED_T, MAINTAINED_E, conf_type="log-log").median_ci == (13, None)
    assert kaplan_meier(NONMAINTAINED_T, NONMAINTAINED_E, conf_type="log-log").median_ci == (5, 33)


def test_median_on_a_flat_stretch_at_one_half_uses_the_midpoint():
    # S = 0.75, 0.5, 0.25, 0 at t = 1..4: S is exactly 0.5 on [2, 3) -> median (2 + 3)/2 = 2.5
    # (R's quantile.survfit rule; lifelines would say 2).
    assert kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1]).median == 2.5
    # Curve ends flat at 0.5 (last time 4): median = (2 + 4) / 2 = 3.
    assert kaplan_meier([1, 2, 3, 4], [1, 1, 0, 0]).median == 3.0


def test_median_not_reached_is_none():
    # One event at t = 5 with 3 at risk: S = 2/3 never reaches 0.5.  The lower band does:
    # Greenwood var(log S) = 1/(3*2) = 0.1667, lower = (2/3)·exp(-1.96·0.4082) = 0.300 <= 0.5 at t = 5.
    res = kaplan_meier([3, 5, 7, 9], [0, 1, 0, 0])
    assert res.median is None
    assert res.median_ci == (5, None)
    assert kaplan_meier([3, 5], [0, 0]).median_ci == (None, None)


def test_empty_group():
    res = kaplan_meier([], [])
    assert res.n == 0 and res.table == [] and res.median is None and res.median_ci == (None, None)
    assert survival_at(res, 10) is None


def test_survival_at_is_a_step_function():
    res = kaplan_meier(MAINTAINED_T, MAINTAINED_E)
    assert survival_at(res, 5)["survival"] == 1.0
    assert round(survival_at(res, 20)["survival"], 3) == 0.716  # flat between 18 and 23
    assert survival_at(res, 20)["at_risk"] == 7
    assert survival_at(res, 200) is None


def test_plain_band_and_validation():
    res = kaplan_meier(MAINTAINED_T, MAINTAINED_E, conf_type="plain")
    row = res.table[0]  # S = 10/11, se = 0.0867: 0.9091 - 1.96*0.0867 = 0.7392
    assert round(row["ci_low"], 4) == 0.7392 and row["ci_high"] == 1.0
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1])
    with pytest.raises(ValueError):
        kaplan_meier([1, -2], [1, 1])
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1, 2])
    with pytest.raises(ValueError):
        kaplan_meier([1, 2], [1, 1], conf_type="arcsin")


def test_to_dict_is_json_friendly():
    import json

    d = kaplan_meier(MAINTAINED_T, MAINTAINED_E).to_dict()
    text = json.dumps(d)
    assert '"median": 31.0' in text and '"median_ci": [18.0, null]' in text


REFERENCE = Path(__file__).parent / "reference"
R = json.loads((REFERENCE / "competing_risks_mgus2.json").read_text())


def _mgus2():
    with (REFERENCE / "mgus2.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return (
        [float(r["futime"]) for r in rows],
        [int(r["death"]) for r in rows],
        [float(r["entry"]) for r in rows],
    )


def test_mgus2_delayed_entry_matches_r_survfit():
    futime, death, entry = _mgus2()
    res = kaplan_meier(futime, death, entries=entry)
    ref = R["km_delayed"]
    table = res.table
    assert [r["time"] for r in table] == ref["time"]
    assert [r["at_risk"] for r in table] == ref["n_risk"]
    assert [r["events"] for r in table] == ref["n_event"]
    assert [r["censored"] for r in table] == ref["n_censor"]
    for key, column in (("survival", "surv"), ("std_err", "std_err"), ("ci_low", "lower"), ("ci_high", "upper")):
        for row, expected in zip(table, ref[column], strict=True):
            if expected is None:  # R: NaN / NA once S = 0
                assert row[key] is None and row["survival"] == 0
            else:
                assert row[key] == pytest.approx(expected, abs=1e-9)
    # print(survfit(...)): median 89, 0.95LCL 81, 0.95UCL 97
    assert (res.median, res.median_ci) == ((ref["median"]), (ref["median_lower"], ref["median_upper"]))
    assert (res.n, res.events) == (1384, 963)
    # summary(survfit(...), times = 60): survival 0.617062, std.err 0.0138035
    at60 = survival_at(res, 60)
    assert (round(at60["survival"], 6), round(at60["ci_low"], 7)) == (0.617062, 0.5905919)
    # Everyone entering at 0 differs: delayed entry must change the answer.
    assert kaplan_meier(futime, death).table[0]["at_risk"] == 1384 != table[0]["at_risk"]


def test_median_ci_uses_the_first_crossing_where_r_uses_the_sorted_band():
    # Deaths at 1..22, 5 censored at 22.5, deaths at 23, 24, 25: the upper "log" band is
    # 0.4827 (22), 0.4814 (23), 0.4899 (24).  R prints 15.5 (11, 24): its approx() sorts the
    # band and takes the largest value <= 0.5 (t = 24); we keep the first crossing, t = 22.
    ref = R["median_band"]
    res = kaplan_meier(ref["time"], ref["event"])
    assert res.median == ref["median"] == 15.5
    assert res.median_ci[0] == ref["lower"] == 11
    assert res.median_ci[1] == ref["first_crossing_upper"] == 22
    assert ref["r_upper"] == 24
    bands = [r["ci_high"] for r in res.table]
    assert [r["time"] for r in res.table] == ref["band_time"]
    assert bands[:-1] == pytest.approx(ref["band_upper"][:-1], abs=1e-9)
    assert bands[-1] is None and ref["band_upper"][-1] is None


def test_delayed_entry_ties_and_risk_set_emptied_match_r():
    ref = R["small_b"]
    res = kaplan_meier(ref["exit"], [int(s != 0) for s in ref["status"]], entries=ref["entry"])
    assert [r["survival"] for r in res.table] == pytest.approx(ref["km_surv"])
    assert [r["std_err"] for r in res.table][:2] == pytest.approx(ref["km_std_err"][:2])
    assert [r["std_err"] for r in res.table][2:] == [None, None, None]
    assert [r["at_risk"] for r in res.table] == [5, 5, 2, 2, 1]


def test_greenwood_uses_the_truncated_risk_sets():
    # entries 0, 0, 3, 3; exits 2, 4, 5, 6; events 1, 1, 1, 0.
    # t=2: n=2 (the two late entrants are not yet at risk): S = 1/2,  var(log S) = 1/(2·1)
    # t=4: n=3: S = 1/3, var += 1/(3·2);  t=5: n=2: S = 1/6, var += 1/(2·1)  -> 7/6
    res = kaplan_meier([2, 4, 5, 6], [1, 1, 1, 0], entries=[0, 0, 3, 3])
    assert [r["at_risk"] for r in res.table] == [2, 3, 2, 1]
    assert [r["survival"] for r in res.table] == pytest.approx([1 / 2, 1 / 3, 1 / 6, 1 / 6])
    assert res.table[2]["std_err"] == pytest.approx(math.sqrt(7 / 6) / 6)
    assert res.table[2]["ci_low"] == pytest.approx(math.exp(-1.959963984540054 * math.sqrt(7 / 6)) / 6)
    # Numbers at risk just after a time count those who have entered by then.
    assert survival_at(res, 2.5)["at_risk"] == 1
    assert survival_at(res, 3)["at_risk"] == 3
    assert survival_at(res, 1) == {"time": 1, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "at_risk": 2}
    assert "_entries" not in res.to_dict()


def test_all_entered_late_keeps_survival_at_one_until_someone_is_at_risk():
    res = kaplan_meier([6, 7, 8], [1, 0, 1], entries=[5, 5, 5])
    assert survival_at(res, 3) == {"time": 3, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "at_risk": 0}
    assert [(r["time"], r["at_risk"]) for r in res.table] == [(6, 3), (7, 2), (8, 1)]
    assert res.table[0]["survival"] == pytest.approx(2 / 3)
    # A subject entering at an event time is not at risk for it: S(3) = 0 with one at risk.
    gap = kaplan_meier([3, 4], [1, 1], entries=[0, 3])
    assert [(r["at_risk"], r["survival"]) for r in gap.table] == [(1, 0.0), (1, 0.0)]


def test_entries_none_and_zero_entries():
    # Identical when every duration is positive ...
    assert (
        kaplan_meier(MAINTAINED_T, MAINTAINED_E).table
        == kaplan_meier(MAINTAINED_T, MAINTAINED_E, entries=[0] * len(MAINTAINED_T)).table
    )
    # ... but a duration of 0 is kept (at risk at t = 0) without entries and dropped, as R does
    # with Surv(0, 0, 1), when entry == exit == 0 is given explicitly.
    assert kaplan_meier([0, 2, 3], [1, 1, 0]).table[0] == {
        "time": 0.0,
        "at_risk": 3,
        "events": 1,
        "censored": 0,
        "survival": pytest.approx(2 / 3),
        "std_err": pytest.approx(2 / 3 * math.sqrt(1 / 6)),
        "ci_low": pytest.approx(2 / 3 * math.exp(-1.959963984540054 * math.sqrt(1 / 6))),
        "ci_high": 1.0,
    }
    with pytest.warns(UserWarning, match="entry == exit"):
        dropped = kaplan_meier([0, 2, 3], [1, 1, 0], entries=[0, 0, 0])
    assert (dropped.n, dropped.events, dropped.table[0]["time"]) == (2, 1, 2.0)


def test_entry_after_exit_raises():
    with pytest.raises(ValueError, match="after its exit"):
        kaplan_meier([2, 3], [1, 0], entries=[0, 4])
    with pytest.raises(ValueError):
        kaplan_meier([2, 3], [1, 0], entries=[0])
    with pytest.raises(ValueError):
        kaplan_meier([2, 3], [1, 0], entries=[float("nan"), 0])
    # Negative entries are allowed (as in R): entry −0.5 keeps a day-0 event in the risk set.
    assert kaplan_meier([0, 2, 3], [1, 1, 0], entries=[-0.5] * 3).table == kaplan_meier([0, 2, 3], [1, 1, 0]).table


# --- log-rank with delayed entry: R coxph score test (tests/reference/log_rank_delayed_entry.R) ---


def _log_rank_reference():
    import csv
    from pathlib import Path

    folder = Path(__file__).parent / "reference"
    rows = list(csv.DictReader((folder / "log_rank_delayed_entry.csv").open()))
    printed = {}
    for line in (folder / "log_rank_delayed_entry.Rout").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("score_chisq", "p_value", "survdiff_chisq_no_entry"):
            printed[parts[0]] = float(parts[1])
    return rows, printed


def test_log_rank_with_delayed_entry_matches_r_coxph_score_test():
    rows, printed = _log_rank_reference()
    groups = {}
    for r in rows:
        groups.setdefault(r["male"], []).append((float(r["entry"]), float(r["exit"]), int(r["death"])))
    (ea, ta, da), (eb, tb, db) = (list(zip(*groups[k], strict=True)) for k in ("1", "0"))
    with_entry = log_rank(ta, da, tb, db, entries_a=ea, entries_b=eb)
    assert with_entry["chisq"] == pytest.approx(printed["score_chisq"], abs=1e-7)
    assert with_entry["p_value"] == pytest.approx(printed["p_value"], abs=1e-9)
    without = log_rank(ta, da, tb, db)
    assert without["chisq"] == pytest.approx(printed["survdiff_chisq_no_entry"], abs=1e-7)
    assert without["chisq"] != pytest.approx(with_entry["chisq"], abs=1e-3)


def test_log_rank_refuses_an_entry_after_the_exit():
    with pytest.raises(ValueError):
        log_rank([5, 6], [1, 1], [4, 7], [1, 0], entries_a=[6, 0], entries_b=[0, 0])
