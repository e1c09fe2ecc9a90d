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
"""

import math

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
