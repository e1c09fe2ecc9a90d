"""Small-cell suppression (STATISTICS.md, "Small cells"): the rules, and exhaustive proofs that they hold.

Rule under test: counts 1–4 are suppressed (null + flag), zero is not, a suppressed
cell must not be recoverable from what is published (a total or margin minus the
shown cells), and which cells are hidden must not depend on the hidden values.
These are rule checks, not published figures.  The brute-force tests play a reader
who knows the algorithm: they group every table by what it publishes and check
that no hidden value has only one possible value among the tables that publish
the same thing.
"""

import itertools
import time

import pytest

from reports import disclosure
from reports.disclosure import THRESHOLD, _hidden_groups, _pins, _sum_of_primaries
from reports.statistics.suppression import suppress_small_counts


def shown(result):
    return {c["key"]: c["count"] for c in result["cells"]}


def reasons(result):
    return {c["key"]: c["reason"] for c in result["cells"]}


def run(cells, **kw):
    return suppress_small_counts(cells, include_reasons=True, **kw)


# --------------------------------------------------------------------------- one group of cells (1-D)


def test_small_counts_suppressed_zero_and_large_kept_without_total():
    res = run({"a": 0, "b": 1, "c": 4, "d": 5, "e": 37})
    assert shown(res) == {"a": 0, "b": None, "c": None, "d": 5, "e": 37}
    assert [c["suppressed"] for c in res["cells"]] == [False, True, True, False, False]
    assert reasons(res) == {"a": None, "b": "small", "c": "small", "d": None, "e": None}
    assert res["total"] is None and res["threshold"] == 5


def test_order_and_pairs_input_are_kept():
    res = suppress_small_counts([("z", 10), ("a", 2), ("m", 7)])
    assert [c["key"] for c in res["cells"]] == ["z", "a", "m"]


def test_the_complement_is_the_next_non_zero_cell_in_order_not_the_smallest():
    # 3 could be recovered as 50 - (10 + 37 + 0); the next cell after it is hidden.
    res = run({"infection": 3, "seroma": 10, "none": 37, "other": 0}, total=50)
    assert shown(res) == {"infection": None, "seroma": None, "none": 37, "other": 0}
    assert reasons(res)["seroma"] == "complementary"
    assert res["total"] == {"count": 50, "suppressed": False, "reason": None}
    # Order, not size: the 37 right after the small cell goes, though 10 is smaller.
    res = run({"infection": 3, "none": 37, "seroma": 10}, total=50)
    assert reasons(res) == {"infection": "small", "none": "complementary", "seroma": None}
    # Zero cells are skipped (they stay shown), and the search wraps around.
    res = run({"a": 12, "b": 0, "c": 2, "d": 0}, total=14)
    assert reasons(res) == {"a": "complementary", "b": None, "c": "small", "d": None}


def test_no_complement_needed_without_total():
    res = suppress_small_counts({"infection": 3, "seroma": 10, "none": 37})
    assert shown(res) == {"infection": None, "seroma": 10, "none": 37}


def test_a_complement_is_added_whatever_the_small_values_are():
    # Two small cells get a complement even when their sum (5) would not give them away: whether a
    # complement is added must not depend on hidden values (1 + 1 = 2 would need one, 2 + 3 would not,
    # and a reader seeing the difference would learn which).
    res = run({"a": 2, "b": 3, "c": 40}, total=45)
    assert reasons(res) == {"a": "small", "b": "small", "c": "complementary"}
    res = run({"a": 1, "b": 1, "c": 40, "d": 12}, total=54)
    assert shown(res) == {"a": None, "b": None, "c": None, "d": 12}


def test_a_second_complement_at_the_one_corner_that_pins_everything():
    # Hidden 1 and 5 with total 36 - 30 = 6 = (2 - 1) + 5: "one small cell and one complement" would
    # force 1 and 5, so the next cell goes too (then 36 - 0 leaves many splits).
    res = run({"a": 1, "b": 5, "c": 30}, total=36)
    assert reasons(res) == {"a": "small", "b": "complementary", "c": "complementary"}
    assert res["total"]["count"] == 36
    res = run({"a": 2, "b": 5, "c": 30}, total=37)
    assert reasons(res) == {"a": "small", "b": "complementary", "c": None}


def test_small_total_is_suppressed_and_then_needs_no_complement():
    res = run({"a": 3, "b": 0}, total=3)
    assert shown(res) == {"a": None, "b": 0}
    assert res["total"] == {"count": None, "suppressed": True, "reason": "small"}


def test_when_only_zero_cells_are_left_the_total_is_suppressed_instead():
    res = run({"a": 4, "b": 4, "c": 0}, total=8)
    assert shown(res) == {"a": None, "b": None, "c": 0}
    assert res["total"] == {"count": None, "suppressed": True, "reason": "complementary"}
    # A single small cell beside zeros makes the total small itself.
    res = run({"a": 4, "b": 0}, total=4)
    assert res["total"] == {"count": None, "suppressed": True, "reason": "small"}
    # At the corner with nothing left to hide, the total goes as well.
    res = run({"a": 1, "b": 5, "c": 0}, total=6)
    assert res["total"] == {"count": None, "suppressed": True, "reason": "complementary"}


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


def test_reasons_are_not_in_the_default_output():
    res = suppress_small_counts({"a": 0, "b": 1, "c": 5}, total=6)
    assert all(set(c) == {"key", "count", "suppressed"} for c in res["cells"])
    assert set(res["total"]) == {"count", "suppressed"}


def _display(counts):
    """What a non-coordinator sees of ``counts`` published with its total: counts (None when hidden), total."""
    result = suppress_small_counts({f"c{i}": v for i, v in enumerate(counts)}, total=sum(counts))
    return tuple(c["count"] for c in result["cells"]), result["total"]["count"]


def _pinned_cells_1d(n_cells, max_count, display):
    """Every vector of ``n_cells`` counts in 0..max_count, grouped by its display; the hidden cells that have a
    single value among the vectors with the same display.

    With the total shown the reader's candidates are exactly the splits of ``total − shown`` over the hidden
    cells (no bound is involved).  With the total hidden there is no sum; candidates then range over
    1..max_count + 8, which only adds candidates to the ones a bounded reader would have.
    """
    found = {}
    for counts in itertools.product(range(max_count + 1), repeat=n_cells):
        published = display(counts)
        if published is None:
            continue  # nothing of these cells is published
        cells, total = published
        hidden = [i for i, c in enumerate(cells) if c is None]
        if not hidden or (cells, total) in found:
            continue
        if total is not None:
            rest = total - sum(c for c in cells if c is not None)
            ranges = [range(0, rest + 1)] * len(hidden)
        else:
            ranges = [range(0, max_count + 9)] * len(hidden)
        values = [set() for _ in hidden]
        for candidate in itertools.product(*ranges):
            if total is not None and sum(candidate) != rest:
                continue
            full = list(cells)
            for i, v in zip(hidden, candidate, strict=True):
                full[i] = v
            if display(full) == (cells, total):
                for slot, v in zip(values, candidate, strict=True):
                    slot.add(v)
        assert all(counts[i] in slot for i, slot in zip(hidden, values, strict=True))
        found[(cells, total)] = [i for i, slot in zip(hidden, values, strict=True) if len(slot) < 2]
    return {key: bad for key, bad in found.items() if bad}


@pytest.mark.parametrize("n_cells,max_count", [(2, 12), (3, 10), (4, 8)])
def test_no_hidden_cell_is_ever_recoverable_brute_force(n_cells, max_count):
    """Every group of ``n_cells`` counts in 0..max_count published with its total (the 4 × 0..8 case is also the
    survival-block case: blocks' events with the group's events as total).  Every hidden cell, small or
    complementary, must keep at least two values among the vectors that are displayed identically."""
    assert _pinned_cells_1d(n_cells, max_count, _display) == {}


def test_the_1d_brute_force_catches_a_leaky_rule():
    """The brute force is sharp: the old rule (complement only when recoverable, chosen as the smallest cell)
    is caught.  Cells 5, 0, 1 with total 6: the old rule shows (None, 0, None), and only 5 + 1 gives that."""

    def smallest_rule(counts):
        hidden = {i for i, c in enumerate(counts) if 0 < c < THRESHOLD}
        total = sum(counts)
        if len(hidden) == 1 and total >= THRESHOLD:
            others = [(c, i) for i, c in enumerate(counts) if i not in hidden and c > 0]
            if others:
                hidden.add(min(others)[1])
        cells = tuple(None if i in hidden else c for i, c in enumerate(counts))
        return cells, (total if total >= THRESHOLD or total == 0 else None)

    assert _pinned_cells_1d(3, 6, smallest_rule)


# --------------------------------------------------------------------------- helpers of the group rule


def _primary(parts):
    return any(0 < p < THRESHOLD for p in parts)


@pytest.mark.parametrize("n_parts,max_part,max_m", [(1, 16, 4), (2, 12, 4), (3, 7, 3)])
def test_sum_of_primary_groups_matches_brute_force(n_parts, max_part, max_m):
    singles = [v for v in itertools.product(range(max_part + 1), repeat=n_parts) if _primary(v)]
    sums = {(0,) * n_parts}
    for m in range(max_m + 1):
        for w in itertools.product(range(max_part + 1), repeat=n_parts):
            assert (w in sums) == _sum_of_primaries(w, m), (w, m)
        sums = {
            tuple(a + b for a, b in zip(s, v, strict=True))
            for s in sums
            for v in singles
            if all(a + b <= max_part for a, b in zip(s, v, strict=True))
        }


def _pins_by_full_search(hidden, sums, public_parts):
    coordinates = [None, *(k for k, public in enumerate(public_parts) if public)]
    values = {c: set() for c in coordinates}
    for group in itertools.product(*(range(s + 1) for s in sums)):
        rest = tuple(s - g for s, g in zip(sums, group, strict=True))
        if _primary(group) and _sum_of_primaries(rest, hidden - 1):
            for c in coordinates:
                values[c].add(sum(group) if c is None else group[c])
    return hidden < 2 or any(len(v) < 2 for v in values.values())


@pytest.mark.parametrize("n_parts,max_sum,hiddens", [(2, 16, (1, 2, 3, 4)), (3, 6, (2, 3))])
def test_pinning_test_matches_a_full_search(n_parts, max_sum, hiddens):
    """``_pins`` searches witnesses on a lattice; it finds them whenever a full search does (checked offline
    also for two parts up to 60 and three up to 26, hidden 2–5)."""
    for hidden in hiddens:
        for sums in itertools.product(range(max_sum + 1), repeat=n_parts):
            for public in itertools.product((True, False), repeat=n_parts):
                if any(s and not p for s, p in zip(sums, public, strict=True)):
                    continue  # a part with a zero margin has zero hidden sum
                expected = _pins_by_full_search(hidden, sums, public)
                assert _pins(hidden, sums, public) == expected, (hidden, sums, public)


# --------------------------------------------------------------------------- exhaustive proof for groups


def _publish(rows, margins_published, hidden=None):
    """The grouped response (per group its parts, or None) and the margins if the ungrouped query shows them."""
    if hidden is None:
        hidden, _ = _hidden_groups(rows)
    margins = tuple(map(sum, zip(*rows, strict=True)))
    public = margins_published.get(margins)
    if public is None:  # the same statistic without group_by: one group, the same rule
        public = margins_published[margins] = not _hidden_groups([margins])[0][0]
    return tuple(None if h else r for r, h in zip(rows, hidden, strict=True)), margins if public else None


def _needed(margins, n_parts):
    """Coordinates (n, then each part) that must keep two values: all, except a part whose published margin is 0
    (then every group has 0 there and the reader knows it from the ungrouped query alone)."""
    return (True, *(margins is None or margins[k] > 0 for k in range(n_parts)))


def _coordinates(parts):
    return (sum(parts), *parts)


def _compositions(total, slots):
    """Every way to write ``total`` as ``slots`` ordered non-negative ints."""
    if slots == 1:
        yield (total,)
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, slots - 1):
            yield (first, *rest)


def _exact_candidates(key, universe_big, min_n):
    """Every table publishing ``key`` (shown groups fixed, hidden ones free), with no enumeration bound when the
    margins are published (the hidden groups split the published sums) and hidden groups from ``universe_big``
    when they are not."""
    cells, margins = key
    hidden = [i for i, c in enumerate(cells) if c is None]
    if margins is not None:
        n_parts = len(margins)
        rest = [margins[k] - sum(c[k] for c in cells if c is not None) for k in range(n_parts)]
        per_part = [list(_compositions(r, len(hidden))) for r in rest]
        options = (
            tuple(tuple(part[slot] for part in combo) for slot in range(len(hidden)))
            for combo in itertools.product(*per_part)
        )
    else:
        options = itertools.product(universe_big, repeat=len(hidden))
    margins_published = {}
    for option in options:
        if any(sum(parts) < min_n for parts in option):
            continue
        rows = list(cells)
        for i, parts in zip(hidden, option, strict=True):
            rows[i] = parts
        if _publish(rows, margins_published) == key:
            yield option


def _leaks(universe, k, universe_big, min_n):
    """Outputs (of tables of ``k`` groups from ``universe``) where a hidden group's n or a part has one value."""
    n_parts = len(universe[0])
    margins_published = {}
    seen = {}  # output -> [bitmask still needed, per hidden group: (coordinates in the first table, varied bits)]
    for prefix in itertools.product(universe, repeat=k - 1):
        for last in universe:
            rows = [*prefix, last]
            hidden, _ = _hidden_groups(rows)
            if not any(hidden):
                continue
            key = _publish(rows, margins_published, hidden)
            entry = seen.get(key)
            if entry is None:
                needed = _needed(key[1], n_parts)
                mask = sum(1 << bit for bit, need in enumerate(needed) if need)
                seen[key] = [mask, [[_coordinates(r), 0] for r, h in zip(rows, hidden, strict=True) if h]]
                continue
            mask, slots = entry
            if mask == 0:
                continue  # every hidden value of this output already has two values
            for slot, parts in zip(slots, (r for r, h in zip(rows, hidden, strict=True) if h), strict=True):
                if slot[1] & mask != mask:
                    for bit, (a, b) in enumerate(zip(slot[0], _coordinates(parts), strict=True)):
                        if a != b:
                            slot[1] |= 1 << bit
            if all(slot[1] & mask == mask for slot in slots):
                entry[0] = 0
    leaks = []
    for key, (mask, _slots) in seen.items():
        if mask == 0:
            continue
        # Pinned among the enumerated tables: maybe only because of the bound. Decide exactly.
        needed = _needed(key[1], n_parts)
        values = [[set() for _ in needed] for _ in _slots]
        for option in _exact_candidates(key, universe_big, min_n):
            for slot, parts in zip(values, option, strict=True):
                for coordinate, v in zip(slot, _coordinates(parts), strict=True):
                    coordinate.add(v)
            if all(len(c) > 1 for slot in values for c, need in zip(slot, needed, strict=True) if need):
                break
        else:
            leaks.append(key)
    return leaks, len(seen)


def _proportion_universe(max_n, min_n=1):
    return [(e, n - e) for n in range(min_n, max_n + 1) for e in range(n + 1)]


def test_no_hidden_group_is_recoverable_exhaustive_proportions():
    """Every table of 2 and of 3 proportion groups with n in 1..14 and events in 0..n (119 groups each: 14,161
    and 1,685,159 tables), grouped by what a reader sees: the grouped response (each group's n and events, or
    hidden) and the margins N, E when the ungrouped query publishes them.  For every output and every hidden
    group, its n, its events and its non-events must each take at least two values among the tables giving
    that output — except a part whose published margin is 0 (E = 0 or E = N), which the ungrouped query alone
    already gives away for every group.  Groups have n >= 1 (an empty group is not listed).

    Bound artifacts: the first pass uses only the enumerated tables as the reader's candidates.  That is a
    subset of what a real reader must consider (who does not know n <= 14), so "two values" found there holds
    for the real reader too.  An output that looks pinned may be an artifact (margins N = 28 force both n to be
    14 in the enumeration), so it is decided again exactly: with margins published, over every split of the
    published sums among the hidden groups (finite, no bound); without margins (no sum to bound them), with
    hidden groups of n up to 24.  Only outputs still pinned then are leaks.
    """
    started = time.perf_counter()
    big = _proportion_universe(14 + 2 * THRESHOLD)
    for k in (2, 3):
        leaks, outputs = _leaks(_proportion_universe(14), k, big, min_n=1)
        assert outputs > 0 and leaks == [], leaks[:5]
    assert time.perf_counter() - started < 30


def _cif_universe(max_n):
    return [(e, c, n - e - c) for n in range(max_n + 1) for e in range(n + 1) for c in range(n - e + 1)]


@pytest.mark.parametrize("k,max_n", [(2, 9), (3, 5)])
def test_no_hidden_group_is_recoverable_exhaustive_cumulative_incidence(k, max_n):
    """As for proportions, with three parts (events, competing events, the rest): every table of 2 groups with
    n in 0..9 (220 groups, 48,400 tables) and of 3 groups with n in 0..5 (56 groups, 175,616 tables).  Empty
    groups are included: cumulative incidence lists every group of rows, even one with no one at risk."""
    big = _cif_universe(max_n + 2 * THRESHOLD)
    leaks, outputs = _leaks(_cif_universe(max_n), k, big, min_n=0)
    assert outputs > 0 and leaks == [], leaks[:5]


def test_the_group_brute_force_catches_a_leaky_rule(monkeypatch):
    """The exhaustive check is sharp: without complementary hiding (only primary) it finds leaks at once."""
    monkeypatch.setattr(disclosure, "_pins", lambda *args: False)
    leaks, _ = _leaks(_proportion_universe(8), 2, _proportion_universe(18), min_n=1)
    assert leaks


def _km_table(block_events, censored=10):
    """A Kaplan-Meier table with ``block_events[k]`` events at day 30k + 15 and ``censored`` censored at the end."""
    n = sum(block_events) + censored
    rows, at_risk, survival = [], n, 1.0
    for k, events in enumerate(block_events):
        if events:
            survival *= 1 - events / at_risk
            rows.append({"day": 30 * k + 15, "at_risk": at_risk, "events": events, "survival": survival})
            at_risk -= events
    rows.append({"day": 30 * (len(block_events) - 1) + 20, "at_risk": at_risk, "events": 0, "survival": survival})
    return rows


def _survival_display(block_events):
    """What the reader sees of the block events: the events column and the group's events (None if the whole
    group, table included, is hidden)."""
    table = _km_table(list(block_events))
    group = {"group": "all", "n": table[0]["at_risk"], "events": sum(block_events)}
    [out] = disclosure.suppress_survival([dict(group, median_days=None, median_ci=None, table=table)])
    if out["suppressed"]:
        assert out["table"] == [] and out["events"] is None
        return None
    assert [r["day"] for r in out["table"]] == [30 * k for k in range(len(block_events) + 1)]
    return tuple(r["events"] for r in out["table"][1:]), out["events"]


@pytest.mark.parametrize("blocks,max_events", [(2, 8), (3, 8), (4, 8)])
def test_no_block_of_a_survival_table_is_recoverable_exhaustive(blocks, max_events):
    """Every survival table of 2–4 30-day blocks with 0..8 events each (and 10 censored at the end), through
    ``suppress_survival``: the group's events are published as the total of the events column, and every hidden
    block must keep two values among the tables with the same column and total.  Only the events column is
    compared: numbers at risk and survival also bound a block's events (see the limits in ``disclosure``)."""
    assert _pinned_cells_1d(blocks, max_events, _survival_display) == {}
