"""Completeness of follow-up: Clark's C.

Clark TG, Altman DG, De Stavola BL. Quantification of the completeness of
follow-up. *Lancet* 2002;359(9314):1309–1310.

The index is the ratio of the total observed person-time of follow-up to the
total potential person-time of follow-up, had every patient been followed to
death or to the end of the study::

    observed_i  = entry_i → date last known alive, or date of death
    potential_i = entry_i → date of death, if the death is known by the end of
                  the study; otherwise entry_i → end of the study
    C = Σ observed_i / Σ potential_i,          0 <= C <= 1

A patient who died (by the end of the study) has observed = potential; a patient
seen alive at the end of the study also has observed = potential; only patients
lost to follow-up before the end of the study lower C.

Conventions here (the "end of the study" is the data cut, ``cut``):

* Times are whole days, ``(later − earlier).days``; ``datetime`` values are
  reduced to their date.
* Patients who entered **after** the cut are excluded (they have no follow-up
  in this study); a patient entering **on** the cut is included with zero
  observed and zero potential time.
* A last-contact date after the cut is truncated at the cut.  A death after the
  cut is not "known by the end of the study": the patient counts as alive at the
  cut (observed = potential = cut − entry).  A death on the cut counts as a death.
* Zero total potential time (no patients, or all entered on the cut): C is
  undefined and ``c`` is ``None`` (the REST API shows ``null``, a PDF a dash),
  never 0 or 1.
* Invalid input raises ``ValueError``: a last-contact/death date before entry,
  a missing date, or ``died`` not a ``bool``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["FollowUpCompleteness", "clark_c", "clark_c_by"]

R = TypeVar("R")

FollowUpRow = tuple[_dt.date, _dt.date, bool]


@dataclass(frozen=True)
class FollowUpCompleteness:
    """Clark's C with its numerator and denominator.

    ``c`` -- observed / potential, or ``None`` when ``potential_days == 0``.
    ``observed_days`` / ``potential_days`` -- total person-days.
    ``patients`` -- number of patients included (entry on or before the cut).
    """

    c: float | None
    observed_days: int
    potential_days: int
    patients: int


def _as_date(value: Any, what: str) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    raise ValueError(f"{what} must be a date, got {value!r}")


def _patient_days(row: Iterable[Any], cut: _dt.date) -> tuple[int, int] | None:
    """(observed, potential) days for one patient, or ``None`` if entered after the cut."""
    entry, last, died = row
    entry = _as_date(entry, "entry date")
    last = _as_date(last, "last-known-alive / death date")
    if not isinstance(died, bool):
        raise ValueError(f"died must be a bool, got {died!r}")
    if last < entry:
        raise ValueError(f"last-known-alive / death date {last} is before entry {entry}")
    if entry > cut:
        return None
    if died and last <= cut:
        days = (last - entry).days
        return days, days
    # Alive, or died after the cut (not known by the end of the study).
    potential = (cut - entry).days
    observed = (min(last, cut) - entry).days
    return observed, potential


def _summarise(days: Iterable[tuple[int, int]]) -> FollowUpCompleteness:
    observed = potential = patients = 0
    for o, p in days:
        observed += o
        potential += p
        patients += 1
    c = observed / potential if potential > 0 else None
    return FollowUpCompleteness(c=c, observed_days=observed, potential_days=potential, patients=patients)


def clark_c(rows: Iterable[FollowUpRow], cut: _dt.date) -> FollowUpCompleteness:
    """Clark's C over all patients.

    ``rows`` -- ``(entry_date, last_known_alive_or_death_date, died)`` per patient.
    ``cut`` -- the end of the study (data cut).
    """
    cut = _as_date(cut, "cut")
    per_patient = (_patient_days(row, cut) for row in rows)
    return _summarise(d for d in per_patient if d is not None)


def _first_three(record: Any) -> FollowUpRow:
    return (record[0], record[1], record[2])


def clark_c_by(
    records: Iterable[R],
    cut: _dt.date,
    *,
    key: Callable[[R], Hashable],
    follow_up: Callable[[R], FollowUpRow] = _first_three,
) -> dict[Hashable, FollowUpCompleteness]:
    """Clark's C per group (e.g. per centre).

    ``key(record)`` gives the group; ``follow_up(record)`` gives the patient's
    ``(entry_date, last_known_alive_or_death_date, died)`` -- by default the
    record's first three items, so rows like ``(entry, last, died, centre)`` work
    with ``key=operator.itemgetter(3)``.

    Returns ``{group: FollowUpCompleteness}`` in order of first appearance.  A group
    whose every patient entered after the cut has no included patients and is
    left out (as those patients are left out of :func:`clark_c`).
    """
    cut = _as_date(cut, "cut")
    groups: dict[Hashable, list[tuple[int, int]]] = {}
    for record in records:
        days = _patient_days(follow_up(record), cut)
        if days is not None:
            groups.setdefault(key(record), []).append(days)
    return {group: _summarise(days) for group, days in groups.items()}
