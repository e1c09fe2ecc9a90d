"""Small-cell suppression of statistics for people who are not the coordinator.

STATISTICS.md, "Small cells": counts of 1 to ``THRESHOLD − 1`` (1–4) are
hidden, together with anything they could be recovered from, and which cells
are hidden must not depend on the hidden values.

What a reader sees
------------------
A statistic is a list of groups in a public order (centre code, indication,
band order).  Each group rests on a few counts that add up to its size ``n``,
its *parts*:

* proportions (complications, pump use, conversion): events ``e`` and
  non-events ``n − e``;
* cumulative incidence: events, competing events and the rest;
* survival: events and censored ``n − events``.

The same statistic asked without ``group_by`` is one group "all" under the same
rule, so it publishes the *margins* (``N`` and the summed parts) exactly when
they are not small themselves.

Rule
----
1. **Primary.** A group is hidden as a unit — its ``n``, every part, and every
   figure built on them (rate, interval, estimate, median, curve) — when any
   part is in ``1..THRESHOLD−1`` (a small ``n`` makes some part small, so it is
   included).  Zero is not suppressed.
2. **Complementary**, only when the margins are published.  With ``h`` groups
   hidden, the reader knows ``h`` and the hidden groups' summed parts
   ``S = margins − shown groups``.  While those published values *pin* a
   hidden value (see below), hide one more group: the next shown group after
   the first hidden one in the response order, wrapping around.  Stop when
   ``S`` no longer pins, or when every group is hidden.

   ``S`` *pins* when, among all ways to split ``S`` into ``h`` groups that are
   each primary, some coordinate — ``n`` or a part — of a hidden group has
   only one possible value (or there is no such split).  A part whose margin
   is 0 is public (it is 0 in every group) and is not counted.  The test reads
   only ``h``, ``S`` and the margins, all published.  Examples: ``h = 1`` always
   pins; hidden sizes adding up to ``h`` (all 1) pin; hidden events adding up
   to 0 while the margin has events pin (every hidden group has 0).

Why a hidden value cannot be recovered
--------------------------------------
Take any table and its published output, with margins shown and the loop
stopped because ``S`` does not pin.  Replace the hidden groups by *any* split
of ``S`` into ``h`` primary groups, keeping the shown groups.  That table is
published identically: its primary set is exactly the hidden set (shown groups
are unchanged and not primary), the margins are the same, and the first
pinning test sees the same ``(h, S)`` that stopped the loop before, so it adds
nothing.  The reader therefore cannot tell the true table from any of these
splits, and by the stopping condition every coordinate of every hidden group
takes at least two values among them.  Nothing in the choice of complements
reads a hidden value (the old rule, "the smallest other group", told the
reader that the complement was no larger than the groups left shown).  When
the margins are not published no sum is known.  When every group is hidden the
output is the margins alone.  The exhaustive tests in
``tests/test_statistics_suppression.py`` check these cases too: every table of
2 and 3 groups of sizes 1–14 (and cumulative incidence at a smaller size)
gives no hidden ``n`` or part a single consistent value.

Survival tables (``suppress_survival``) are coarsened to 30-day blocks (see
``_coarsen``) and their block events are suppressed with
``statistics.suppress_small_counts`` against the group's published events.  A
group whose blocks cannot be protected that way (the 1-D rule would have to
hide the total) is hidden whole and counts as primary above; the argument is
unchanged, since the splits it uses are primary groups anyway.

Limits (not handled here)
-------------------------
* Each statistic is protected on its own.  Group sizes ``n`` are also
  published by other statistics of the same groups (another complication type,
  pump use), and two groupings of the same rows are a two-way table; a reader
  who combines responses has more equations than this rule accounts for.
* In a survival table, the survival at consecutive block ends and the numbers
  at risk bound a block's events (``at_risk(k) − at_risk(k+1) >= events(k)``)
  even where the events are hidden; block suppression only removes the
  "group events minus shown blocks" route.
"""

import functools
import itertools
import math

from .statistics import suppress_small_counts

THRESHOLD = 5
SURVIVAL_TABLE_STEP_DAYS = 30


def _is_small(count, threshold=THRESHOLD):
    return 0 < count < threshold


def _primary(parts, threshold=THRESHOLD):
    """A group is hidden on its own when any of its parts (and so also when its size) is 1..threshold-1."""
    for part in parts:
        if 0 < part < threshold:
            return True
    return False


def _sum_of_primaries(parts, m, threshold=THRESHOLD):
    """Whether ``parts`` is the sum of ``m`` primary groups (each of size >= 1).

    ``m >= 2``: every total of at least ``m`` with two non-zero parts works
    (one group small in the first part, one small in the second, the rest
    units); with a single non-zero part each group must be small in it, so the
    total is at most ``(threshold − 1) · m``.
    """
    total = sum(parts)
    if m == 0:
        return total == 0
    if m == 1:
        return _primary(parts, threshold)
    if total < m:
        return False
    return sum(1 for p in parts if p) >= 2 or total <= (threshold - 1) * m


def _candidate_values(total, threshold):
    """Values of one part of one hidden group searched for witnesses: near 0, near the total, and the middle."""
    reach = 2 * threshold
    return sorted({*range(min(total, reach) + 1), *range(max(0, total - reach), total + 1), total // 2})


@functools.lru_cache(maxsize=16384)
def _pins(hidden, sums, public_parts, threshold=THRESHOLD):
    """Whether ``hidden`` primary groups adding up to ``sums`` leave a coordinate with one possible value.

    Coordinates: the group size, and each part whose margin is not 0
    (``public_parts[k]`` is False when every group has 0 in part ``k``).  By
    symmetry it is enough to look at one hidden group.  Witnesses are searched
    on a lattice of values per part; a value found is checked exactly, so a
    missed witness can only make this answer "pins" (hide more), never "safe".
    """
    if hidden < 2:
        return True
    coordinates = [None, *(k for k, public in enumerate(public_parts) if public)]
    seen, varied = {}, set()
    for group in itertools.product(*(_candidate_values(s, threshold) for s in sums)):
        if not _primary(group, threshold):
            continue
        rest = tuple(s - g for s, g in zip(sums, group, strict=True))
        if not _sum_of_primaries(rest, hidden - 1, threshold):
            continue
        for coordinate in coordinates:
            value = sum(group) if coordinate is None else group[coordinate]
            if seen.setdefault(coordinate, value) != value:
                varied.add(coordinate)
        if len(varied) == len(coordinates):
            return False
    return True


def _next_shown(hidden):
    """The next shown group after the first hidden one, wrapping around (None if all are hidden)."""
    first = hidden.index(True)
    for step in range(1, len(hidden)):
        index = (first + step) % len(hidden)
        if not hidden[index]:
            return index
    return None


def _hidden_groups(rows, forced=None, threshold=THRESHOLD):
    """The rule of the module docstring on ``rows`` (one tuple of non-negative parts per group, in response order).

    ``forced`` marks groups hidden for a reason of their own (treated as
    primary).  Returns ``(hidden flags, margins published)``.
    """
    hidden = [_primary(parts, threshold) for parts in rows]
    if forced:
        hidden = [h or bool(f) for h, f in zip(hidden, forced, strict=True)]
    if not rows:
        return hidden, True
    margins = tuple(map(sum, zip(*rows, strict=True)))
    published = not _primary(margins, threshold)
    if published and any(hidden):
        public_parts = tuple(m > 0 for m in margins)
        while not all(hidden):
            hidden_rows = [parts for parts, h in zip(rows, hidden, strict=True) if h]
            sums = tuple(map(sum, zip(*hidden_rows, strict=True)))
            if not _pins(len(hidden_rows), sums, public_parts, threshold):
                break
            hidden[_next_shown(hidden)] = True
    return hidden, published


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def _hide_groups(groups, rows, forced=None):
    hidden, _ = _hidden_groups(rows, forced)
    out = []
    for group, is_hidden in zip(groups, hidden, strict=True):
        group = dict(group)
        if is_hidden:
            group = {key: (value if key == "group" else None) for key, value in group.items()}
        group["suppressed"] = is_hidden
        out.append(group)
    return out


def suppress_proportions(groups, numerator, denominator="implantations", derived=("rate", "ci")):
    """Complication, pump-use and conversion groups: see the module docstring.

    A hidden group keeps only its ``group`` label: the denominator, the
    numerator, ``derived`` and any other figure (e.g. the median days to the
    first dose) become ``None``.
    """
    rows = []
    for group in groups:
        n, e = _count(group[denominator], denominator), _count(group[numerator], numerator)
        if e > n:
            raise ValueError(f"{numerator} ({e}) exceeds {denominator} ({n})")
        rows.append((e, n - e))
    out = _hide_groups(groups, rows)
    for group in out:
        if group["suppressed"]:
            group.update(dict.fromkeys((denominator, numerator, *derived)))
    return out


def suppress_cumulative_incidence(groups, estimate="estimate"):
    """Cumulative incidence groups ``{"group", "implantations", "events", "competing_events", "estimate", "ci"}``.

    The parts are events, competing events and the rest (neither yet); a
    hidden group keeps only its label.  ``estimate`` names the estimate's field
    (``"rate"`` where the API shows the incidence as a complication rate).
    Groups may be empty (``implantations`` 0): they are shown, like any zero.
    """
    rows = []
    for group in groups:
        n = _count(group["implantations"], "implantations")
        e = _count(group["events"], "events")
        c = _count(group["competing_events"], "competing_events")
        if e + c > n:
            raise ValueError("events + competing_events exceed implantations")
        rows.append((e, c, n - e - c))
    out = _hide_groups(groups, rows)
    for group in out:
        if group["suppressed"]:
            group.update(dict.fromkeys(("implantations", "events", "competing_events", estimate, "ci")))
    return out


# --------------------------------------------------------------------------- survival


def _blocks(table):
    """Kaplan-Meier table (one row per distinct time) → 30-day blocks, before any suppression.

    Block ``k`` (``k = 1, 2, …``) covers days ``(30(k−1), 30k]`` (the first one
    also day 0) and is published as the row labelled with its END, ``day =
    30k``: ``survival`` is the table's value at that day (the step function
    after the block's events; Kaplan-Meier, or 1 − Aalen-Johansen for pump
    failure), ``at_risk`` the number at risk at the start of the block (the
    risk set at the first time after day ``30(k−1)``, or at the first time for
    the first block: ``n`` unless entry is delayed) and ``events`` the block's
    events.  A first row ``day 0`` (``survival`` 1, ``at_risk`` as the first
    block's, no events) is the origin.  Blocks run until the last observed time.
    """
    if not table:
        return []
    step = SURVIVAL_TABLE_STEP_DAYS
    count = max(1, math.ceil(table[-1]["day"] / step))
    rows = [{"day": 0, "at_risk": table[0]["at_risk"], "events": 0, "survival": 1.0}]
    index, survival = 0, 1.0
    for k in range(1, count + 1):
        end = k * step
        at_risk = table[0]["at_risk"] if k == 1 else (table[index]["at_risk"] if index < len(table) else 0)
        events = 0
        while index < len(table) and table[index]["day"] <= end:
            events += table[index]["events"]
            survival = table[index]["survival"]
            index += 1
        rows.append({"day": end, "at_risk": at_risk, "events": events, "survival": survival})
    return rows


def _coarsen(table):
    """The published 30-day table of a shown group, or ``None`` if its block events cannot be protected.

    Numbers at risk of 1-4 are hidden.  Block events add up to the group's
    published events, so they are one group of cells with a shown total for
    ``suppress_small_counts`` (small blocks, and complementary blocks chosen by
    a fixed rule in time order).  If that would have to hide the total, the
    caller hides the whole group instead.
    """
    rows = _blocks(table)
    if not rows:
        return []
    blocks = rows[1:]
    outcome = suppress_small_counts(
        [(index, r["events"]) for index, r in enumerate(blocks)],
        total=sum(r["events"] for r in blocks),
        threshold=THRESHOLD,
    )
    if outcome["total"]["suppressed"]:
        return None
    for row, cell in zip(blocks, outcome["cells"], strict=True):
        row["events"] = cell["count"]
    for row in rows:
        if _is_small(row["at_risk"]):
            row["at_risk"] = None
    return rows


def suppress_survival(groups):
    """Survival groups: hidden as a unit like proportions (parts: events and censored); shown ones are coarsened."""
    rows, coarse = [], []
    for group in groups:
        n, events = _count(group["n"], "n"), _count(group["events"], "events")
        if events > n:
            raise ValueError("events exceed n")
        rows.append((events, n - events))
        coarse.append(_coarsen(group["table"]))
    out = _hide_groups(groups, rows, forced=[table is None for table in coarse])
    for group, table in zip(out, coarse, strict=True):
        if group["suppressed"]:
            group.update(n=None, events=None, median_days=None, median_ci=None, table=[])
        else:
            group["table"] = table
    return out
