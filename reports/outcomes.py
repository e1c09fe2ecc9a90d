"""The registry's outcome definitions: what counts as an event, over which implantations, from when.

One place for each definition. The statistics API (``api.stats`` through
``reports.benchmarks``), the monthly report (``reports.rendering``) and the
analysis dataset all take their events, denominators and time origins from here;
the estimators are in ``reports.statistics``.

Every definition states its published source, its denominator and its time origin
(``Outcome.source``, ``.denominator``, ``.origin``); the report's Methods section
prints them from ``METHODS``.

Times are whole days from the origin. An event on day d is at time d. A subject
is at risk at time t when entry < t <= exit (the counting-process convention of
R's ``Surv(tstart, tstop, event)``); a subject who enters on day e (the later of
the origin and registry consent) gets entry e − 0.5, so an event on their day of
entry counts, and one who enters at the origin gets −0.5, so an event on day 0
(a complication found during the operation) counts too. A subject whose follow-up
ended before their entry (consent after death or after the last contact) was never
at risk and is left out.

Competing events: a complication and a competing event on the same day count as
the complication (it happened; the competing event did not come first).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from registry.vocabulary import ComplicationCategory

CENSORED, EVENT, COMPETING = 0, 1, 2

# Fixed windows and cut points: set by the method version, not by the reader, so no two
# published figures differ by one patient (reports.disclosure; issue 8, "no free cut points").
WINDOWS_DAYS = (30, 90, 180, 365, 730)
TECHNICAL_WINDOWS_DAYS = (90, 365)
TOXICITY_WINDOW_DAYS = 365
MORTALITY_WINDOW_DAYS = 90
EXPERIENCE_THRESHOLD = 25  # pumps placed *before* this one; brief 002_…: fewer complications after 25
SURGEON_VOLUME_BANDS = (5, 15)
CENTRE_VOLUME_BANDS = (20, 60)

ANY_COMPLICATION = "any"
CATHETER_RELATED = "catheter_related"
PUMP_FAILURE = "pump_failure"
CATEGORIES = tuple(ComplicationCategory.values)

ENTRY_OFFSET = 0.5

SOURCE_COMPETING_RISKS = (
    "Aalen-Johansen cumulative incidence with competing events (Putter, Fiocco & Geskus, Stat Med "
    "2007;26:2389; R survival's multi-state survfit), 95% interval from the infinitesimal-jackknife standard "
    "error on the log scale, F·exp(±1.96·se/F), as R's survfit"
)
SOURCE_DELAYED_ENTRY = "left truncation at registry entry (Klein & Moeschberger, Survival Analysis, 2003, §4.6)"
SOURCE_SEVERITY = (
    "Clavien-Dindo >= IIIa where recorded (Dindo et al., Ann Surg 2004;240:205), otherwise CTCAE grade >= 3"
)
SOURCE_CONSENSUS = "Expert consensus on HAI (shared/domain/seeds/002_…), section 4: every implantation, treated or not"


@dataclass(frozen=True)
class Subject:
    """One subject of an analysis: entry and exit in days from the origin, and how follow-up ended."""

    row: object  # the CohortRow it came from (its group is read from it)
    entry: float
    exit: float
    status: int  # CENSORED, EVENT or COMPETING


def _days(later: datetime.date, origin: datetime.date) -> int:
    return (later - origin).days


def _first(*dates):
    present = [d for d in dates if d is not None]
    return min(present) if present else None


def _subject(row, origin_on, entry_on, event_on, competing_on, last_seen_on):
    """Build a Subject from dates; None when the subject was never at risk."""
    censor_on = max(last_seen_on or origin_on, origin_on)
    if event_on is not None and event_on < origin_on:
        event_on = None  # before the origin: not this outcome (e.g. a toxicity before any dose)
    if competing_on is not None and competing_on < origin_on:
        competing_on = origin_on
    if event_on is not None and (competing_on is None or event_on <= competing_on):
        exit_on, status = event_on, EVENT
    elif competing_on is not None:
        exit_on, status = competing_on, COMPETING
    else:
        exit_on, status = censor_on, CENSORED
    if status == CENSORED and exit_on < origin_on:
        exit_on = origin_on
    entry = max(_days(entry_on, origin_on), 0) - ENTRY_OFFSET
    exit_ = _days(exit_on, origin_on)
    if exit_ <= entry:
        return None
    return Subject(row, entry, float(exit_), status)


@dataclass(frozen=True)
class Outcome:
    """A definition: its code, what it means, its source, denominator and time origin."""

    code: str
    label: str
    source: str
    denominator: str
    origin: str
    competing: str

    def subjects(self, rows) -> list[Subject]:
        raise NotImplementedError


@dataclass(frozen=True)
class ComplicationOutcome(Outcome):
    """A complication (one type, a category, or any), as a cumulative incidence within a window.

    Technical and 'other' complications: every implantation, from implantation; death and
    any end of pump use compete (technical) or death competes (other). Toxicities: implantations
    that delivered at least one dose, from the first dose; death competes.
    """

    codes: frozenset = frozenset()
    from_first_dose: bool = False
    ended_use_competes: bool = False
    severe_only: bool = False

    def subjects(self, rows):
        out = []
        for row in rows:
            if self.from_first_dose and row.first_dose_on is None:
                continue
            origin_on = row.first_dose_on if self.from_first_dose else row.implanted_on
            onsets = row.severe_complications if self.severe_only else row.complications
            event_on = _first(*(onsets.get(code) for code in self.codes))
            if self.from_first_dose and event_on is not None and event_on < origin_on:
                # The earliest onset came before any dose; a later one of the same type is not recorded
                # separately, so the row is left out rather than counted as free of toxicity.
                continue
            competing_on = row.died_on
            if self.ended_use_competes:
                competing_on = _first(row.died_on, row.pump_use_ended_on, row.pump_failure_on)
            subject = _subject(row, origin_on, max(row.entered_on, origin_on), event_on, competing_on, _last_seen(row))
            if subject is not None:
                out.append(subject)
        return out


def _last_seen(row):
    return _first(row.died_on, row.last_contact_on) if row.died_on else row.last_contact_on


@dataclass(frozen=True)
class PumpFailureOutcome(Outcome):
    def subjects(self, rows):
        out = []
        for row in rows:
            competing_on = _first(row.died_on, row.pump_use_ended_on)
            subject = _subject(
                row, row.implanted_on, row.entered_on, row.pump_failure_on, competing_on, _last_seen(row)
            )
            if subject is not None:
                out.append(subject)
        return out


def _first_of_patient_key(row):
    # Earliest first; on one day the pump that replaces none before a same-day replacement; then entry order.
    return (row.implanted_on, getattr(row, "replaces_id", None) is not None, row.id)


def first_of_each_patient(rows):
    """One row per patient, the patient's first implantation (the start of its chain of replacement pumps).

    Patient-level outcomes (overall and hepatic progression-free survival) count a patient once: a replacement
    pump (``replaces_id`` set), even a same-day one, never adds the patient a second time. In ``rows``' order
    of patients' first appearance.
    """
    firsts = {}
    for row in rows:
        current = firsts.get(row.patient_id)
        if current is None or _first_of_patient_key(row) < _first_of_patient_key(current):
            firsts[row.patient_id] = row
    return list(firsts.values())


@dataclass(frozen=True)
class DeathOutcome(Outcome):
    """Death from any cause. Per implantation (90-day mortality) or per patient from the first implantation."""

    per_patient: bool = False
    with_hepatic_progression: bool = False

    def subjects(self, rows):
        if not self.per_patient:
            return [
                s
                for s in (
                    _subject(row, row.implanted_on, row.entered_on, row.died_on, None, _last_seen(row)) for row in rows
                )
                if s is not None
            ]
        by_patient = {}
        for row in rows:
            by_patient.setdefault(row.patient_id, []).append(row)
        out = []
        for patient_rows in by_patient.values():
            (first,) = first_of_each_patient(patient_rows)
            last_seen = max((r.last_contact_on for r in patient_rows if r.last_contact_on), default=None)
            died_on = first.died_on  # a death is the patient's: every row carries it
            event_on = died_on
            if self.with_hepatic_progression:
                event_on = _first(died_on, *(r.hepatic_progression_on for r in patient_rows))
            last_seen = _first(died_on, last_seen) if died_on else last_seen
            subject = _subject(first, first.implanted_on, first.entered_on, event_on, None, last_seen)
            if subject is not None:
                out.append(subject)
        return out


def complication_outcome(codes, categories, *, label, category=None, severe_only=False):
    """The outcome for a set of complication type codes.

    ``categories`` maps type code -> category. All-toxicity sets are timed from the first
    dose over treated implantations; sets with a technical type let any end of pump use
    compete (a pump that is gone has no more device complications).
    """
    codes = frozenset(codes)
    kinds = {categories.get(code, ComplicationCategory.OTHER) for code in codes} or {ComplicationCategory.OTHER}
    toxicity = kinds == {ComplicationCategory.TOXICITY}
    technical = kinds == {ComplicationCategory.TECHNICAL}
    if toxicity:
        denominator, origin, competing = "implantations that delivered at least one dose", "first HAI dose", "death"
    elif technical:
        denominator, origin = "all implantations (intention to treat)", "implantation"
        competing = "death, or the pump's use ending for another reason"
    else:
        denominator, origin, competing = "all implantations (intention to treat)", "implantation", "death"
    return ComplicationOutcome(
        code=category or (next(iter(codes)) if len(codes) == 1 else ANY_COMPLICATION),
        label=label,
        source=f"{SOURCE_COMPETING_RISKS}; {SOURCE_DELAYED_ENTRY}"
        + (f"; severe: {SOURCE_SEVERITY}" if severe_only else ""),
        denominator=denominator,
        origin=origin,
        competing=competing,
        codes=codes,
        from_first_dose=toxicity,
        ended_use_competes=technical,
        severe_only=severe_only,
    )


def event_outcome(event, complication_types, *, severe_only=False):
    """The outcome named by ``event``: a type code, a category code, 'catheter_related', 'any' or 'pump_failure'.

    ``complication_types`` is the vocabulary: dicts with ``code``, ``name``, ``category`` and
    ``catheter_related`` (as the snapshot stores it). Raises KeyError for an unknown name.
    """
    if event == PUMP_FAILURE:
        return PUMP_FAILURE_OUTCOME
    categories = {t["code"]: t.get("category") or ComplicationCategory.OTHER for t in complication_types}
    names = {t["code"]: t["name"] for t in complication_types}
    if event in CATEGORIES:
        codes = {code for code, category in categories.items() if category == event}
        label = f"{ComplicationCategory(event).label.split(' (')[0]} complication"
        return complication_outcome(codes, categories, label=label, category=event, severe_only=severe_only)
    if event == CATHETER_RELATED:
        codes = {t["code"] for t in complication_types if t.get("catheter_related")}
        return complication_outcome(
            codes, categories, label="Catheter-related complication", category=CATHETER_RELATED, severe_only=severe_only
        )
    if event == ANY_COMPLICATION:
        return complication_outcome(
            set(categories), categories, label="Any complication", category=ANY_COMPLICATION, severe_only=severe_only
        )
    if event not in names:
        raise KeyError(event)
    return complication_outcome({event}, categories, label=names[event], severe_only=severe_only)


PUMP_FAILURE_OUTCOME = PumpFailureOutcome(
    code=PUMP_FAILURE,
    label="Pump failure",
    source=f"{SOURCE_COMPETING_RISKS}; {SOURCE_DELAYED_ENTRY}",
    denominator="all implantations (intention to treat)",
    origin="implantation",
    competing="death, and every end of use not caused by a technical complication (completion, resection, "
    "progression, toxicity, patient choice, other)",
)
MORTALITY_90_DAYS = DeathOutcome(
    code="mortality_90_days",
    label="90-day mortality",
    source=f"1 − Kaplan-Meier survival at day 90 (Kaplan & Meier, JASA 1958;53:457); {SOURCE_DELAYED_ENTRY}",
    denominator="all implantations (intention to treat)",
    origin="implantation",
    competing="none (death from any cause)",
)
OVERALL_SURVIVAL = DeathOutcome(
    code="overall",
    label="Overall survival",
    source=f"Kaplan-Meier (STATISTICS.md, Survival); {SOURCE_DELAYED_ENTRY}",
    denominator="patients",
    origin="the patient's first implantation",
    competing="none (death from any cause); censored at the last follow-up contact",
    per_patient=True,
)
HEPATIC_PROGRESSION_FREE_SURVIVAL = DeathOutcome(
    code="hepatic_progression",
    label="Hepatic progression-free survival",
    source=f"Kaplan-Meier; hepatic progression or death, whichever comes first (STATISTICS.md); {SOURCE_DELAYED_ENTRY}",
    denominator="patients",
    origin="the patient's first implantation",
    competing="none (progression or death is the event); censored at the last follow-up contact",
    per_patient=True,
    with_hepatic_progression=True,
)
SURVIVAL_OUTCOMES = {o.code: o for o in (OVERALL_SURVIVAL, HEPATIC_PROGRESSION_FREE_SURVIVAL)}


def experienced(row, threshold=EXPERIENCE_THRESHOLD):
    """At least ``threshold`` pumps placed before this one, so this pump is number threshold + 1 or later."""
    return row.pumps_before >= threshold


SURGEON_EXPERIENCE = {
    "code": "surgeon_experience",
    "label": "Surgeon experience at the implantation",
    "source": "Brief 002_… (fewer complications once a surgeon has placed >= 25 pumps)",
    "definition": (
        "Pumps the surgeon placed before this one: pumps placed before joining the registry plus earlier registry "
        f"implantations. Experienced means at least {EXPERIENCE_THRESHOLD} before, so the pump's number is "
        f"{EXPERIENCE_THRESHOLD + 1} or more; the {EXPERIENCE_THRESHOLD}-pump mark on a chart falls after the "
        f"{EXPERIENCE_THRESHOLD}th pump."
    ),
}


def methods(outcomes: Iterable[Outcome] | None = None) -> list[dict]:
    """The definitions, as the report's Methods section prints them."""
    outcomes = list(outcomes) if outcomes is not None else DEFAULT_METHODS
    return [
        {
            "label": o.label,
            "denominator": o.denominator,
            "origin": o.origin,
            "competing": o.competing,
            "source": o.source,
        }
        for o in outcomes
    ]


def _category_outcome(category, label):
    # Vocabulary-independent description, for the Methods section.
    return event_outcome(category, [{"code": f"<{category}>", "name": label, "category": category}])


DEFAULT_METHODS = [
    _category_outcome(ComplicationCategory.TECHNICAL, "Technical complication"),
    _category_outcome(ComplicationCategory.TOXICITY, "Toxicity"),
    PUMP_FAILURE_OUTCOME,
    MORTALITY_90_DAYS,
    OVERALL_SURVIVAL,
    HEPATIC_PROGRESSION_FREE_SURVIVAL,
]
