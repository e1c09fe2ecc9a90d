"""Small-cell suppression for counts shown to non-coordinators.

Rule (``shared/domain/STATISTICS.md``, "Small cells"): counts of 1 to
``threshold − 1`` (1–4 by default) are suppressed (shown as ``null`` with a
flag), together with any other cell from which they could be recovered (a
total minus the others).  Zero is not suppressed.  Which cells are hidden must
not depend on the hidden values: complementary cells are chosen by a rule that
reads only what stays published.

Data structure
--------------
Input ``cells`` is one *group*: the categories that add up to one total, as a
mapping ``{key: count}`` or an iterable of ``(key, count)`` pairs (order kept;
the order must be one every reader knows, e.g. the vocabulary or time order).
Pass ``total`` (an int) when the group's total is published next to the cells;
``None`` means no total is shown.  The cells must then add up to the total
(include an "unknown"/"other" cell if needed; ``ValueError`` otherwise), because
suppression reasons about ``total − shown cells``.  Cells that do not partition
a total (e.g. complication types, where a patient may have several or none)
are separate groups with no total.

Output::

    {
        "cells": [{"key": k, "count": int | None, "suppressed": bool}, ...],
        "total": {"count": int | None, "suppressed": bool} | None,
        "threshold": 5,
    }

With ``include_reasons=True`` each cell and the total also carry ``"reason"``:
``None``, ``"small"`` or ``"complementary"``.  Do **not** show reasons to
non-coordinators: telling a complementary cell (>= threshold) from a small one
can give the small one away.

Steps
-----
1. Primary: every cell with ``0 < count < threshold`` → ``"small"``; a shown
   total with ``0 < total < threshold`` is suppressed too (then no sum is
   published and nothing more is needed).
2. Complementary, only when the total is shown and some cell is hidden:

   a. **Always** hide one more cell, whatever the values: the *next* non-zero
      shown cell after the first hidden cell, in the cells' order, wrapping
      around.  (Zero cells stay shown, so skipping them reads only published
      values.)
   b. With ``h`` cells hidden and ``S = total − shown cells`` (both published),
      if ``S == (h − 1) + threshold`` — the one corner where "``h − 1`` small
      cells and one complement" forces every value (all small cells 1, the
      complement ``threshold``) — hide one more cell by the same rule.  This
      happens at most once: after it ``S >= (h − 1) + threshold + 1``.
   c. If (a) or (b) finds no non-zero shown cell, the total is suppressed.

Why no hidden cell can be pinned down (a reader who knows this algorithm and
sees the counts, flags and total)
-----------------------------------------------------------------------------
Let the published outcome have ``h`` hidden cells, sum ``S``, total shown.  The
hidden cells are the primary set ``P`` plus one or two complements.  Write the
last complement as ``x`` and ``Q = H − {x}`` (``P``, or ``P`` plus the first
complement).  Every table that differs from the true one only inside ``H``,
with each cell of ``Q`` in ``1..threshold−1``, ``x >= threshold`` and the same
``S``, is published identically: its primary set is ``Q``; step (a) picks the
same ``x`` (the rule reads the positions of ``Q`` and the unchanged shown
cells); step (b) tests the same published ``(h, S)`` and stops, as it did for
the true table.  Step (b) guarantees ``S >= (h − 1) + threshold + 1``, so ``Q``
can add up to ``h − 1`` or to ``h`` (all 1s, or one 2), and every hidden cell
takes at least two values.  When the total is suppressed no sum is published
and ``H`` is consistent with every value of its small cells.  (The argument
needs ``threshold >= 3``: with threshold 2 a small cell can only be 1.)  The
choice never looks at a hidden value, unlike "the smallest other cell", whose
choice tells the reader that the complement is no larger than the cells left
shown.

Tested by brute force (``tests/test_statistics_suppression.py``): every group
of 2 cells of 0–12, 3 cells of 0–10 and 4 cells of 0–8 with its total; for each
outcome the reader's set of consistent tables gives every hidden cell at least
two values.

This protects one-dimensional groups.  A two-way table with both row and
column totals needs each row and each column passed as its own group, and a
final check that the choices agree; that is not done here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["REASON_SMALL", "REASON_COMPLEMENTARY", "suppress_small_counts"]

REASON_SMALL = "small"
REASON_COMPLEMENTARY = "complementary"


def _as_pairs(cells) -> list[tuple]:
    if isinstance(cells, Mapping):
        pairs = list(cells.items())
    elif isinstance(cells, Iterable):
        pairs = [tuple(c) for c in cells]
    else:
        raise TypeError("cells must be a mapping or an iterable of (key, count) pairs")
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("cell keys must be unique")
    for key, count in pairs:
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count for {key!r} must be a non-negative int, got {count!r}")
    return pairs


def _is_small(count: int, threshold: int) -> bool:
    return 0 < count < threshold


def suppress_small_counts(cells, total: int | None = None, threshold: int = 5, include_reasons: bool = False) -> dict:
    """Suppress small counts in one group of cells; see the module docstring."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError("threshold must be a positive int")
    pairs = _as_pairs(cells)
    if total is not None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError("total must be a non-negative int or None")
        if sum(c for _, c in pairs) != total:
            raise ValueError("the cells must add up to the total (add an 'other'/'unknown' cell)")

    reasons: list[str | None] = [REASON_SMALL if _is_small(c, threshold) else None for _, c in pairs]
    total_reason: str | None = None
    if total is not None and _is_small(total, threshold):
        total_reason = REASON_SMALL

    def hide_next() -> bool:
        """Hide the next non-zero shown cell after the first hidden one (cyclic); False if there is none."""
        first = next(i for i, r in enumerate(reasons) if r)
        for step in range(1, len(pairs)):
            index = (first + step) % len(pairs)
            if not reasons[index] and pairs[index][1] > 0:
                reasons[index] = REASON_COMPLEMENTARY
                return True
        return False

    if total is not None and not total_reason and any(reasons):
        if not hide_next():
            total_reason = REASON_COMPLEMENTARY
        else:
            hidden = sum(1 for r in reasons if r)
            hidden_sum = total - sum(c for (_, c), r in zip(pairs, reasons, strict=True) if not r)
            if hidden_sum == hidden - 1 + threshold and not hide_next():
                total_reason = REASON_COMPLEMENTARY

    out_cells = []
    for (key, count), reason in zip(pairs, reasons, strict=True):
        cell = {"key": key, "count": None if reason else count, "suppressed": bool(reason)}
        if include_reasons:
            cell["reason"] = reason
        out_cells.append(cell)
    out_total = None
    if total is not None:
        out_total = {"count": None if total_reason else total, "suppressed": bool(total_reason)}
        if include_reasons:
            out_total["reason"] = total_reason
    return {"cells": out_cells, "total": out_total, "threshold": threshold}
