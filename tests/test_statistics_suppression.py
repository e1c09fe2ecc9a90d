"""Small-cell suppression (STATISTICS.md, "Small cells").

Rule under test: counts 1–4 are suppressed (null + flag), zero is not, and a
suppressed cell must not be recoverable as the shown total minus the shown cells.
These are rule checks, not published figures.  The brute-force test plays a
reader who knows the algorithm: it enumerates every count vector that would be
displayed identically and checks that no small cell has only one possible value.
"""

import itertools

import pytest

from reports.statistics.suppression import suppress_small_counts


def shown(result):
    return {c["key"]: c["count"] for c in result["cells"]}


def reasons(result):
    return {c["key"]: c["reason"] for c in result["cells"]}


def run(cells, **kw):
    return suppress_small_counts(cells, include_reasons=True, **kw)


def test_small_counts_suppressed_zero_and_large_kept_without_total():
    res = run({"a": 0, "b": 1, "c": 4, "d": 5, "e": 37})
    assert shown(res) == {"a": 0, "b": None, "c": None, "d": 5, "e": 37}
    assert [c["suppressed"] for c in res["cells"]] == [False, True, True, False, False]
    assert reasons(res) == {"a": None, "b": "small", "c": "small", "d": None, "e": None}
    assert res["total"] is None and res["threshold"] == 5


def test_order_and_pairs_input_are_kept():
    res = suppress_small_counts([("z", 10), ("a", 2), ("m", 7)])
    assert [c["key"] for c in res["cells"]] == ["z", "a", "m"]


def test_single_suppressed_cell_with_total_gets_a_complement_the_next_smallest():
    # 3 could be recovered as 50 - (10 + 37 + 0); suppress 10 (the smallest non-zero other cell).
    res = run({"infection": 3, "seroma": 10, "none": 37, "other": 0}, total=50)
    assert shown(res) == {"infection": None, "seroma": None, "none": 37, "other": 0}
    assert reasons(res)["seroma"] == "complementary"
    assert res["total"] == {"count": 50, "suppressed": False, "reason": None}


def test_no_complement_needed_without_total():
    res = suppress_small_counts({"infection": 3, "seroma": 10, "none": 37})
    assert shown(res) == {"infection": None, "seroma": 10, "none": 37}


def test_two_small_cells_that_do_not_reveal_each_other_need_no_complement():
    # 2 + 3 = 5 could be (1,4), (2,3), (3,2), (4,1): not recoverable.
    res = suppress_small_counts({"a": 2, "b": 3, "c": 40}, total=45)
    assert shown(res) == {"a": None, "b": None, "c": 40}


def test_two_small_cells_whose_sum_reveals_them_get_a_complement():
    # 1 + 1 = 2 can only be (1, 1); likewise 4 + 4 = 8 can only be (4, 4).
    res = run({"a": 1, "b": 1, "c": 40, "d": 12}, total=54)
    assert shown(res) == {"a": None, "b": None, "c": 40, "d": None}
    assert reasons(res)["d"] == "complementary"
    res = suppress_small_counts({"a": 4, "b": 4, "c": 40}, total=48)
    assert shown(res)["c"] is None


def test_small_total_is_suppressed_and_then_needs_no_complement():
    res = run({"a": 3, "b": 0}, total=3)
    assert shown(res) == {"a": None, "b": 0}
    assert res["total"] == {"count": None, "suppressed": True, "reason": "small"}


def test_when_only_zero_cells_are_left_the_total_is_suppressed_instead():
    # 4 + 4 = 8 with both cells hidden would still reveal (4, 4); no non-zero cell is left to
    # hide, so the total goes.
    res = run({"a": 4, "b": 4, "c": 0}, total=8)
    assert shown(res) == {"a": None, "b": None, "c": 0}
    assert res["total"] == {"count": None, "suppressed": True, "reason": "complementary"}
    # A single small cell beside zeros makes the total small itself.
    res = run({"a": 4, "b": 0}, total=4)
    assert res["total"] == {"count": None, "suppressed": True, "reason": "small"}


def test_ties_for_the_complement_suppress_all_tied_cells():
    # Suppressing only the first 9 would bound it by the shown 9; with 5, 5, 3 / 13 that
    # pins the 3 down (hidden 5 + 3 = 8, hidden complement in [5, 5]).
    res = run({"a": 2, "b": 9, "c": 9, "d": 30}, total=50)
    assert reasons(res) == {"a": "small", "b": "complementary", "c": "complementary", "d": None}
    res = run({"a": 5, "b": 5, "c": 3}, total=13)
    assert shown(res) == {"a": None, "b": None, "c": None}


def test_threshold_is_configurable():
    res = suppress_small_counts({"a": 9, "b": 10}, threshold=10)
    assert shown(res) == {"a": None, "b": 10}


@pytest.mark.parametrize(
    "cells,total",
    [
        ({"a": -1}, None),
        ({"a": 1.5}, None),
        ({"a": True}, None),
        ({"a": 5, "b": 6}, 10),
        ({"a": 5, "b": 6}, 20),
        ([("a", 1), ("a", 2)], None),
    ],
)
def test_invalid_input(cells, total):
    with pytest.raises(ValueError):
        suppress_small_counts(cells, total=total)


def _display(result):
    """What a non-coordinator sees: counts (None when suppressed) and the total."""
    total = result["total"]["count"] if result["total"] else None
    return tuple(c["count"] for c in result["cells"]), total


def _consistent_originals(result):
    """Brute force, as a reader who knows the algorithm would: every count vector that the
    algorithm turns into exactly the same display (counts, flags and the shown total)."""
    shown_counts, total = _display(result)
    hidden = [i for i, c in enumerate(shown_counts) if c is None]
    out = []
    for values in itertools.product(range(1, total + 1), repeat=len(hidden)):
        candidate = list(shown_counts)
        for i, v in zip(hidden, values, strict=True):
            candidate[i] = v
        if sum(candidate) != total:
            continue
        cells = {f"c{i}": v for i, v in enumerate(candidate)}
        if _display(suppress_small_counts(cells, total=total)) == (shown_counts, total):
            out.append(tuple(candidate))
    return out


@pytest.mark.parametrize("n_cells,max_count", [(2, 12), (3, 10), (4, 5)])
def test_no_small_cell_is_ever_recoverable_brute_force(n_cells, max_count):
    # Every group of n_cells counts in 0..max_count, published with its total: for each cell
    # suppressed as small, the vectors indistinguishable from the truth must give it >= 2 values.
    for counts in itertools.product(range(0, max_count + 1), repeat=n_cells):
        cells = {f"c{i}": v for i, v in enumerate(counts)}
        res = suppress_small_counts(cells, total=sum(counts), include_reasons=True)
        if not any(c["suppressed"] for c in res["cells"]) or res["total"]["suppressed"]:
            continue  # nothing hidden, or no total to difference against
        originals = _consistent_originals(res)
        assert tuple(counts) in originals
        for i, c in enumerate(res["cells"]):
            if c["reason"] == "small":
                assert len({o[i] for o in originals}) > 1, (counts, res)


def test_reasons_are_not_in_the_default_output():
    res = suppress_small_counts({"a": 0, "b": 1, "c": 5}, total=6)
    assert all(set(c) == {"key", "count", "suppressed"} for c in res["cells"])
    assert set(res["total"]) == {"count", "suppressed"}
