"""``reports.disclosure``: the group rule (hidden as a unit, complements in a fixed order), cumulative incidence
and survival tables.  One test per rule; the exhaustive proofs are in ``test_statistics_suppression.py``."""

import itertools
import random

import pytest

from reports import disclosure
from reports.statistics import kaplan_meier


def group(name, n, events, numerator="events", **extra):
    return {"group": name, "implantations": n, numerator: events, "rate": events / n, "ci": [0.0, 1.0], **extra}


def hidden(out):
    return [g["group"] for g in out if g["suppressed"]]


# --------------------------------------------------------------------------- proportions


@pytest.mark.parametrize(
    "n,events",
    [(10, 2), (10, 8), (3, 0), (3, 3), (4, 2)],
    ids=["small events", "small non-events", "small n, no events", "small n, all events", "small n"],
)
def test_a_group_is_hidden_as_a_unit(n, events):
    [out] = disclosure.suppress_proportions([group("A", n, events, median_days_to_first_dose=14)], "events")
    assert out == {
        "group": "A",
        "implantations": None,
        "events": None,
        "rate": None,
        "ci": None,
        "median_days_to_first_dose": None,
        "suppressed": True,
    }


@pytest.mark.parametrize("n,events", [(0, 0), (6, 0), (6, 6), (10, 5), (40, 17)])
def test_zero_and_large_parts_are_shown(n, events):
    g = {"group": "A", "implantations": n, "treated": events, "rate": None, "ci": None}
    [out] = disclosure.suppress_proportions([g], "treated")
    assert out == dict(g, suppressed=False)


def test_a_lone_hidden_group_gets_the_next_group_in_order_as_complement_not_the_smallest():
    # Margins 76 / 12 are published (ungrouped query): A alone would be 76 - 56 and 12 - 10.
    out = disclosure.suppress_proportions([group("A", 20, 2), group("B", 50, 10), group("C", 6, 0)], "events")
    assert hidden(out) == ["A", "B"]
    assert out[2] == dict(group("C", 6, 0), suppressed=False)
    # The order wraps around: the last group's complement is the first one.
    out = disclosure.suppress_proportions([group("A", 50, 10), group("B", 6, 0), group("C", 20, 2)], "events")
    assert hidden(out) == ["A", "C"]


def test_no_complement_when_the_margins_are_not_published():
    # Margins 16 / 2: the ungrouped query hides them too, so there is no sum to subtract from.
    out = disclosure.suppress_proportions([group("A", 10, 2), group("B", 6, 0)], "events")
    assert hidden(out) == ["A"]


def test_hidden_groups_whose_sums_force_the_values_get_another_complement():
    # A (1, 1) and B (1, 0): two hidden groups of n adding up to 2 can only be 1 and 1.
    groups = [group("A", 1, 1), group("B", 1, 0), group("C", 20, 10), group("D", 10, 5)]
    assert hidden(disclosure.suppress_proportions(groups, "events")) == ["A", "B", "C"]


def test_hidden_groups_with_no_events_between_them_get_another_complement():
    # A (3, 0) and B (2, 0) hidden, margins 35 / 15: hidden events add up to 0, so both would be 0.
    groups = [group("A", 3, 0), group("B", 2, 0), group("C", 20, 10), group("D", 10, 5)]
    assert hidden(disclosure.suppress_proportions(groups, "events")) == ["A", "B", "C"]


def test_a_part_whose_margin_is_zero_is_public_and_needs_no_complement():
    # No events anywhere (margin E = 0, published): that every group has 0 events is no secret.
    groups = [group("A", 3, 0), group("B", 2, 0), group("C", 20, 0)]
    assert hidden(disclosure.suppress_proportions(groups, "events")) == ["A", "B"]


def test_the_audit_example_no_longer_gives_the_events_away():
    """Centres F (5, 0 events) and M (6, k events): the old rule showed "M hidden, F shown" only for k = 1."""
    patterns = {}
    for k in range(7):
        out = disclosure.suppress_proportions([group("F", 5, 0), group("M", 6, k)], "events")
        patterns.setdefault(tuple(hidden(out)), []).append(k)
    assert patterns[("M",)] == [1, 2, 3, 4]  # margins 11 / k not published: no complement, and k stays open
    # k = 5 hides both: F's values are unknown too, so k is not pinned (see the exhaustive test).
    assert patterns[("F", "M")] == [5]


def test_suppress_proportions_applies_the_rule_tested_exhaustively():
    """The exhaustive test runs ``_hidden_groups``; ``suppress_proportions`` must publish exactly its decision."""
    rng = random.Random(7)
    for _ in range(2000):
        sizes = [rng.randint(1, 40) for _ in range(rng.randint(1, 5))]
        counts = [(n, rng.randint(0, n)) for n in sizes]
        out = disclosure.suppress_proportions([group(str(i), n, e) for i, (n, e) in enumerate(counts)], "events")
        flags, _ = disclosure._hidden_groups([(e, n - e) for n, e in counts])
        assert [g["suppressed"] for g in out] == flags
        for g, (n, e) in zip(out, counts, strict=True):
            assert (g["implantations"], g["events"]) == ((None, None) if g["suppressed"] else (n, e))


def test_invalid_proportions():
    with pytest.raises(ValueError):
        disclosure.suppress_proportions([group("A", 5, 6)], "events")
    with pytest.raises(ValueError):
        disclosure.suppress_proportions([{"group": "A", "implantations": -1, "events": 0}], "events")


# --------------------------------------------------------------------------- cumulative incidence


def incidence(name, n, events, competing, **extra):
    return {
        "group": name,
        "implantations": n,
        "events": events,
        "competing_events": competing,
        "estimate": 0.2,
        "ci": [0.1, 0.3],
        **extra,
    }


@pytest.mark.parametrize("n,events,competing", [(20, 2, 10), (20, 10, 2), (20, 8, 8), (3, 0, 0)])
def test_cumulative_incidence_hides_a_group_when_any_of_its_three_counts_is_small(n, events, competing):
    [out] = disclosure.suppress_cumulative_incidence([incidence("A", n, events, competing)])
    assert out == {
        "group": "A",
        "implantations": None,
        "events": None,
        "competing_events": None,
        "estimate": None,
        "ci": None,
        "suppressed": True,
    }


def test_cumulative_incidence_shows_zero_and_large_counts_and_complements_in_order():
    shown_group = incidence("C", 15, 5, 0)
    out = disclosure.suppress_cumulative_incidence([incidence("A", 20, 2, 10), incidence("B", 30, 10, 10), shown_group])
    assert hidden(out) == ["A", "B"]  # margins 65 / 17 / 20 published, so A alone would be recoverable
    assert out[2] == dict(shown_group, suppressed=False)
    assert disclosure.suppress_cumulative_incidence([incidence("E", 0, 0, 0, estimate=None)])[0]["suppressed"] is False


def test_cumulative_incidence_estimate_field_can_be_named():
    g = {"group": "A", "implantations": 20, "events": 2, "competing_events": 10, "rate": 0.1, "ci": [0.0, 0.3]}
    [out] = disclosure.suppress_cumulative_incidence([g], estimate="rate")
    assert out["rate"] is None and out["suppressed"]


def test_invalid_cumulative_incidence():
    with pytest.raises(ValueError):
        disclosure.suppress_cumulative_incidence([incidence("A", 5, 3, 3)])


# --------------------------------------------------------------------------- survival


def km_table(durations, events):
    fit = kaplan_meier(durations, events)
    rows = [
        {"day": int(r["time"]), "at_risk": r["at_risk"], "events": r["events"], "survival": r["survival"]}
        for r in fit.table
    ]
    return fit, rows


def survival_group(name, durations, events):
    fit, table = km_table(durations, events)
    return {
        "group": name,
        "n": fit.n,
        "events": fit.events,
        "median_days": fit.median,
        "median_ci": list(fit.median_ci),
        "table": table,
    }


def test_coarse_rows_are_labelled_with_the_end_of_their_block():
    # 40 patients: 10 die on day 10, 8 on day 30, 6 on day 45, 5 on day 70; 11 censored on day 80.
    durations = [10] * 10 + [30] * 8 + [45] * 6 + [70] * 5 + [80] * 11
    fit, table = km_table(durations, [1] * 29 + [0] * 11)
    rows = disclosure._coarsen(table)
    assert [r["day"] for r in rows] == [0, 30, 60, 90]
    assert rows[0] == {"day": 0, "at_risk": 40, "events": 0, "survival": 1.0}
    # Survival at each label is the Kaplan-Meier value AT that day (after the block's events, day 30 included).
    assert [r["survival"] for r in rows[1:]] == pytest.approx([0.75 * 22 / 30, 0.4, 0.4 * 11 / 16])
    # At risk at the start of the block (still followed after its first day - 1), events within the block.
    assert [(r["at_risk"], r["events"]) for r in rows[1:]] == [(40, 18), (22, 6), (16, 5)]


def test_an_event_on_a_block_end_counts_in_the_block_it_ends():
    fit, table = km_table([30] * 6 + [31] * 6 + [50] * 6, [1] * 12 + [0] * 6)
    rows = disclosure._coarsen(table)
    assert [(r["day"], r["at_risk"], r["events"]) for r in rows] == [(0, 18, 0), (30, 18, 6), (60, 12, 6)]
    assert rows[1]["survival"] == pytest.approx(12 / 18)


def test_small_numbers_at_risk_are_hidden():
    fit, table = km_table([10] * 6 + [40] * 5 + [100] * 3, [1] * 11 + [0] * 3)
    rows = disclosure._coarsen(table)
    assert [r["day"] for r in rows] == [0, 30, 60, 90, 120]
    assert [r["at_risk"] for r in rows] == [14, 14, 8, None, None]  # 3 still followed after day 60


def test_a_single_small_block_gets_the_next_block_hidden_as_complement():
    # Block events 5, 2, 6 with 13 in total: the 2 alone would be 13 - 11.
    durations = [10] * 5 + [40] * 2 + [70] * 6 + [80] * 10
    fit, table = km_table(durations, [1] * 13 + [0] * 10)
    assert [r["events"] for r in disclosure._coarsen(table)] == [0, 5, None, None]


def test_a_group_whose_blocks_cannot_be_protected_is_hidden_whole():
    # Blocks of 4 and 4 events: both small, no other block to hide, and 8 = 4 + 4 would give them away.
    g = survival_group("A", [10] * 4 + [40] * 4 + [50] * 10, [1] * 8 + [0] * 10)
    [out] = disclosure.suppress_survival([g])
    assert out["suppressed"] and out["table"] == [] and out["n"] is None and out["events"] is None


def test_survival_hides_n_events_and_censored_together():
    # 12 patients, 8 events, 4 censored: the censored count is small.
    g = survival_group("A", [10] * 8 + [50] * 4, [1] * 8 + [0] * 4)
    [out] = disclosure.suppress_survival([g])
    assert out == {
        "group": "A",
        "n": None,
        "events": None,
        "median_days": None,
        "median_ci": None,
        "table": [],
        "suppressed": True,
    }


def test_survival_groups_get_complements_in_order():
    a = survival_group("A", [10] * 3 + [200] * 20, [1] * 3 + [0] * 20)  # 3 events: hidden
    b = survival_group("B", [10] * 10 + [100] * 10, [1] * 10 + [0] * 10)
    c = survival_group("C", [15] * 5 + [100] * 5, [1] * 5 + [0] * 5)
    out = disclosure.suppress_survival([a, b, c])
    assert hidden(out) == ["A", "B"]  # margins 53 / 18 are published by the ungrouped curve
    assert out[2]["n"] == 10 and out[2]["table"][0] == {"day": 0, "at_risk": 10, "events": 0, "survival": 1.0}


def test_the_coarse_table_is_exact_at_every_block_end():
    rng = random.Random(3)
    durations = [rng.randint(0, 400) for _ in range(300)]
    events = [int(rng.random() < 0.6) for _ in durations]
    fit, table = km_table(durations, events)
    rows = disclosure._blocks(table)
    for row in rows[1:]:
        at = [r for r in table if r["day"] <= row["day"]]
        assert row["survival"] == pytest.approx(at[-1]["survival"] if at else 1.0)
        start = row["day"] - disclosure.SURVIVAL_TABLE_STEP_DAYS  # the first block also holds day 0
        assert row["at_risk"] == (len(durations) if start == 0 else sum(1 for d in durations if d > start))
    assert sum(r["events"] for r in rows) == sum(events)
    starts = itertools.pairwise(r["day"] for r in rows)
    assert all(b - a == disclosure.SURVIVAL_TABLE_STEP_DAYS for a, b in starts)
