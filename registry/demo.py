"""Deterministic demo data for the HAI registry (``manage.py seed_demo``).

``seed_registry`` builds a multi-centre registry whose rates follow the
published figures in the domain brief, then writes it (``COPY`` on PostgreSQL).

How it works
------------
1. *Plan* (pure Python, one ``random.Random(seed)``, no clock): centres of very
   different sizes, their surgeons (some new to pumps, some with more than 25
   pre-registry pumps), and one implantation skeleton per case (centre, surgeon,
   date). The skeletons are sorted by date and each surgeon's sequence number
   (``prior_pump_count`` + earlier registry cases + 1, the same definition as
   ``registry.selectors``) is computed here, because the complication risk
   depends on it (learning curve).
2. *Cases*: each skeleton becomes a patient with one implantation and its
   children (doses, complications, liver tests, perfusion checks, systemic
   lines, follow-ups). Every date is an ordinal day number until the row is
   built; everything happens on or before ``reference_date`` and nothing
   clinical is dated after a recorded death.
3. *Write*: cases are built and inserted chunk by chunk (memory stays flat at
   100,000 implantations). On PostgreSQL every clinical table is streamed with
   ``COPY``, its primary keys drawn from the table's own sequence first, so that
   the next table's foreign keys (a patient's implantation, a refill's liver
   tests) can be wired; elsewhere, or with ``copy=False``, ``bulk_create``
   writes the same rows and returns the keys. Neither sends signals, so no
   history rows are written for the clinical tables (the few centre, surgeon,
   user and membership rows go through ``bulk_create``).
4. *The richer record* (issue 14: pump models and refills, operative anatomy,
   perfusion findings, case mix, systemic toxicity, readmissions, trials) comes
   from ``registry.demo_detail``, drawn from a second random stream, so the
   figures below did not move when it was added. The demo has no replacement
   pumps: each patient has one implantation (seeded counts are the options').

``created_at`` (when a row was entered) is seeded too: a few days after the
clinical date, never after the reference date, never before the row's
implantation was entered. Report data cuts (``reports.cohort``) therefore see
the demo registry as it grew, and nothing depends on the wall clock.

Modelled figures (brief, "Published figures"), as observed at 100,000
implantations (seed 1): never treated 17.7% (centres ~10-34%); median time to
first dose 17 days; pump-related complications 20.9% of implantations; each
technical complication 2.6 times the odds while the surgeon has placed fewer
than 25 pumps (any complication 41.9% vs 26.1%); biliary sclerosis 5.8%
adjuvant vs 1.8% unresectable (intention to treat). The brief's 4.6% overall
would need ~74% adjuvant implantations; here it is 3.5%. Catheter-related
complications are 28.6% for arterial ports (the port series the brief's 31%
comes from) and 10.4% for implanted pumps. Conversion to resection is 31% of
unresectable implantations. Overall survival median is ~28 months. The pump
is lost in ~18% of implantations with a complication; the rest are salvaged.
"""

import datetime as dt
import hashlib
import math
import random
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction

from . import demo_detail

REFERENCE_DATE = dt.date(2026, 10, 31)
DEMO_PASSWORD = "demo-password-1"
BATCH_SIZE = 5000
ACCRUAL_YEARS = 9
# The newest implantation is this many days before the reference date, so that
# every treated implantation has its first dose and a follow-up on record.
ACCRUAL_STOPS_DAYS_BEFORE = 150
LEARNING_CURVE_PUMPS = 25
LEARNING_CURVE_ODDS_RATIO = 2.6
NEVER_TREATED_SHARE = 0.17
MAX_CENTRE_NEVER_TREATED = 0.29  # before the indication mix and early deaths: observed up to ~34%
MONTH = 30.4375
PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

# (code, city, country, share of arterial ports): ports are the European habit.
CENTRE_CATALOGUE = [
    ("AMS", "Amsterdam", "NL", 0.03),
    ("NYC", "New York", "US", 0.02),
    ("LYON", "Lyon", "FR", 0.30),
    ("ROT", "Rotterdam", "NL", 0.03),
    ("PIT", "Pittsburgh", "US", 0.02),
    ("MIL", "Milan", "IT", 0.30),
    ("TOR", "Toronto", "CA", 0.03),
    ("PAR", "Paris", "FR", 0.25),
    ("LON", "London", "GB", 0.08),
    ("MUC", "Munich", "DE", 0.10),
    ("BCN", "Barcelona", "ES", 0.15),
    ("BRU", "Brussels", "BE", 0.15),
    ("OSL", "Oslo", "NO", 0.05),
    ("STO", "Stockholm", "SE", 0.05),
    ("ZUR", "Zurich", "CH", 0.10),
    ("VIE", "Vienna", "AT", 0.10),
    ("TOK", "Tokyo", "JP", 0.35),
    ("SEO", "Seoul", "KR", 0.30),
    ("MEL", "Melbourne", "AU", 0.03),
    ("HOU", "Houston", "US", 0.02),
]

INDICATIONS = ["unresectable_first_line", "unresectable_after_progression", "adjuvant", "unresectable_icca", "other"]
INDICATION_WEIGHTS = [0.20, 0.22, 0.40, 0.13, 0.05]
UNRESECTABLE = ("unresectable_first_line", "unresectable_after_progression", "unresectable_icca")
# Relative chance of never receiving a dose, by indication (mean ~1 over the mix).
NEVER_TREATED_FACTOR = {
    "unresectable_first_line": 1.0,
    "unresectable_after_progression": 1.3,
    "adjuvant": 0.75,
    "unresectable_icca": 1.1,
    "other": 1.2,
}
NEVER_TREATED_REASONS = [
    "surgical_complication",
    "extrahepatic_perfusion",
    "progression",
    "extrahepatic_disease",
    "patient_choice",
    "other",
]
NEVER_TREATED_REASON_WEIGHTS = [0.22, 0.16, 0.24, 0.16, 0.12, 0.10]
NEVER_TREATED_NOTES = {
    "surgical_complication": "Pocket haematoma, re-operated; pump not used.",
    "extrahepatic_perfusion": "Gastric perfusion on MAA scan, embolisation failed.",
    "progression": "Rapid progression before the first cycle.",
    "extrahepatic_disease": "Peritoneal deposits found at laparotomy.",
    "patient_choice": "Declined HAI after the operation.",
    "other": "Transferred to another hospital.",
}
# Months: progression-free survival from implantation, and survival after progression.
PFS_MEDIAN = {
    "unresectable_first_line": 11.0,
    "unresectable_after_progression": 7.0,
    "adjuvant": 18.0,
    "unresectable_icca": 10.0,
    "other": 8.0,
}
POST_PROGRESSION_MEDIAN = {
    "unresectable_first_line": 13.0,
    "unresectable_after_progression": 10.0,
    "adjuvant": 16.0,
    "unresectable_icca": 11.0,
    "other": 10.0,
}
# Conversion to resection of treated implantations, by indication (up to 57% chemo-naive).
CONVERSION = {
    "unresectable_first_line": 0.52,
    "unresectable_after_progression": 0.33,
    "unresectable_icca": 0.30,
}


@dataclass(frozen=True)
class ComplicationSpec:
    """Chance per implantation for an experienced surgeon at an average centre."""

    pump: float  # implanted pump
    port: float  # arterial port
    learning: bool  # technical: more frequent before the surgeon's 25th pump
    anchor: str  # onset counted from "implant" or "first_dose" (drug toxicity: treated only)
    onset: tuple  # (min, max) days after the anchor
    lost: float  # chance the pump is lost (not salvaged)
    related: float  # chance the event is recorded as related to the pump


COMPLICATIONS = {
    "catheter_occlusion": ComplicationSpec(0.030, 0.19, True, "implant", (30, 540), 0.12, 1.0),
    "catheter_dislodgement": ComplicationSpec(0.012, 0.11, True, "implant", (14, 365), 0.20, 1.0),
    "hepatic_artery_thrombosis": ComplicationSpec(0.018, 0.07, True, "implant", (7, 300), 0.18, 1.0),
    "extrahepatic_perfusion": ComplicationSpec(0.020, 0.05, True, "implant", (3, 14), 0.0, 1.0),
    "pocket_infection": ComplicationSpec(0.016, 0.03, True, "implant", (5, 60), 0.30, 1.0),
    "pocket_seroma": ComplicationSpec(0.028, 0.02, True, "implant", (3, 30), 0.02, 1.0),
    "pump_malfunction": ComplicationSpec(0.008, 0.01, False, "implant", (60, 720), 0.40, 1.0),
    "gastroduodenal_ulcer": ComplicationSpec(0.012, 0.012, False, "first_dose", (21, 240), 0.0, 1.0),
    "chemical_hepatitis": ComplicationSpec(0.060, 0.0, False, "first_dose", (28, 180), 0.0, 0.0),
    "other": ComplicationSpec(0.012, 0.02, True, "implant", (1, 365), 0.05, 0.5),
}
# Biliary sclerosis is FUDR toxicity: chance per FUDR-treated implantation, chosen
# so that the intention-to-treat share of implantations is ~5.5% adjuvant, ~2.0% unresectable.
BILIARY_SCLEROSIS = {"adjuvant": 0.10, "other": 0.06}
BILIARY_SCLEROSIS_UNRESECTABLE = 0.038
BILIARY_SCLEROSIS_ONSET = (60, 420)
BILIARY = ComplicationSpec(0.0, 0.0, False, "first_dose", BILIARY_SCLEROSIS_ONSET, 0.05, 0.0)
EARLY_SURGICAL_TYPES = [
    "pocket_seroma",
    "pocket_infection",
    "hepatic_artery_thrombosis",
    "catheter_dislodgement",
    "other",
]
PUMP_FAILURE_TYPES = {"catheter_occlusion", "catheter_dislodgement", "hepatic_artery_thrombosis", "pump_malfunction"}
TOXICITIES = ("biliary_sclerosis", "chemical_hepatitis")  # drug effects: may start after the pump is gone
CLAVIEN_GRADE = {"I": 1, "II": 2, "IIIa": 3, "IIIb": 3, "IVa": 4, "IVb": 4}

HELD_REASONS = [
    "Neutropenia",
    "Bilirubin above 1.5x upper limit",
    "Intercurrent infection",
    "Patient request",
    "Abdominal pain",
]
REDUCED_REASONS_TOXICITY = ["ALP above 1.5x baseline", "AST above 3x baseline", "Bilirubin rise"]
REDUCED_REASONS_OTHER = ["Diarrhoea grade 2", "Fatigue", "Neuropathy", "Thrombocytopenia"]

DRUG_SCHEDULE = {
    # drug: (unit, start doses with weights, interval in days, reduced fractions)
    "fudr": ("mg/kg/day", [("0.120", 0.70), ("0.100", 0.10), ("0.140", 0.08), ("0.160", 0.07), ("0.200", 0.05)], 28),
    "oxaliplatin": ("mg/m2", [("100", 0.8), ("85", 0.2)], 14),
    "5fu": ("mg/m2", [("1000", 0.7), ("800", 0.3)], 14),
    "irinotecan": ("mg/m2", [("150", 0.7), ("120", 0.3)], 14),
    "other": ("mg/m2", [("10", 1.0)], 21),
}
DOSE_FLOOR = {
    "fudr": Decimal("0.01"),
    "oxaliplatin": Decimal("25"),
    "5fu": Decimal("100"),
    "irinotecan": Decimal("25"),
    "other": Decimal("0.1"),
}


# --------------------------------------------------------------------------- planning


@dataclass
class SurgeonPlan:
    code: str
    prior: int
    joined: int  # ordinal
    left: int | None
    weight: float
    pk: int | None = None


@dataclass
class CentrePlan:
    code: str
    name: str
    country: str
    port_share: float
    size_weight: float
    starts: int  # ordinal
    count: int = 0
    never_treated: float = 0.0
    complication_factor: float = 1.0
    indication_weights: list = field(default_factory=list)
    surgeons: list = field(default_factory=list)
    pk: int | None = None


@dataclass
class Skeleton:
    centre: int
    surgeon: int
    implanted: int  # ordinal
    sequence: int = 0


def _clamp(value, low, high):
    return low if value < low else high if value > high else value


def _weibull_days(rng, median_months, shape=1.3):
    """A Weibull time in days with the given median."""
    scale = median_months * MONTH / (math.log(2) ** (1 / shape))
    return scale * (-math.log(1.0 - rng.random())) ** (1 / shape)


def _check(day, timing, method, extrahepatic):
    return {"checked_on": day, "timing": timing, "method": method, "extrahepatic_perfusion": extrahepatic}


def _pick(rng, pairs):
    """Choose from [(value, weight), ...]."""
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    return rng.choices(values, weights)[0]


def plan_centres(rng, n_centres, n_implantations, reference_date):
    """Centres with heterogeneous volume, never-treated share and complication risk."""
    ref = reference_date.toordinal()
    accrual_start = ref - int(ACCRUAL_YEARS * 365.25)
    accrual_end = ref - ACCRUAL_STOPS_DAYS_BEFORE
    centres = []
    for i in range(n_centres):
        if i < len(CENTRE_CATALOGUE):
            code, city, country, port_share = CENTRE_CATALOGUE[i]
            name = f"{city} HAI programme (demo)"
        else:
            base = CENTRE_CATALOGUE[i % len(CENTRE_CATALOGUE)]
            code, name, country, port_share = f"C{i + 1:03d}", f"Demo centre {i + 1}", base[2], base[3]
        centres.append(CentrePlan(code, name, country, port_share, rng.lognormvariate(0, 0.9), accrual_start))
    # The largest centre comes first (it gets the demo data manager and lead).
    centres.sort(key=lambda c: -c.size_weight)
    # Implantations by largest remainder, every centre at least one when possible.
    total = sum(c.size_weight for c in centres)
    exact = [n_implantations * c.size_weight / total for c in centres]
    counts = [int(x) for x in exact]
    for i in sorted(range(n_centres), key=lambda i: -(exact[i] - counts[i]))[: n_implantations - sum(counts)]:
        counts[i] += 1
    if n_implantations >= n_centres:
        for i in range(n_centres):
            while counts[i] < 1:
                donor = max(range(n_centres), key=lambda j: counts[j])
                counts[donor] -= 1
                counts[i] += 1
    span = accrual_end - accrual_start
    for i, (centre, count) in enumerate(zip(centres, counts, strict=True)):
        centre.count = count
        if i >= 3:  # the three largest founded the registry; the others joined later
            centre.starts = accrual_start + int(rng.uniform(0, 0.6) * span)
        centre.never_treated = _clamp(rng.betavariate(3.5, 16), 0.03, MAX_CENTRE_NEVER_TREATED)
        # Higher volume, fewer complications (rank 0 is the largest), plus noise.
        volume_factor = 0.85 + 0.3 * (i / max(1, n_centres - 1))
        centre.complication_factor = volume_factor * rng.lognormvariate(0, 0.2)
        centre.indication_weights = [w * rng.lognormvariate(0, 0.35) for w in INDICATION_WEIGHTS]
    if n_centres >= 4:
        # Some trials saw up to 34% never treated: the smallest centre is such a one.
        centres[-1].never_treated = rng.uniform(0.26, MAX_CENTRE_NEVER_TREATED)
    _normalise(centres, "never_treated", NEVER_TREATED_SHARE, 0.03, MAX_CENTRE_NEVER_TREATED)
    _normalise(centres, "complication_factor", 1.0, 0.4, 2.5)
    for centre in centres:
        centre.surgeons = _plan_surgeons(rng, centre, accrual_end)
    return centres, accrual_end


def _normalise(centres, attribute, target, low, high):
    """Scale a centre attribute so its implantation-weighted mean is the target."""
    total = sum(c.count for c in centres)
    if not total:
        return
    for _ in range(5):  # clamping moves the mean a little; a few rounds settle it
        mean = sum(getattr(c, attribute) * c.count for c in centres) / total
        for c in centres:
            setattr(c, attribute, _clamp(getattr(c, attribute) * target / mean, low, high))


def _plan_surgeons(rng, centre, accrual_end):
    n = max(1, min(80, round(1 + centre.count / 100)))
    surgeons = []
    for j in range(n):
        roll = rng.random()
        if roll < 0.35:
            prior = 0
        elif roll < 0.60:
            prior = rng.randint(1, 24)
        else:
            prior = rng.randint(25, 150)
        joined, left = centre.starts, None
        if j > 0 and rng.random() < 0.5:
            joined = centre.starts + int(rng.uniform(0, 0.8) * (accrual_end - centre.starts))
        if j > 0 and rng.random() < 0.12:
            left = joined + int(rng.uniform(0.3, 1.0) * (accrual_end - joined))
        surgeons.append(SurgeonPlan(f"{centre.code}-S{j + 1:02d}", prior, joined, left, rng.lognormvariate(0, 0.5)))
    return surgeons


def plan_skeletons(rng, centres, accrual_end):
    """Implantation dates and surgeons, sorted by date, with surgeon sequence numbers."""
    skeletons = []
    for ci, centre in enumerate(centres):
        span = accrual_end - centre.starts
        for _ in range(centre.count):
            # Volume grows over the years: later dates are more likely.
            day = centre.starts + int(span * rng.random() ** 0.8)
            eligible = [
                si for si, s in enumerate(centre.surgeons) if s.joined <= day and (s.left is None or day <= s.left)
            ] or [0]
            si = rng.choices(eligible, [centre.surgeons[si].weight for si in eligible])[0]
            skeletons.append(Skeleton(ci, si, day))
    # Stable sort: same-day cases keep their generation order, which is also
    # their insertion (id) order, as the selector's tie-break expects.
    skeletons.sort(key=lambda s: s.implanted)
    done = {}
    for sk in skeletons:
        key = (sk.centre, sk.surgeon)
        done[key] = done.get(key, 0) + 1
        sk.sequence = centres[sk.centre].surgeons[sk.surgeon].prior + done[key]
    return skeletons


# --------------------------------------------------------------------------- one case


@dataclass
class Case:
    patient: dict
    implantation: dict
    treatments: list
    complications: list  # (type code, fields)
    liver_tests: list
    perfusion_checks: list
    systemic_lines: list
    follow_ups: list
    systemic_toxicities: list = field(default_factory=list)
    readmissions: list = field(default_factory=list)


class CaseFactory:
    """Turns a skeleton into a patient with one implantation and all its records."""

    def __init__(self, rng, centres, reference_date, detail=None):
        self.rng = rng
        self.centres = centres
        self.ref = reference_date.toordinal()
        self.pseudonyms = set()
        self.detail = detail  # registry.demo_detail.DetailFactory: the richer record, from its own stream

    def pseudonym(self):
        rng = self.rng
        while True:
            value = "HAI-" + "".join(rng.choice(PSEUDONYM_ALPHABET) for _ in range(8))
            if value not in self.pseudonyms:
                self.pseudonyms.add(value)
                return value

    def build(self, sk):  # noqa: C901 - one clinical story, told in order
        rng = self.rng
        centre = self.centres[sk.centre]
        imp = sk.implanted
        year = dt.date.fromordinal(imp).year
        inexperienced = sk.sequence <= LEARNING_CURVE_PUMPS

        # --- patient
        indication = rng.choices(INDICATIONS, centre.indication_weights)[0]
        if indication == "unresectable_icca":
            tumour = "icca"
        elif indication == "adjuvant":
            tumour = "colorectal" if rng.random() < 0.95 else "icca"
        elif indication == "other":
            tumour = "other" if rng.random() < 0.6 else "colorectal"
        else:
            tumour = "colorectal" if rng.random() < 0.94 else "other"
        age = _clamp(round(rng.gauss(59, 10.5)), 24, 86)
        if tumour == "colorectal":
            ras = _pick(rng, [("wild_type", 0.45), ("mutant", 0.42), ("unknown", 0.13)])
        else:
            ras = "unknown"
        prior_lines = {
            "unresectable_first_line": lambda: 0,
            "unresectable_after_progression": lambda: _pick(rng, [(1, 0.45), (2, 0.35), (3, 0.15), (4, 0.05)]),
            "adjuvant": lambda: _pick(rng, [(0, 0.35), (1, 0.60), (2, 0.05)]),
            "unresectable_icca": lambda: _pick(rng, [(0, 0.5), (1, 0.45), (2, 0.05)]),
            "other": lambda: rng.randint(0, 2),
        }[indication]()
        if rng.random() < 0.04:
            mets = None
        elif indication == "adjuvant":
            mets = rng.randint(1, 8)
        elif indication == "unresectable_icca":
            mets = rng.randint(1, 4)
        else:
            mets = min(200, int(rng.lognormvariate(math.log(8), 0.7)) + 1)
        bilobar_p = {"adjuvant": 0.45, "unresectable_icca": 0.4, "other": 0.5}.get(indication, 0.8)
        bilobar = None if rng.random() < 0.04 else rng.random() < bilobar_p
        extrahepatic_p = 0.15 if indication == "unresectable_after_progression" else 0.07
        extrahepatic = None if rng.random() < 0.03 else rng.random() < extrahepatic_p
        patient = {
            "pseudonym": self.pseudonym(),
            "birth_year": year - age,
            "sex": _pick(rng, [("male", 0.58), ("female", 0.418), ("other", 0.002)]),
            "primary_tumour": tumour,
            "ras_status": ras,
            "liver_metastases_count": mets,
            "bilobar_disease": bilobar,
            "extrahepatic_disease": extrahepatic,
            "prior_systemic_lines": prior_lines,
            "consent_on": None if rng.random() < 0.03 else imp - rng.randint(1, 45),
        }

        # --- the operation
        port = rng.random() < centre.port_share
        if port:
            surgical = [("laparotomy", 0.6), ("laparoscopic", 0.4)]
            approach = "percutaneous" if rng.random() < 0.45 else _pick(rng, surgical)
            device = "arterial_port"
        else:
            approach = _pick(rng, [("laparotomy", 0.68), ("laparoscopic", 0.20), ("robotic", 0.12)])
            device = "constant_flow_pump" if rng.random() < 0.85 else "programmable_pump"
        percutaneous = approach == "percutaneous"
        if percutaneous:
            vessel = _pick(rng, [("common_hepatic", 0.5), ("proper_hepatic", 0.3), ("other", 0.2)])
            crc = hep = abl = ligated = False
            minutes = _clamp(round(rng.gauss(75, 20)), 20, 240)
            blood = rng.randint(0, 50)
            stay = rng.randint(1, 2)
        else:
            vessel = _pick(
                rng, [("gastroduodenal", 0.9), ("common_hepatic", 0.04), ("proper_hepatic", 0.03), ("other", 0.03)]
            )
            ligated = rng.random() < 0.25
            crc_p = {"unresectable_first_line": 0.30, "adjuvant": 0.12}.get(indication, 0.02)
            crc = tumour == "colorectal" and rng.random() < crc_p
            hep = rng.random() < {"adjuvant": 0.80, "unresectable_first_line": 0.08}.get(indication, 0.02)
            abl = rng.random() < {"adjuvant": 0.25, "unresectable_first_line": 0.10}.get(indication, 0.03)
            minutes = _clamp(round((150 + 120 * crc + 110 * hep + 25 * abl) * rng.lognormvariate(0, 0.2)), 30, 900)
            blood = _clamp(int(round(rng.lognormvariate(math.log(120 + 250 * hep + 150 * crc), 0.6), -1)), 0, 20000)
            stay = _clamp(round((4 + 2 * crc + 2 * hep) * rng.lognormvariate(0, 0.3)), 2, 365)
        implantation = {
            "implanted_on": imp,
            "indication": indication,
            "approach": approach,
            "device": device,
            "catheter_vessel": vessel,
            "accessory_arteries_ligated": ligated,
            "concurrent_colorectal_resection": crc,
            "concurrent_hepatectomy": hep,
            "concurrent_ablation": abl,
            "operative_minutes": None if rng.random() < 0.03 else minutes,
            "blood_loss_ml": None if rng.random() < 0.05 else blood,
            "length_of_stay_days": None if rng.random() < 0.02 else stay,
            "never_treated_reason": "",
            "never_treated_note": "",
        }
        # About half the empty operative items are known to be missing (not in the operative note), the rest
        # not yet entered; decided without drawing from rng, so the rest of the demo stays as it was.
        for name in ("operative_minutes", "blood_loss_ml", "length_of_stay_days"):  # Implantation.MISSING_DATA_FIELDS
            if implantation[name] is None and imp % 2:
                implantation[name + "_missing"] = "unknown"

        # --- never treated?
        nt_p = centre.never_treated * NEVER_TREATED_FACTOR[indication]
        reason = ""
        if rng.random() < nt_p:
            weights = list(NEVER_TREATED_REASON_WEIGHTS)
            if inexperienced:
                weights[0] *= 1.6
            reason = rng.choices(NEVER_TREATED_REASONS, weights)[0]
        if reason == "extrahepatic_disease":
            patient["extrahepatic_disease"] = True

        # --- disease course (ordinals); resection only for unresectable disease
        ttfd = _clamp(round(rng.lognormvariate(math.log(16), 0.3) + 3 * (crc or hep)), 7, 56)
        resection = None
        conversion = CONVERSION.get(indication, 0.0) * (0.15 if reason else 1.0)
        if rng.random() < conversion:
            resection = imp + rng.randint(110, 320)
        if reason == "progression":
            progression = imp + rng.randint(10, 45)
        elif resection:
            progression = resection + _weibull_days(rng, 14.0)
        else:
            progression = imp + _weibull_days(rng, PFS_MEDIAN[indication] * (0.6 if reason else 1.0))
        progression = int(progression)
        hepatic_first = rng.random() < (0.75 if indication == "adjuvant" else 0.6)
        if hepatic_first:
            hepatic = progression
        elif rng.random() < 0.4:
            hepatic = progression + rng.randint(30, 300)
        else:
            hepatic = None
        after_progression = _weibull_days(rng, POST_PROGRESSION_MEDIAN[indication] * (0.7 if reason else 1.0))
        death = max(imp + 2, progression + int(after_progression))

        # --- observation: administrative censoring near the reference date, some lost to follow-up
        if rng.random() < 0.06:
            last = imp + rng.randint(90, max(90, self.ref - imp - 30))
        else:
            last = self.ref - rng.randint(0, 75)
        dead = death <= last
        end = death if dead else last  # nothing clinical after this day
        if resection and resection > min(end, progression):
            resection = None

        # --- treatment start (a death or progression before it means never treated)
        first_dose = imp + ttfd
        if not reason and (first_dose > end or progression <= first_dose):
            reason = "progression" if progression <= min(first_dose, end) else "other"
        treated = not reason

        drug = None
        if treated:
            if port:
                drug = _pick(
                    rng, [("oxaliplatin", 0.65), ("5fu", 0.18), ("irinotecan", 0.10), ("fudr", 0.05), ("other", 0.02)]
                )
            else:
                drug = _pick(
                    rng, [("fudr", 0.88), ("oxaliplatin", 0.07), ("5fu", 0.02), ("irinotecan", 0.02), ("other", 0.01)]
                )

        # --- complications
        complications = self._complications(centre, indication, port, inexperienced, reason, drug, imp, first_dose, end)
        lost_on = min((c[1]["onset_on"] for c in complications if c[1]["pump_lost"]), default=None)
        if treated and lost_on is not None and lost_on <= first_dose:
            # The pump was lost before the first cycle: never treated, and no drug toxicity.
            reason, treated, drug = "surgical_complication", False, None
            complications = [c for c in complications if COMPLICATIONS.get(c[0], BILIARY).anchor == "implant"]
        implantation["never_treated_reason"] = reason
        if reason and rng.random() < 0.15:
            implantation["never_treated_note"] = NEVER_TREATED_NOTES[reason]

        # --- HAI cycles, stopped by a lost pump, hepatic progression or the end of observation
        stop = end
        if lost_on is not None:
            stop = min(stop, lost_on - 1)
        if hepatic is not None:
            stop = min(stop, hepatic - 1)
        treatments, liver_tests = [], []
        baseline = (  # AST, ALP, bilirubin
            rng.lognormvariate(math.log(28), 0.3),
            rng.lognormvariate(math.log(95), 0.35),
            rng.lognormvariate(math.log(9), 0.35),
        )
        liver_tests.append(self._liver_test(imp - rng.randint(0, 28), baseline, complications, True))
        completed = False
        if treated:
            unit, starts, interval = DRUG_SCHEDULE[drug]
            if indication == "adjuvant":
                planned = rng.randint(4, 6)
            else:
                planned = rng.randint(2, 8) if indication in UNRESECTABLE else rng.randint(2, 6)
            dose = Decimal(_pick(rng, starts))
            day = first_dose
            given = 0
            for cycle in range(planned):
                if cycle:
                    day += interval + rng.randint(-2, 3)
                if day > stop:
                    break
                test = self._liver_test(day, baseline, complications, False)
                liver_tests.append(test)
                linked = len(liver_tests) - 1  # the refill's liver tests (Treatment.liver_test)
                change, why = "full", ""
                toxic = any(c[0] in TOXICITIES and c[1]["onset_on"] <= day for c in complications)
                if cycle and rng.random() < 0.06:
                    change, why = "held", rng.choice(HELD_REASONS)
                elif cycle and (toxic and rng.random() < 0.7 or rng.random() < 0.10):
                    change = "reduced"
                    why = rng.choice(REDUCED_REASONS_TOXICITY if toxic or drug == "fudr" else REDUCED_REASONS_OTHER)
                    dose = max(DOSE_FLOOR[drug], (dose / 2).quantize(Decimal("0.001")))
                treatments.append(
                    {
                        "given_on": day,
                        "drug": drug,
                        "dose": dose,
                        "dose_unit": unit,
                        "dose_change": change,
                        "dose_change_reason": why,
                        "liver_test_index": linked,
                    }
                )
                given += 1
            completed = given == planned
        else:
            post = imp + rng.randint(1, 7)
            if post <= end:
                liver_tests.append(self._liver_test(post, baseline, complications, False))
            if rng.random() < 0.08 and first_dose <= end and lost_on is None:
                # A cycle was planned and held: recorded, but not a dose.
                unit, starts, _ = DRUG_SCHEDULE["fudr"]
                treatments.append(
                    {
                        "given_on": first_dose,
                        "drug": "fudr",
                        "dose": Decimal(starts[0][0]),
                        "dose_unit": unit,
                        "dose_change": "held",
                        "dose_change_reason": "Extrahepatic perfusion suspected; cycle held",
                    }
                )

        # --- end of pump use
        pump_end, end_reason, explanted = None, "", False
        if lost_on is not None:
            lost_type = next(c[0] for c in complications if c[1]["pump_lost"] and c[1]["onset_on"] == lost_on)
            pump_end = min(lost_on + rng.randint(0, 10), end)
            if lost_type in PUMP_FAILURE_TYPES:
                end_reason = "pump_failure"
            else:
                end_reason = "toxicity" if lost_type in TOXICITIES else "technical_complication"
            explanted = rng.random() < 0.7
        elif treated and hepatic is not None and hepatic <= end:
            pump_end = min(hepatic + rng.randint(0, 30), end)
            end_reason, explanted = "progression", rng.random() < 0.15
        elif treated and completed and (indication == "adjuvant" or rng.random() < 0.5):
            candidate = treatments[-1]["given_on"] + rng.randint(14, 60)
            if candidate <= end:
                pump_end = candidate
                end_reason = "treatment_completed" if rng.random() < 0.85 else rng.choice(["patient_choice", "other"])
                explanted = rng.random() < 0.35
        elif not treated and rng.random() < 0.5:
            candidate = imp + rng.randint(14, 180)
            if candidate <= end:
                pump_end = candidate
                end_reason = {
                    "surgical_complication": "technical_complication",
                    "progression": "progression",
                    "patient_choice": "patient_choice",
                }.get(reason, "other")
                explanted = rng.random() < 0.3
        if pump_end is not None:
            # A device problem cannot start after the pump is gone; toxicities may.
            complications = [c for c in complications if c[1]["onset_on"] <= pump_end or c[0] in TOXICITIES]

        # --- perfusion checks (a positive post-operative check goes with an extrahepatic perfusion complication)
        checks = []
        ehp = next((c for c in complications if c[0] == "extrahepatic_perfusion"), None)
        if percutaneous:
            checks.append(_check(imp, "intraoperative", "angiography", False))
        elif rng.random() < 0.55:
            checks.append(_check(imp, "intraoperative", "methylene_blue", False))
        if ehp is not None:
            checks.append(_check(ehp[1]["onset_on"], "postoperative", "maa_scintigraphy", True))
        elif rng.random() < 0.65:
            day = min(imp + rng.randint(3, min(14, ttfd - 1)), end)
            checks.append(_check(day, "postoperative", "maa_scintigraphy", False))

        # --- systemic therapy: earlier lines before the implantation, then concurrent and later lines
        lines = []
        start = imp - rng.randint(14, 60)
        for number in range(prior_lines, 0, -1):
            began = start - rng.randint(60, 240)
            lines.append(self._line(number, tumour, ras, began, start, end, dead))
            start = began - rng.randint(7, 60)
        lines.reverse()
        number = prior_lines
        concurrent_p = {
            "unresectable_first_line": 0.85,
            "unresectable_after_progression": 0.7,
            "unresectable_icca": 0.6,
            "adjuvant": 0.5,
        }.get(indication, 0.4)
        if rng.random() < concurrent_p:
            began = imp + _clamp(round(rng.gauss(35, 6)), 21, 60)
            if began <= end:
                number += 1
                lines.append(self._line(number, tumour, ras, began, began + rng.randint(90, 270), end, dead))
        if progression <= end and rng.random() < 0.6:
            began = progression + rng.randint(14, 45)
            if began <= end and (not lines or began > lines[-1]["started_on"]):
                number += 1
                lines.append(self._line(number, tumour, ras, began, began + rng.randint(60, 240), end, dead))

        # --- follow-up contacts: status as of each contact
        final_contact = min(self.ref, death + rng.randint(0, 45)) if dead else last
        contacts = []
        low, high = imp + 60, (death if dead else final_contact) - 30
        if high > low:
            contacts = sorted({rng.randint(low, high) for _ in range(rng.randint(0, 2))})
        contacts.append(final_contact)
        if treated and indication != "adjuvant":
            if resection:
                response = _pick(rng, [("CR", 0.15), ("PR", 0.75), ("SD", 0.10)])
            else:
                response = _pick(rng, [("CR", 0.03), ("PR", 0.42), ("SD", 0.33), ("PD", 0.15), ("NE", 0.07)])
        else:
            response = ""
        margin = _pick(rng, [("R0", 0.7), ("R1", 0.25), ("R2", 0.05)]) if resection else ""
        any_progression = progression if progression <= end else None
        hepatic_seen = hepatic if hepatic is not None and hepatic <= end else None
        follow_ups = []
        for contact in contacts:
            is_death = dead and contact == final_contact
            follow_ups.append(
                {
                    "contact_on": contact,
                    "vital_status": "dead" if is_death else "alive",
                    "died_on": death if is_death else None,
                    "response": response if treated and contact >= first_dose + 56 else "",
                    "resected": bool(resection and resection <= contact),
                    "resection_on": resection if resection and resection <= contact else None,
                    "resection_margin": margin if resection and resection <= contact else "",
                    "hepatic_progression_on": hepatic_seen if hepatic_seen and hepatic_seen <= contact else None,
                    "progression_on": any_progression if any_progression and any_progression <= contact else None,
                    "pump_ended_on": pump_end if pump_end and pump_end <= contact else None,
                    "pump_end_reason": end_reason if pump_end and pump_end <= contact else "",
                    "pump_explanted": explanted if pump_end and pump_end <= contact else False,
                    "pump_never_used": not treated,
                }
            )

        toxicities, readmissions = [], []
        if self.detail is not None:
            detail = self.detail
            detail.case_mix(patient, indication, imp)
            detail.operation(implantation, percutaneous, centre.country, patient["extrahepatic_disease"])
            detail.refills(implantation, patient, treatments, complications)
            detail.perfusion(checks, reason)
            toxicities = detail.systemic_toxicities(treated, first_dose, end)
            readmissions = detail.readmissions(imp, implantation["length_of_stay_days"], complications, end)

        # --- when each row was entered: a few days after the event, never before its implantation's row
        case_entered = self.entered(imp)
        patient["created_at"] = implantation["created_at"] = case_entered
        for rows, name in (
            (treatments, "given_on"),
            (liver_tests, "measured_on"),
            (checks, "checked_on"),
            (lines, "started_on"),
            (follow_ups, "contact_on"),
        ):
            for row in rows:
                row["created_at"] = self.entered(row[name], after=case_entered)
        for _, fields in complications:
            fields["created_at"] = self.entered(fields["onset_on"], after=case_entered)
        for rows, name in ((toxicities, "onset_on"), (readmissions, "occurred_on")):
            for row in rows:
                row["created_at"] = self.detail.entered(row[name], after=case_entered)
        return Case(
            patient,
            implantation,
            treatments,
            complications,
            liver_tests,
            checks,
            lines,
            follow_ups,
            toxicities,
            readmissions,
        )

    def entered(self, day, after=None):
        """(day, minute of the day, UTC) a row was entered: mostly within two weeks, never after the reference date."""
        return demo_detail.entered(self.rng, self.ref, day, after)

    def _complications(self, centre, indication, port, inexperienced, reason, drug, imp, first_dose, end):
        rng = self.rng
        drawn = []
        # The event that stopped treatment comes first and is always kept.
        if reason == "surgical_complication":
            code = rng.choice(EARLY_SURGICAL_TYPES)
            cd = _pick(rng, [("IIIa", 0.3), ("IIIb", 0.5), ("IVa", 0.2)])
            onset = min(imp + rng.randint(1, 14), end)
            drawn.append(self._complication(code, onset, end, cd=cd, lost=rng.random() < 0.4))
        elif reason == "extrahepatic_perfusion":
            onset = min(imp + rng.randint(4, 12), end)
            drawn.append(self._complication("extrahepatic_perfusion", onset, end, cd="IIIa", lost=rng.random() < 0.25))
        optional = []
        for code, spec in COMPLICATIONS.items():
            if spec.anchor == "first_dose" and reason:
                continue
            if code == "chemical_hepatitis" and drug != "fudr":
                continue
            if reason == "extrahepatic_perfusion" and code == "extrahepatic_perfusion":
                continue
            p = (spec.port if port else spec.pump) * centre.complication_factor
            if spec.learning and inexperienced:
                p = LEARNING_CURVE_ODDS_RATIO * p / (1 - p + LEARNING_CURVE_ODDS_RATIO * p)
            if rng.random() < p:
                anchor = imp if spec.anchor == "implant" else first_dose
                if code == "extrahepatic_perfusion":
                    onset = imp + rng.randint(3, max(3, first_dose - imp - 1))  # found on the scan before treatment
                else:
                    onset = anchor + rng.randint(*spec.onset)
                lost, related = rng.random() < spec.lost, rng.random() < spec.related
                optional.append(self._complication(code, onset, end, lost=lost, related=related))
        if drug == "fudr":
            p = BILIARY_SCLEROSIS_UNRESECTABLE if indication in UNRESECTABLE else BILIARY_SCLEROSIS[indication]
            if rng.random() < p:
                onset = first_dose + rng.randint(*BILIARY_SCLEROSIS_ONSET)
                lost = rng.random() < 0.05
                optional.append(self._complication("biliary_sclerosis", onset, end, lost=lost, related=False))
        optional = [c for c in optional if c is not None]
        if len(drawn) + len(optional) > 2:
            optional = rng.sample(optional, 2 - len(drawn))
        drawn = [c for c in drawn if c is not None] + optional
        drawn.sort(key=lambda c: c[1]["onset_on"])
        return drawn

    def _complication(self, code, onset, end, cd=None, lost=False, related=True):
        """(type code, fields), or None when the onset falls after the end of observation."""
        rng = self.rng
        if onset > end:
            return None
        grading = "ctcae" if code in TOXICITIES or code == "gastroduodenal_ulcer" else "clavien_dindo"
        if grading == "clavien_dindo":
            if cd is None:
                cd = _pick(
                    rng, [("I", 0.18), ("II", 0.34), ("IIIa", 0.30), ("IIIb", 0.13), ("IVa", 0.04), ("IVb", 0.01)]
                )
            if lost and cd in ("I", "II", "IIIa"):
                cd = "IIIb"  # a lost pump is taken out in theatre
            grade = CLAVIEN_GRADE[cd]
            management = {"I": "none", "II": "medical", "IIIa": "ir_procedure", "IIIb": "reoperation"}.get(
                cd, "reoperation" if rng.random() < 0.6 else "ir_procedure"
            )
        else:
            cd = ""
            grade = _pick(rng, [(1, 0.20), (2, 0.42), (3, 0.30), (4, 0.08)])
            if code == "biliary_sclerosis":
                management = _pick(rng, [("biliary_stent", 0.45), ("medical", 0.45), ("none", 0.10)])
            elif code == "chemical_hepatitis":
                management = _pick(rng, [("medical", 0.7), ("none", 0.3)])
            else:
                management = _pick(rng, [("medical", 0.85), ("ir_procedure", 0.10), ("reoperation", 0.05)])
        return (
            code,
            {
                "onset_on": onset,
                "grade": grade,
                "clavien_dindo": cd,
                "management": management,
                "pump_lost": lost,
                "related_to_pump": related,
            },
        )

    def _liver_test(self, day, baseline, complications, is_baseline):
        rng = self.rng
        ast, alp, bili = baseline
        if not is_baseline:
            for code, fields in complications:
                since = day - fields["onset_on"]
                if code == "biliary_sclerosis" and since >= -30:
                    alp *= rng.uniform(2.5, 5)
                    bili *= rng.uniform(1.5, 5)
                elif code == "chemical_hepatitis" and -14 <= since <= 60:
                    ast *= rng.uniform(3, 8)
        noise = rng.lognormvariate
        ast_v = None if rng.random() < 0.04 else _clamp(round(ast * noise(0, 0.15)), 5, 10000)
        alp_v = None if rng.random() < 0.04 else _clamp(round(alp * noise(0, 0.15)), 20, 10000)
        bili_v = None if rng.random() < 0.04 else Decimal(str(_clamp(round(bili * noise(0, 0.15), 1), 1.0, 999.9)))
        if ast_v is None and alp_v is None and bili_v is None:
            ast_v = round(ast)
        values = {
            "ast_u_per_l": ast_v,
            # ALT tracks AST in hepatocellular injury; derived, so the demo's random draws are unchanged.
            "alt_u_per_l": None if ast_v is None else _clamp(round(ast_v * 0.85), 5, 10000),
            "alp_u_per_l": alp_v,
            "bilirubin_umol_per_l": bili_v,
        }
        # A test left out of a panel is recorded as not done on every other day, left empty otherwise.
        codes = {f"{name}_missing": "not_done" for name, value in values.items() if value is None and day % 2}
        return {"measured_on": day, "is_baseline": is_baseline, **values, **codes}

    def _line(self, number, tumour, ras, began, ends, end, dead):
        rng = self.rng
        if tumour == "icca":
            regimen = "gemcis" if number == 1 else "other"
            biologic = "none"
        elif tumour == "colorectal":
            if number == 1:
                regimen = _pick(rng, [("folfox", 0.45), ("capox", 0.20), ("folfoxiri", 0.15), ("folfiri", 0.20)])
            elif number == 2:
                regimen = _pick(rng, [("folfiri", 0.6), ("folfox", 0.25), ("other", 0.15)])
            else:
                regimen = _pick(rng, [("other", 0.6), ("folfiri", 0.2), ("folfox", 0.2)])
            if ras == "wild_type":
                biologic = _pick(
                    rng, [("cetuximab", 0.35), ("panitumumab", 0.20), ("bevacizumab", 0.30), ("none", 0.15)]
                )
            else:
                biologic = _pick(rng, [("bevacizumab", 0.6), ("none", 0.4)])
        else:
            regimen = _pick(rng, [("other", 0.7), ("folfox", 0.3)])
            biologic = "none"
        if ends > end:  # still running at the last contact, or stopped by death
            ends = end if dead else None
        return {"line_number": number, "regimen": regimen, "biologic": biologic, "started_on": began, "ended_on": ends}


# --------------------------------------------------------------------------- writing


def clinical_models():
    """Clinical tables, children first."""
    from .models import (
        Complication,
        DataQuery,
        FollowUp,
        Implantation,
        LiverTest,
        Patient,
        PerfusionCheck,
        Readmission,
        SystemicTherapyLine,
        SystemicToxicity,
        Treatment,
    )

    return [
        DataQuery,  # data-quality queries about the records (issue 12)
        FollowUp,
        Treatment,  # before the liver tests its refills link to
        LiverTest,
        Complication,
        PerfusionCheck,
        SystemicToxicity,
        Readmission,
        SystemicTherapyLine,
        Implantation,
        Patient,
    ]


def existing_data():
    """Counts of rows that a seed would collide with."""
    from sites.models import Centre, Surgeon

    from .models import Implantation, Patient

    counts = {m._meta.label: m._base_manager.count() for m in (Centre, Surgeon, Patient, Implantation)}
    return {label: n for label, n in counts.items() if n}


def _delete_rows_pointing_at(targets):
    """Remove rows of other tables that point at ``targets`` (clear the link where it is SET_NULL).

    Returns True when any such table exists (then PostgreSQL cannot TRUNCATE the targets).
    """
    found = False
    for model in targets:
        for relation in model._meta.related_objects:
            other = relation.related_model
            if other in targets or relation.hidden:
                continue
            found = True
            rows = other._base_manager.filter(**{f"{relation.field.name}__isnull": False})
            if relation.on_delete is models.SET_NULL:
                rows.update(**{relation.field.name: None})
            else:
                rows.delete()
    return found


def first_release_name(reference_date, seed):
    """The data release ``seed_demo`` freezes last (a name not in use yet)."""
    from reports.models import Release

    base = f"demo-{reference_date:%Y-%m}" + (f"-seed-{seed}" if seed != 1 else "")
    name, number = base, 1
    while Release.objects.filter(name=name).exists():
        number += 1
        name = f"{base}-{number}"
    return name


def flush_registry():
    """Delete every clinical row and its history, then all centres and surgeons (and the demo's pump models).

    The big clinical tables are emptied with plain SQL (no per-row signals, so
    no history rows are written for 100,000s of deletions). Rows of other apps
    that point at them, or at a centre or surgeon (e.g. benchmark reports of a
    centre), are deleted through the ORM first: they describe data that is gone.
    """
    from reports.releases import discard_all_releases
    from sites.models import Centre, Surgeon

    from .models import PumpModel

    targets = clinical_models()
    with transaction.atomic():
        # The demo's data releases hold the demo's rows: they go with them.
        discard_all_releases()
        referenced = _delete_rows_pointing_at(targets)
        tables = [m._meta.db_table for m in targets] + [m.history.model._meta.db_table for m in targets]
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql" and not referenced:
                # Rows inserted earlier in this transaction leave deferred FK checks pending; run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("TRUNCATE " + ", ".join(quote(t) for t in tables))
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            else:
                for table in tables:
                    cursor.execute(f"DELETE FROM {quote(table)}")
        _delete_rows_pointing_at([Surgeon, Centre] + targets)
        Surgeon.objects.all().delete()
        Centre.objects.all().delete()  # cascades to report recipients and centre memberships
        # The demo's own pump catalogue entries go with the demo; a coordinator's are kept.
        PumpModel.objects.filter(name__in=demo_detail.PUMP_CATALOGUE, implantations__isnull=True).delete()


def _bulk(model, objects, batch_size):
    """bulk_create in batches kept under PostgreSQL's 65,535 bind parameters."""
    if not objects:
        return objects
    fields = len(model._meta.concrete_fields)
    return model.objects.bulk_create(objects, batch_size=max(1, min(batch_size, 60000 // fields)))


FOLLOW_UP_DATES = ("contact_on", "died_on", "resection_on", "hepatic_progression_on", "progression_on", "pump_ended_on")


class _RowWriter:
    """Writes rows given as {attname: value}: COPY on PostgreSQL, else bulk_create.

    COPY checks the same constraints (CHECK, NOT NULL, foreign keys) as INSERT
    and, like bulk_create, sends no signals, so no history rows.
    """

    def __init__(self, model, use_copy, batch_size):
        from django.utils import timezone

        self.model, self.use_copy, self.batch_size = model, use_copy, batch_size
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        # COPY would send a Python list as a PostgreSQL array ("{}" for an empty one), which jsonb reads as
        # an object: JSON columns are sent as JSON.
        self.json = {f.attname for f in self.fields if isinstance(f, models.JSONField)}
        now = timezone.now()
        # Values for columns a row leaves out (e.g. a field added later with a default).
        self.defaults = [
            now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
            for f in self.fields
        ]

    def write(self, rows):
        """Writes the rows; returns their primary keys, in order."""
        if not rows:
            return []
        if not self.use_copy:
            return [obj.pk for obj in _bulk(self.model, [self.model(**row) for row in rows], self.batch_size)]
        from psycopg.types.json import Jsonb

        quote = connection.ops.quote_name
        table = self.model._meta.db_table
        pk = self.model._meta.pk
        with connection.cursor() as cursor:
            # Keys drawn from the table's own sequence, as INSERT would: other rows (a refill's liver tests) point at them.
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [quote(table), pk.column, len(rows)],
            )
            ids = [value for (value,) in cursor.fetchall()]
            columns = ", ".join(quote(f.column) for f in (pk, *self.fields))
            spec = [
                (f.attname, default, f.attname in self.json)
                for f, default in zip(self.fields, self.defaults, strict=True)
            ]
            with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy:
                for key, row in zip(ids, rows, strict=True):
                    values = [key]
                    for name, default, is_json in spec:
                        value = row.get(name, default)
                        values.append(Jsonb(value) if is_json and value is not None else value)
                    copy.write_row(values)
        return ids


def _stamp(entered):
    day, minute = entered
    return dt.datetime.combine(dt.date.fromordinal(day), dt.time(minute // 60, minute % 60), tzinfo=dt.UTC)


def _date(ordinal):
    return dt.date.fromordinal(ordinal) if ordinal is not None else None


DEMO_USERS_CENTRES = 2  # the largest centres get a data manager and a centre lead

# The records the shipped import templates name (docs/import_template.csv, docs/import_templates/): seeded
# in the first demo data manager's centre with ``seed_registry(..., import_examples=True)`` (``seed_demo``
# does). HAI-IMPORT01 has an implantation on 2024-01-15 (the child forms' rows hang off it); HAI-IMPORT02
# and HAI-IMPORT03 have none yet (the implantation template's rows create them).
IMPORT_EXAMPLE_NAMES = {
    "centre": "",  # empty: the data manager's only centre
    "surgeon": "DEMO-S01",
    "patient": "HAI-IMPORT01",
    "implanted_on": "2024-01-15",
    "new_patient": "HAI-IMPORT02",
    "new_patient_2": "HAI-IMPORT03",
    "new_implanted_on": "2024-03-01",
    "new_implanted_on_2": "2024-04-15",
}
IMPORT_EXAMPLES_FROM = dt.date(2024, 12, 31)  # seeded only when the reference date is on or after


def demo_pump_models(PumpModel):
    """The demo's pump catalogue ({name: pk}): created when missing, left as the coordinator keeps it otherwise."""
    found = {}
    for name, (manufacturer, kind, reservoir, flow, _) in demo_detail.PUMP_CATALOGUE.items():
        model, _ = PumpModel.objects.get_or_create(
            name=name,
            defaults={
                "manufacturer": manufacturer,
                "kind": kind,
                "reservoir_volume_ml": reservoir,
                "nominal_flow_ml_per_day": flow,
            },
        )
        found[name] = model.pk
    return found


def seed_import_examples(centre_id):
    """The surgeon and patients the shipped import templates name, in centre ``centre_id``; returns counts."""
    from sites.models import Surgeon

    from .models import Implantation, Patient

    names = IMPORT_EXAMPLE_NAMES
    surgeon = _bulk(Surgeon, [Surgeon(code=names["surgeon"], centre_id=centre_id, prior_pump_count=30)], 1)[0]
    patients = _bulk(
        Patient,
        [
            Patient(
                pseudonym=pseudonym,
                centre_id=centre_id,
                birth_year=1958 + i,
                sex=("female", "male", "female")[i],
                primary_tumour="colorectal",
                ras_status="wild_type",
                liver_metastases_count=5,
                bilobar_disease=True,
                extrahepatic_disease=False,
                prior_systemic_lines=1,
                consent_on=dt.date(2024, 1, 5),
                created_at=_stamp((dt.date(2024, 1, 5).toordinal(), 9 * 60)),
            )
            for i, pseudonym in enumerate((names["patient"], names["new_patient"], names["new_patient_2"]))
        ],
        3,
    )
    implanted_on = dt.date.fromisoformat(names["implanted_on"])
    _bulk(
        Implantation,
        [
            Implantation(
                patient_id=patients[0].pk,
                surgeon_id=surgeon.pk,
                implanted_on=implanted_on,
                indication="unresectable_first_line",
                approach="laparotomy",
                device="constant_flow_pump",
                operative_minutes=240,
                blood_loss_ml=300,
                length_of_stay_days=6,
                created_at=_stamp((implanted_on.toordinal() + 2, 9 * 60)),
            )
        ],
        1,
    )
    return {"sites.Surgeon": 1, "registry.Patient": 3, "registry.Implantation": 1}


def create_demo_users(centres):
    """Demo accounts for each role; returns [(username, role, centre code or '')]."""
    from sites.models import Membership, Role

    User = get_user_model()
    wanted = [("coordinator", Role.COORDINATOR, None), ("investigator", Role.INVESTIGATOR, None)]
    for centre in centres[:DEMO_USERS_CENTRES]:
        wanted.append((f"dm-{centre.code.lower()}", Role.DATA_MANAGER, centre))
        wanted.append((f"lead-{centre.code.lower()}", Role.CENTRE_LEAD, centre))
    table = []
    encoded = make_password(DEMO_PASSWORD)  # one slow hash for all: they share the documented password
    for username, role, centre in wanted:
        user = User.objects.filter(username=username).first() or User(username=username)
        user.email = f"{username}@demo.example.org"
        user.is_active = True
        user.password = encoded
        user.save()
        Membership.objects.filter(user=user).delete()
        Membership.objects.bulk_create([Membership(user=user, role=role, centre_id=centre.pk if centre else None)])
        table.append((username, role.label, centre.code if centre else "all centres"))
    return table


def seed_registry(
    centres,
    implantations,
    seed,
    reference_date=REFERENCE_DATE,
    stdout=None,
    batch_size=BATCH_SIZE,
    copy=None,
    progress=None,
    import_examples=False,
):
    """Plan and write the demo registry; returns {model label: rows written} plus 'users'.

    ``import_examples``: also seed the records the shipped import templates name (``IMPORT_EXAMPLE_NAMES``).

    ``progress(written, total)``, if given, is called after each chunk of
    implantations is written (and once with 0 before the first).

    Centres, surgeons, patients and implantations go through ``bulk_create``
    (their returned primary keys wire the foreign keys). The child tables do
    too, except on PostgreSQL where by default (``copy=None``) they are
    streamed with ``COPY``, several times faster; ``copy=False`` forces
    ``bulk_create`` everywhere. Both give identical rows.

    The database must hold no centres, surgeons, patients or implantations
    (see ``flush_registry``). Runs in one transaction.
    """
    from sites.models import Centre, ReportRecipient, Surgeon

    from .models import (
        Complication,
        ComplicationType,
        FollowUp,
        Implantation,
        LiverTest,
        Patient,
        PerfusionCheck,
        PumpModel,
        Readmission,
        SystemicTherapyLine,
        SystemicToxicity,
        Treatment,
    )
    from .rules import today

    if centres < 1:
        raise ValueError("At least one centre is needed.")
    if implantations < 0:
        raise ValueError("The number of implantations cannot be negative.")
    if reference_date > today():
        raise ValueError(f"The reference date {reference_date} is in the future; records cannot be dated after today.")

    def say(message):
        if stdout is not None:
            stdout.write(message)

    rng = random.Random(seed)
    plans, accrual_end = plan_centres(rng, centres, implantations, reference_date)
    skeletons = plan_skeletons(rng, plans, accrual_end)
    counts = {
        m._meta.label: 0
        for m in (
            Centre,
            Surgeon,
            ReportRecipient,
            Patient,
            Implantation,
            Treatment,
            Complication,
            LiverTest,
            PerfusionCheck,
            SystemicTherapyLine,
            FollowUp,
            SystemicToxicity,
            Readmission,
        )
    }

    with transaction.atomic():
        types = {t.code: t.pk for t in ComplicationType.objects.all()}
        needed = set(COMPLICATIONS) | {"biliary_sclerosis"}
        missing = sorted(needed - set(types))
        if missing:
            raise ValueError(f"Complication types missing (run the migrations): {', '.join(missing)}")

        rows = [Centre(code=c.code, name=c.name, country=c.country, active=True) for c in plans]
        rows = _bulk(Centre, rows, batch_size)
        for plan, row in zip(plans, rows, strict=True):
            plan.pk = row.pk
        surgeon_rows = [
            Surgeon(code=s.code, centre_id=c.pk, prior_pump_count=s.prior, active=s.left is None)
            for c in plans
            for s in c.surgeons
        ]
        surgeon_rows = _bulk(Surgeon, surgeon_rows, batch_size)
        flat = [s for c in plans for s in c.surgeons]
        for plan, row in zip(flat, surgeon_rows, strict=True):
            plan.pk = row.pk
        recipients = []
        for c in plans:
            domain = f"{c.code.lower()}.demo.example.org"
            recipients += [
                ReportRecipient(centre_id=c.pk, email=f"hai-lead@{domain}"),
                ReportRecipient(centre_id=c.pk, email=f"registry-office@{domain}"),
            ]
        _bulk(ReportRecipient, recipients, batch_size)
        counts["sites.Centre"], counts["sites.Surgeon"] = len(plans), len(flat)
        counts["sites.ReportRecipient"] = len(recipients)
        users = create_demo_users(plans)
        pump_models = demo_pump_models(PumpModel)
        detail = demo_detail.DetailFactory(random.Random(f"{seed}-detail"), reference_date.toordinal(), pump_models)
        factory = CaseFactory(rng, plans, reference_date, detail)
        say(f"Planned {len(plans)} centres, {len(flat)} surgeons, {len(skeletons)} implantations.")
        if copy is None:
            copy = connection.vendor == "postgresql"
        # Patients and implantations too: their keys come back from write() and wire the children.
        parents = {model: _RowWriter(model, copy, batch_size) for model in (Patient, Implantation)}
        writers = {
            model: _RowWriter(model, copy, batch_size)
            # Liver tests before the refills that link to them.
            for model in (
                LiverTest,
                Treatment,
                Complication,
                PerfusionCheck,
                SystemicTherapyLine,
                FollowUp,
                SystemicToxicity,
                Readmission,
            )
        }

        if progress is not None:
            progress(0, len(skeletons))
        for start in range(0, len(skeletons), batch_size):
            chunk = skeletons[start : start + batch_size]
            cases = [factory.build(sk) for sk in chunk]
            patients = parents[Patient].write(
                [
                    {
                        **case.patient,
                        "centre_id": plans[sk.centre].pk,
                        "consent_on": _date(case.patient["consent_on"]),
                        "created_at": _stamp(case.patient["created_at"]),
                    }
                    for sk, case in zip(chunk, cases, strict=True)
                ]
            )
            implants = parents[Implantation].write(
                [
                    {
                        **case.implantation,
                        "patient_id": patient,
                        "surgeon_id": plans[sk.centre].surgeons[sk.surgeon].pk,
                        "implanted_on": _date(case.implantation["implanted_on"]),
                        "created_at": _stamp(case.implantation["created_at"]),
                    }
                    for sk, case, patient in zip(chunk, cases, patients, strict=True)
                ]
            )
            children = {model: [] for model in writers}
            for case, patient, pk in zip(cases, patients, implants, strict=True):
                children[Complication] += [
                    dict(
                        c,
                        implantation_id=pk,
                        type_id=types[code],
                        onset_on=_date(c["onset_on"]),
                        created_at=_stamp(c["created_at"]),
                    )
                    for code, c in case.complications
                ]
                children[LiverTest] += [
                    dict(t, implantation_id=pk, measured_on=_date(t["measured_on"]), created_at=_stamp(t["created_at"]))
                    for t in case.liver_tests
                ]
                for name, model, date_name in (
                    ("systemic_toxicities", SystemicToxicity, "onset_on"),
                    ("readmissions", Readmission, "occurred_on"),
                ):
                    children[model] += [
                        dict(
                            row,
                            implantation_id=pk,
                            created_at=_stamp(row["created_at"]),
                            **{date_name: _date(row[date_name])},
                        )
                        for row in getattr(case, name)
                    ]
                children[PerfusionCheck] += [
                    dict(p, implantation_id=pk, checked_on=_date(p["checked_on"]), created_at=_stamp(p["created_at"]))
                    for p in case.perfusion_checks
                ]
                children[SystemicTherapyLine] += [
                    dict(
                        line,
                        patient_id=patient,
                        started_on=_date(line["started_on"]),
                        ended_on=_date(line["ended_on"]),
                        created_at=_stamp(line["created_at"]),
                    )
                    for line in case.systemic_lines
                ]
                children[FollowUp] += [
                    dict(
                        f,
                        implantation_id=pk,
                        created_at=_stamp(f["created_at"]),
                        **{name: _date(f[name]) for name in FOLLOW_UP_DATES},
                    )
                    for f in case.follow_ups
                ]
            counts["registry.Patient"] += len(patients)
            counts["registry.Implantation"] += len(implants)
            liver_test_ids = writers[LiverTest].write(children.pop(LiverTest))
            counts["registry.LiverTest"] += len(liver_test_ids)
            offset = 0
            for case, implant in zip(cases, implants, strict=True):
                for t in case.treatments:
                    index = t.get("liver_test_index")
                    children[Treatment].append(
                        dict(
                            {k: v for k, v in t.items() if k != "liver_test_index"},
                            implantation_id=implant,
                            given_on=_date(t["given_on"]),
                            created_at=_stamp(t["created_at"]),
                            liver_test_id=None if index is None else liver_test_ids[offset + index],
                        )
                    )
                offset += len(case.liver_tests)
            for model, rows in children.items():
                counts[model._meta.label] += len(writers[model].write(rows))
            say(f"  {start + len(chunk)} / {len(skeletons)} implantations written")
            if progress is not None:
                progress(start + len(chunk), len(skeletons))
        if import_examples and plans and reference_date >= IMPORT_EXAMPLES_FROM:
            # The records the shipped import templates name (IMPORT_EXAMPLE_NAMES).
            for label, n in seed_import_examples(plans[0].pk).items():
                counts[label] += n
    counts["users"] = users
    return counts


def registry_digest():
    """SHA-256 of every demo row by natural keys (no primary keys; entry times are seeded too).

    Two databases seeded with the same options have the same digest.
    """
    from sites.models import Centre, Membership, ReportRecipient, Surgeon

    from .models import (
        Complication,
        FollowUp,
        Implantation,
        LiverTest,
        Patient,
        PerfusionCheck,
        Readmission,
        SystemicTherapyLine,
        SystemicToxicity,
        Treatment,
    )

    # Foreign keys are replaced by the natural key of the row they point at.
    natural_keys = {
        "centre": "centre__code",
        "surgeon": "surgeon__code",
        "patient": "patient__pseudonym",
        "implantation": "implantation__patient__pseudonym",
        "type": "type__code",
        "user": "user__username",
        "pump_model": "pump_model__name",
        "liver_test": "liver_test__measured_on",
        "replaces": "replaces__implanted_on",
    }
    digest = hashlib.sha256()
    for model in (
        Centre,
        Surgeon,
        ReportRecipient,
        Membership,
        Patient,
        Implantation,
        SystemicTherapyLine,
        Treatment,
        Complication,
        LiverTest,
        PerfusionCheck,
        FollowUp,
        SystemicToxicity,
        Readmission,
    ):
        names = [natural_keys.get(f.name, f.name) for f in model._meta.concrete_fields if not f.primary_key]
        digest.update(model._meta.label.encode())
        for row in sorted(repr(row) for row in model._base_manager.values_list(*names)):
            digest.update(row.encode())
    return digest.hexdigest()
