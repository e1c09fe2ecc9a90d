"""Small-cell suppression for counts shown to non-coordinators.

Rule (``shared/domain/STATISTICS.md``, "Small cells"): counts of 1 to
``threshold − 1`` (1–4 by default) are suppressed (shown as ``null`` with a
flag), together with any other cell from which they could be recovered (a
total minus the others).  Zero is not suppressed.

Data structure
--------------
Input ``cells`` is one *group*: the categories that add up to one total, as a
mapping ``{key: count}`` or an iterable of ``(key, count)`` pairs (order kept).
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
can give the small one away (e.g. cells 0, 1, 5 with total 6: a reader who knows
the second suppressed cell is complementary, so >= 5, gets 1 and 5 back).

Steps
-----
1. Primary: every cell with ``0 < count < threshold`` → ``"small"``; a
   shown total with ``0 < total < threshold`` is suppressed too.
2. Complementary (only when the total is shown): while the suppressed cells
   could be recovered from ``total − shown cells`` — i.e. exactly one cell is
   suppressed, or every suppressed cell is a small one and their known sum
   forces the values (all 1s, or all ``threshold − 1``) — suppress the
   smallest non-zero shown cell.  If several shown cells tie for smallest,
   all of them are suppressed: choosing one by position would tell a reader
   that the hidden one is no larger than its shown twin, which with the total
   can give the small cell away (found by brute force: cells 5, 5, 3 / total 13).
   If no non-zero cell is left, suppress the total instead.

Tested by brute force (``tests/test_statistics_suppression.py``): for every
group of 2 cells of 0–12, 3 cells of 0–10 and 4 cells of 0–5 (checked once
offline also for 3 cells of 0–14, 4 of 0–7 and 5 of 0–5), a reader who knows this
algorithm and sees only counts, flags and the total cannot pin down any small cell.

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

    def recoverable() -> bool:
        suppressed = [i for i, r in enumerate(reasons) if r]
        if total is None or total_reason or not suppressed:
            return False
        if len(suppressed) == 1:
            return True
        if all(reasons[i] == REASON_SMALL for i in suppressed):
            k = len(suppressed)
            known_sum = total - sum(c for i, (_, c) in enumerate(pairs) if not reasons[i])
            return known_sum in (k, k * (threshold - 1))
        return False

    while recoverable():
        candidates = [(c, i) for i, (_, c) in enumerate(pairs) if not reasons[i] and c > 0]
        if candidates:
            smallest = min(c for c, _ in candidates)
            for c, idx in candidates:
                if c == smallest:
                    reasons[idx] = REASON_COMPLEMENTARY
        else:
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
