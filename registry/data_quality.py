"""Data-quality rules (issue 12): what each rule finds, and the counts the monthly report shows.

Modelled on REDCap's data quality rules and data resolution workflow and OpenClinica's discrepancy
notes. Each rule has a stable ``code`` (kept in ``DataQuery.rule``, the API's ``rule`` and the report),
a ``title``, and one function ``find(implantations)`` that returns the offending records of those
implantations, one ``Finding`` (record, field and message) per record. Every function is set-based: one
query (two for the selectors shared with the report's "Cases to review", which need the patient too),
whatever the number of implantations. Writes (raising, closing) are in ``registry.data_quality_services``.

Rules
-----
``no_first_dose_28_days``
    A pump at least 28 days old with no HAI dose (a held cycle is not one) and no never-treated reason.
    The rule is ``reports.selectors.untreated_without_reason`` (the report's "Cases to review" list).
``follow_up_overdue``
    No death recorded for the patient and the last contact more than 6 calendar months ago (or no
    follow-up at all, implanted more than 6 months ago): ``reports.selectors.overdue_follow_ups``.
``death_without_date``
    A death recorded without its date. A follow-up cannot say "dead" without a date of death (the check
    constraint ``follow_up_death_date_iff_dead``), so the rule looks where else a death is recorded: a
    complication of grade 5 or Clavien-Dindo V whose patient has no date of death in any follow-up.
``liver_tests_missing_at_dose``
    An HAI dose with no AST, ALP or total bilirubin measured in the ``LIVER_TEST_WINDOW_DAYS`` (7) days up
    to and including the day of the dose (the tests each refill needs, and the inputs of the next rule).
``liver_tests_rising_without_hold``
    The biliary-toxicity early warning: the MSKCC FUDR dose-modification table (below) says reduce or
    hold, but the FUDR fill was given at full dose (for "reduce") or not held (for "hold").

The MSKCC FUDR dose-modification table
--------------------------------------
Source: Kemeny N, Huang Y, Cohen AM, et al. Hepatic arterial infusion of chemotherapy after resection of
hepatic metastases from colorectal cancer. N Engl J Med 1999;341:2039-48, Appendix ("Dose modifications
for hepatic arterial infusion of FUDR"), the table used in the later Memorial Sloan Kettering HAI
protocols (e.g. Kemeny NE et al., J Clin Oncol 2005;23:4888-96) and the Dutch PUMP trial (Buisman FE et
al., BMC Cancer 2019;19:327).

FLAGGED: the table could not be found in the reference library this code was written with (searches
of its web pages, documentation and code found the PUMP trial protocol's abstract and the MSKCC trials'
abstracts, not the table itself). ``PUBLISHED_FUDR_TABLE`` is the table as it is commonly reproduced
from that appendix; check it against the paper before relying on it clinically. The coordinator can
correct any band in the admin (``FudrDoseBand``; every change is kept in its history).

Reference values are the AST, ALP and total bilirubin at the time of the last FUDR dose: here, the
latest value of each measured on or before the last FUDR fill that delivered drug. At the next FUDR
fill (the next FUDR row, given, reduced or held), the latest value measured after the last fill and on
or before the next one is divided by its reference; the ratio, in the band of the reference value,
gives the percentage of the FUDR dose to give::

    AST, reference < 50 U/L       < 2 × ref: 100%   2 to < 3 ×: 80%   3 to < 4 ×: 50%   ≥ 4 ×: hold
    AST, reference ≥ 50 U/L     < 1.5 × ref: 100% 1.5 to < 2 ×: 80%   2 to < 3 ×: 50%   ≥ 3 ×: hold
    ALP, reference < 90 U/L     < 1.5 × ref: 100% 1.5 to < 2 ×: 50%   ≥ 2 ×: hold
    ALP, reference ≥ 90 U/L     < 1.2 × ref: 100% 1.2 to < 1.5 ×: 50% ≥ 1.5 ×: hold
    Bilirubin, ref < 1.2 mg/dL  < 1.5 × ref: 100% 1.5 to < 2 ×: 50%   ≥ 2 ×: hold
    Bilirubin, ref ≥ 1.2 mg/dL  < 1.2 × ref: 100% 1.2 to < 1.5 ×: 50% ≥ 1.5 ×: hold

The most restrictive of the three decides. Bilirubin is stored in µmol/L: a ratio has no unit, and the
table's 1.2 mg/dL cut of the reference is 1.2 × 17.1 = 20.52 µmol/L (1 mg/dL = 17.1 µmol/L). A test
without a reference, or a reference of 0, is left out. The protocol's restart rule after a hold (resume
at a reduced dose when the tests return to the reference) is not checked: after a held cycle the
reference stays that of the last fill that delivered drug.
"""

import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, DateField, Exists, ExpressionWrapper, OuterRef, Q, Subquery

from .models import (
    MANUAL_RULE,
    Complication,
    DataQuery,
    DataQueryStatus,
    FollowUp,
    FudrDoseBand,
    Implantation,
    LiverTest,
    LiverTestAnalyte,
    Patient,
    Treatment,
)
from .vocabulary import DoseChange, Drug

LIVER_TEST_WINDOW_DAYS = 7
MG_PER_DL_BILIRUBIN_IN_UMOL_PER_L = Decimal("17.1")

# The table as published (see the module docstring): (analyte, reference from, reference below,
# ratio from, ratio below, % of the FUDR dose, 0 = hold), in the registry's units. Migration 0010 seeds it.
PUBLISHED_FUDR_TABLE = [
    ("ast", "0", "50", "0", "2", 100),
    ("ast", "0", "50", "2", "3", 80),
    ("ast", "0", "50", "3", "4", 50),
    ("ast", "0", "50", "4", None, 0),
    ("ast", "50", None, "0", "1.5", 100),
    ("ast", "50", None, "1.5", "2", 80),
    ("ast", "50", None, "2", "3", 50),
    ("ast", "50", None, "3", None, 0),
    ("alp", "0", "90", "0", "1.5", 100),
    ("alp", "0", "90", "1.5", "2", 50),
    ("alp", "0", "90", "2", None, 0),
    ("alp", "90", None, "0", "1.2", 100),
    ("alp", "90", None, "1.2", "1.5", 50),
    ("alp", "90", None, "1.5", None, 0),
    ("bilirubin", "0", "20.52", "0", "1.5", 100),  # 20.52 µmol/L = 1.2 mg/dL
    ("bilirubin", "0", "20.52", "1.5", "2", 50),
    ("bilirubin", "0", "20.52", "2", None, 0),
    ("bilirubin", "20.52", None, "0", "1.2", 100),
    ("bilirubin", "20.52", None, "1.2", "1.5", 50),
    ("bilirubin", "20.52", None, "1.5", None, 0),
]

ANALYTE_COLUMNS = {
    LiverTestAnalyte.AST: "ast_u_per_l",
    LiverTestAnalyte.ALP: "alp_u_per_l",
    LiverTestAnalyte.BILIRUBIN: "bilirubin_umol_per_l",
}
ANALYTE_TEXT = {
    LiverTestAnalyte.AST: ("AST", "U/L"),
    LiverTestAnalyte.ALP: ("ALP", "U/L"),
    LiverTestAnalyte.BILIRUBIN: ("bilirubin", "µmol/L"),
}


@dataclass(frozen=True)
class Finding:
    """One offending record: what a rule raises a query about."""

    record_model: str  # a model label, lower case (registry.treatment)
    record_id: int
    patient_id: int
    implantation_id: int | None
    field_name: str
    message: str

    @property
    def key(self):
        return (self.record_model, self.record_id)


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    find: Callable[[object], Iterable[Finding]]


def _label(model):
    return model._meta.label_lower


def _patients_of(implantation_ids):
    return dict(Implantation.objects.filter(pk__in=implantation_ids).values_list("pk", "patient_id"))


# --------------------------------------------------------------------------- the rules


def find_no_first_dose(implantations):
    from reports.selectors import UNTREATED_AFTER_DAYS, untreated_without_reason

    cases = untreated_without_reason(implantations, data_cut=None)
    patients = _patients_of([c["implantation_id"] for c in cases])
    return [
        Finding(
            _label(Implantation),
            c["implantation_id"],
            patients[c["implantation_id"]],
            c["implantation_id"],
            "never_treated_reason",
            f"No HAI dose and no never-treated reason {c['days_since_implantation']} days after the implantation "
            f"on {c['implanted_on']:%Y-%m-%d} (a dose is expected within {UNTREATED_AFTER_DAYS} days). Enter the "
            "doses given, or the reason the pump was never used.",
        )
        for c in cases
    ]


def find_follow_up_overdue(implantations):
    from reports.selectors import OVERDUE_AFTER_MONTHS, overdue_follow_ups

    cases = overdue_follow_ups(implantations, data_cut=None)
    patients = _patients_of([c["implantation_id"] for c in cases])
    findings = []
    for c in cases:
        if c["last_contact_on"]:
            situation = f"the last contact recorded is on {c['last_contact_on']:%Y-%m-%d}"
        else:
            situation = f"no follow-up is recorded since the implantation on {c['implanted_on']:%Y-%m-%d}"
        findings.append(
            Finding(
                _label(Implantation),
                c["implantation_id"],
                patients[c["implantation_id"]],
                c["implantation_id"],
                "",
                f"Follow-up overdue: {situation}, more than {OVERDUE_AFTER_MONTHS} months ago, and no death is "
                "recorded. Add a follow-up with the patient's current status (or the date of death).",
            )
        )
    return findings


def find_death_without_date(implantations):
    dated_death = FollowUp.objects.filter(
        implantation__patient=OuterRef("implantation__patient"), died_on__isnull=False
    )
    rows = (
        Complication.objects.filter(implantation__in=implantations.values("pk"))
        .filter(Q(grade=5) | Q(clavien_dindo="V"))
        .alias(dated=Exists(dated_death))
        .filter(dated=False)
        .order_by("pk")
        .values_list("pk", "implantation_id", "implantation__patient_id", "onset_on", "type__name")
    )
    return [
        Finding(
            _label(Complication),
            pk,
            patient_id,
            implantation_id,
            "grade",
            f"A {name.lower()} of grade 5 (death) with onset on {onset:%Y-%m-%d}, but no date of death is recorded "
            "in any follow-up of this patient. Add a follow-up with vital status 'dead' and the date of death, "
            "or correct the grade.",
        )
        for pk, implantation_id, patient_id, onset, name in rows
    ]


def find_liver_tests_missing_at_dose(implantations):
    window_start = ExpressionWrapper(
        OuterRef("given_on") - datetime.timedelta(days=LIVER_TEST_WINDOW_DAYS), output_field=DateField()
    )
    in_window = LiverTest.objects.filter(
        implantation=OuterRef("implantation"), measured_on__gte=window_start, measured_on__lte=OuterRef("given_on")
    )
    present = {
        analyte: Exists(in_window.filter(**{f"{column}__isnull": False})) for analyte, column in ANALYTE_COLUMNS.items()
    }
    rows = (
        Treatment.objects.given()
        .filter(implantation__in=implantations.values("pk"))
        .annotate(**{f"has_{analyte}": expression for analyte, expression in present.items()})
        .filter(Q(has_ast=False) | Q(has_alp=False) | Q(has_bilirubin=False))
        .order_by("pk")
        .values("pk", "implantation_id", "implantation__patient_id", "given_on", "drug", *[f"has_{a}" for a in present])
    )
    drugs = dict(Drug.choices)
    findings = []
    for row in rows:
        missing = [ANALYTE_TEXT[a][0] for a in ANALYTE_COLUMNS if not row[f"has_{a}"]]
        findings.append(
            Finding(
                _label(Treatment),
                row["pk"],
                row["implantation__patient_id"],
                row["implantation_id"],
                "",
                f"No {', '.join(missing)} measured in the {LIVER_TEST_WINDOW_DAYS} days up to the HAI dose of "
                f"{drugs.get(row['drug'], row['drug'])} on {row['given_on']:%Y-%m-%d}. Enter the liver tests taken "
                "at this refill.",
            )
        )
    return findings


# --- The MSKCC FUDR table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    analyte: str
    reference_from: Decimal
    reference_below: Decimal | None
    ratio_from: Decimal
    ratio_below: Decimal | None
    dose_percent: int

    def covers(self, reference, value):
        if reference < self.reference_from or (self.reference_below is not None and reference >= self.reference_below):
            return False
        # value / reference in [ratio_from, ratio_below), compared without dividing (exact for decimals).
        if value < self.ratio_from * reference:
            return False
        return self.ratio_below is None or value < self.ratio_below * reference


def published_bands():
    return [
        Band(
            analyte,
            Decimal(ref_from),
            None if ref_below is None else Decimal(ref_below),
            Decimal(ratio_from),
            None if ratio_below is None else Decimal(ratio_below),
            percent,
        )
        for analyte, ref_from, ref_below, ratio_from, ratio_below, percent in PUBLISHED_FUDR_TABLE
    ]


def current_bands():
    """The table as the coordinator keeps it (``FudrDoseBand``): one query."""
    return [
        Band(b.analyte, b.reference_from, b.reference_below, b.ratio_from, b.ratio_below, b.dose_percent)
        for b in FudrDoseBand.objects.all()
    ]


def fudr_dose_percent(analyte, reference, value, bands):
    """The % of the FUDR dose the table gives for one analyte (100 when no band covers it, or no reference)."""
    if reference is None or value is None or reference <= 0:
        return 100
    reference, value = Decimal(str(reference)), Decimal(str(value))
    percents = [b.dose_percent for b in bands if b.analyte == analyte and b.covers(reference, value)]
    return min(percents, default=100)


def required_fudr_dose(references, values, bands):
    """``(percent, reasons)``: the most restrictive % over the analytes, and ``[(analyte, ref, value, %)]``
    for each analyte that calls for less than the full dose. ``references``/``values``: {analyte: number}."""
    reasons = []
    for analyte in ANALYTE_COLUMNS:
        percent = fudr_dose_percent(analyte, references.get(analyte), values.get(analyte), bands)
        if percent < 100:
            reasons.append((analyte, references[analyte], values[analyte], percent))
    return min((r[3] for r in reasons), default=100), reasons


def _fmt(analyte, value):
    return f"{value:.1f}" if analyte == LiverTestAnalyte.BILIRUBIN else f"{value:.0f}"


def _action(percent):
    return "hold" if percent == 0 else f"{percent}% of the dose"


def find_liver_tests_rising_without_hold(implantations, bands=None):
    bands = current_bands() if bands is None else bands
    fudr = Treatment.objects.filter(drug=Drug.FUDR)
    last_fill = (
        fudr.given()
        .filter(implantation=OuterRef("implantation"), given_on__lt=OuterRef("given_on"))
        .order_by("-given_on", "-id")
        .values("given_on")[:1]
    )
    annotations = {}
    for analyte, column in ANALYTE_COLUMNS.items():
        measured = LiverTest.objects.filter(implantation=OuterRef("implantation"), **{f"{column}__isnull": False})
        latest = ("-measured_on", "-id")
        annotations[f"ref_{analyte}"] = Subquery(
            measured.filter(measured_on__lte=OuterRef("last_fill_on")).order_by(*latest).values(column)[:1]
        )
        annotations[f"cur_{analyte}"] = Subquery(
            measured.filter(measured_on__gt=OuterRef("last_fill_on"), measured_on__lte=OuterRef("given_on"))
            .order_by(*latest)
            .values(column)[:1]
        )
    rows = (
        fudr.exclude(dose_change=DoseChange.HELD)  # a held fill obeys every line of the table
        .filter(implantation__in=implantations.values("pk"))
        .annotate(last_fill_on=Subquery(last_fill))
        .filter(last_fill_on__isnull=False)
        .annotate(**annotations)
        .order_by("pk")
        .values(
            "pk", "implantation_id", "implantation__patient_id", "given_on", "dose_change", "last_fill_on", *annotations
        )
    )
    findings = []
    for row in rows:
        references = {a: row[f"ref_{a}"] for a in ANALYTE_COLUMNS}
        values = {a: row[f"cur_{a}"] for a in ANALYTE_COLUMNS}
        percent, reasons = required_fudr_dose(references, values, bands)
        given = row["dose_change"]
        if not ((percent == 0 and given != DoseChange.HELD) or (0 < percent < 100 and given == DoseChange.FULL)):
            continue
        why = "; ".join(
            f"{ANALYTE_TEXT[a][0]} {_fmt(a, value)} {ANALYTE_TEXT[a][1]} is {Decimal(value) / Decimal(ref):.1f} × "
            f"its reference {_fmt(a, ref)} ({_action(p)})"
            for a, ref, value, p in reasons
        )
        given_text = "at full dose" if given == DoseChange.FULL else "reduced, not held"
        findings.append(
            Finding(
                _label(Treatment),
                row["pk"],
                row["implantation__patient_id"],
                row["implantation_id"],
                "dose_change",
                f"FUDR fill on {row['given_on']:%Y-%m-%d} given {given_text}, but the MSKCC dose-modification table "
                f"calls for {_action(percent)}: {why} (references: the last tests on or before the last FUDR fill, "
                f"{row['last_fill_on']:%Y-%m-%d}). Record the dose change and its reason, or correct the values.",
            )
        )
    return findings


RULES = {
    rule.code: rule
    for rule in (
        Rule("no_first_dose_28_days", "Pump 28 days old with no dose and no never-treated reason", find_no_first_dose),
        Rule("follow_up_overdue", "Follow-up overdue (alive, last contact over 6 months ago)", find_follow_up_overdue),
        Rule("death_without_date", "Death recorded without a date of death", find_death_without_date),
        Rule("liver_tests_missing_at_dose", "Liver tests missing at an HAI dose", find_liver_tests_missing_at_dose),
        Rule(
            "liver_tests_rising_without_hold",
            "Liver tests rising, FUDR not reduced or held (MSKCC table)",
            find_liver_tests_rising_without_hold,
        ),
    )
}
RULE_TITLES = {**{code: rule.title for code, rule in RULES.items()}, MANUAL_RULE: "Raised by the coordinator"}


# --------------------------------------------------------------------------- read for the report


def open_query_counts(centre, as_of=None):
    """The centre's unresolved data queries by rule, as they stood at ``as_of`` (a datetime; None: now).

    Read from the queries' history, so a query closed after the data cut still counts as open at the cut,
    and one raised after it does not. Plain JSON for the report's stored context: ``{"as_of", "open",
    "answered", "total", "rules": [{"rule", "title", "open", "answered", "total"}]}`` with a row for every
    rule, zeros included; ``open`` awaits the centre's answer, ``answered`` the coordinator. One query.
    """
    queries = DataQuery.objects.all() if as_of is None else DataQuery.history.as_of(as_of)
    rows = (
        queries.filter(patient_id__in=Patient.objects.filter(centre=centre).values("pk"))
        .exclude(status=DataQueryStatus.CLOSED)
        .order_by()
        .values("rule", "status")
        .annotate(n=Count("id"))
    )
    counts = defaultdict(lambda: {DataQueryStatus.OPEN: 0, DataQueryStatus.ANSWERED: 0})
    for row in rows:
        counts[row["rule"]][row["status"]] = row["n"]
    codes = list(RULE_TITLES) + sorted(set(counts) - set(RULE_TITLES))
    by_rule = [
        {
            "rule": code,
            "title": RULE_TITLES.get(code, code),
            "open": counts[code][DataQueryStatus.OPEN],
            "answered": counts[code][DataQueryStatus.ANSWERED],
            "total": counts[code][DataQueryStatus.OPEN] + counts[code][DataQueryStatus.ANSWERED],
        }
        for code in codes
    ]
    return {
        "as_of": None if as_of is None else as_of.isoformat(),
        "open": sum(r["open"] for r in by_rule),
        "answered": sum(r["answered"] for r in by_rule),
        "total": sum(r["total"] for r in by_rule),
        "rules": by_rule,
    }
