"""The richer record's demo values (issue 14): pump models and refills, operative anatomy, perfusion
findings, case mix, systemic toxicity, readmissions and trials, for ``registry.demo``.

Everything here is drawn from its own random stream (``random.Random(f"{seed}-detail")``), never from
the one ``registry.demo`` plans and builds the cases with: the calibrated figures in that module's
docstring (never treated, complications, survival, ...) stay exactly as they were, and this module only
adds columns and rows around them.

Rates, and where they come from
-------------------------------
- Grade 3-4 systemic toxicity among treated implantations: neutropenia 22.2% and neurotoxicity 9.8%
  (``shared/domain/seeds/000``, HAI with systemic chemotherapy), drawn as those shares; grade 1-2 events,
  diarrhoea and thrombocytopenia are demo values.
- Hepatic arterial variants at roughly Michels' prevalence (Michels, Am J Surg 1966;112:337: replaced
  left 10%, accessory left 8%, replaced right 11%, accessory right 7%, replaced common 2.5%); how each is
  handled, and every other figure here (ECOG, CEA, the Fong score's items, BRAF 8%, MSI-high 3%, trial
  shares, readmissions, pump catalogue specifications), are demo values, not published figures.
- Pump catalogue: three demo entries. Their reservoirs and rates are illustrative values for a demo, not a
  manufacturer's specification.

Refills follow ``registry.refills``: the volume returned is what the pump did not deliver since the
previous fill (the pump's own rate, a few per cent off its nominal one), and the pharmacy makes up each
FUDR fill from the stated mg/kg/day, the weight and the rate measured at that refill (the nominal rate
at the first), with a little rounding: the computed dose is within a few per cent of the stated one, so
the demo raises no ``dose_differs_from_computed`` warning.
"""

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal

from . import refills
from .vocabulary import (
    MODALITY_OF_METHOD,
    BrafStatus,
    CatheterTipPosition,
    ExtrahepaticDiseaseSite,
    ExtrahepaticPerfusionSite,
    HoldReason,
    MsiStatus,
    PerfusionCorrection,
    ReadmissionKind,
    ReadmissionReason,
    SystemicToxicityTerm,
    VariantHandling,
)

# name: (manufacturer, kind, reservoir mL, nominal flow mL/day or None, share of that kind's pumps)
PUMP_CATALOGUE = {
    "Codman 3000 (demo)": ("Codman", "constant_flow_pump", Decimal("30.0"), Decimal("0.80"), 0.6),
    "Intera 3000 (demo)": ("Intera Oncology", "constant_flow_pump", Decimal("30.0"), Decimal("0.80"), 0.4),
    "SynchroMed II (demo)": ("Medtronic", "programmable_pump", Decimal("40.0"), None, 1.0),
}
PROGRAMMED_FLOW = Decimal("1.00")  # mL/day, the rate a programmable pump is set to in the demo

# (field, Michels prevalence, handling weights ligated / embolised / left alone)
VARIANTS = (
    ("replaced_left_hepatic_artery", 0.10, (0.80, 0.05, 0.15)),
    ("accessory_left_hepatic_artery", 0.08, (0.85, 0.05, 0.10)),
    ("replaced_right_hepatic_artery", 0.11, (0.70, 0.10, 0.20)),
    ("accessory_right_hepatic_artery", 0.07, (0.80, 0.05, 0.15)),
    ("replaced_common_hepatic_artery", 0.025, (0.0, 0.0, 1.0)),  # the catheter goes elsewhere; not ligated
)
HANDLING = (VariantHandling.LIGATED, VariantHandling.EMBOLISED, VariantHandling.NONE)
TIP_OF_VESSEL = {
    "gastroduodenal": CatheterTipPosition.GASTRODUODENAL_ORIGIN,
    "common_hepatic": CatheterTipPosition.COMMON_HEPATIC,
    "proper_hepatic": CatheterTipPosition.PROPER_HEPATIC,
    "other": CatheterTipPosition.OTHER,
}

# The free-text note registry.demo writes for a reduced or held cycle -> the coded reason it is.
HOLD_REASON_OF_NOTE = {
    "Neutropenia": HoldReason.SYSTEMIC_TOXICITY,
    "Bilirubin above 1.5x upper limit": HoldReason.BILIRUBIN,
    "Intercurrent infection": HoldReason.OTHER,
    "Patient request": HoldReason.PATIENT_CHOICE,
    "Abdominal pain": HoldReason.OTHER,
    "ALP above 1.5x baseline": HoldReason.ALP,
    "AST above 3x baseline": HoldReason.AST,
    "Bilirubin rise": HoldReason.BILIRUBIN,
    "Diarrhoea grade 2": HoldReason.SYSTEMIC_TOXICITY,
    "Fatigue": HoldReason.OTHER,
    "Neuropathy": HoldReason.SYSTEMIC_TOXICITY,
    "Thrombocytopenia": HoldReason.SYSTEMIC_TOXICITY,
    "Extrahepatic perfusion suspected; cycle held": HoldReason.OTHER,
}
# A reduction for a liver-test rise during a drug toxicity is coded as that toxicity.
TOXICITY_HOLD_REASON = {
    "biliary_sclerosis": HoldReason.BILIARY_SCLEROSIS,
    "chemical_hepatitis": HoldReason.CHEMICAL_HEPATITIS,
}

# (term, share of treated implantations with grade 3-4, share with grade 1-2)
SYSTEMIC_TOXICITIES = (
    (SystemicToxicityTerm.NEUTROPENIA, 0.222, 0.20),  # seeds/000: grade 3-4 neutropenia 22.2%
    (SystemicToxicityTerm.NEUROPATHY, 0.098, 0.25),  # seeds/000: grade 3-4 neurotoxicity 9.8%
    (SystemicToxicityTerm.DIARRHOEA, 0.05, 0.15),
    (SystemicToxicityTerm.THROMBOCYTOPENIA, 0.04, 0.10),
)
REOPERATION_REASON = {
    "pocket_infection": ReadmissionReason.INFECTION,
    "pocket_seroma": ReadmissionReason.PUMP_POCKET,
    "catheter_occlusion": ReadmissionReason.CATHETER,
    "catheter_dislodgement": ReadmissionReason.CATHETER,
    "hepatic_artery_thrombosis": ReadmissionReason.CATHETER,
    "extrahepatic_perfusion": ReadmissionReason.CATHETER,
    "pump_malfunction": ReadmissionReason.PUMP_POCKET,
    "gastroduodenal_ulcer": ReadmissionReason.GASTROINTESTINAL_ULCER,
    "biliary_sclerosis": ReadmissionReason.BILIARY,
}
BACKGROUND_READMISSION = 0.07  # within 90 days, not from a recorded complication
BACKGROUND_REASONS = (
    (ReadmissionReason.INFECTION, 0.3),
    (ReadmissionReason.OTHER, 0.4),
    (ReadmissionReason.BLEEDING, 0.1),
    (ReadmissionReason.GASTROINTESTINAL_ULCER, 0.05),
    (ReadmissionReason.BILIARY, 0.15),
)

# Fictitious trial identifiers (the format of ClinicalTrials.gov numbers, no real trial): (id, arms, share)
TRIALS = {
    "NL": ("NCT09990001", ("HAI + systemic", "systemic alone"), 0.15),
    "US": ("NCT09990002", ("FUDR + dexamethasone", "FUDR"), 0.08),
}
EXTRAHEPATIC_TRIAL = ("NCT09990003", "", 0.25)  # extrahepatic disease treated within a trial

TENTH = Decimal("0.1")
THOUSANDTH = Decimal("0.001")


def _pick(rng, pairs):
    return rng.choices([v for v, _ in pairs], [w for _, w in pairs])[0]


def _date(ordinal):
    return dt.date.fromordinal(ordinal)


def _tenth(value):
    return Decimal(str(value)).quantize(TENTH, ROUND_HALF_UP)


_ORDER = {}


def in_vocabulary_order(codes, vocabulary):
    """The codes as ``CodedSetField`` stores them: once each, in the vocabulary's order."""
    if not codes:
        return []
    order = _ORDER.get(vocabulary) or _ORDER.setdefault(vocabulary, tuple(vocabulary.values))
    return [value for value in order if value in set(codes)]


def entered(rng, reference, day, after=None):
    """(day, minute of the day) a row was entered: mostly within two weeks, never after the reference date."""
    stamp = (min(day + min(90, int(rng.expovariate(1 / 6))), reference), rng.randint(7 * 60, 18 * 60))
    return max(stamp, after) if after is not None else stamp


class DetailFactory:
    """Adds the richer record to a case that ``registry.demo.CaseFactory`` built."""

    def __init__(self, rng, reference, pump_models):
        self.rng = rng
        self.ref = reference
        # {kind: [(pk, nominal flow, reservoir, share)]}
        self.pumps = {}
        for name, (_, kind, reservoir, flow, share) in PUMP_CATALOGUE.items():
            self.pumps.setdefault(kind, []).append((pump_models[name], flow, reservoir, share))

    # --- the patient at implant
    def case_mix(self, patient, indication, implanted_on):
        rng = self.rng
        colorectal = patient["primary_tumour"] == "colorectal"
        patient["ecog"] = None if rng.random() < 0.05 else _pick(rng, [(0, 0.55), (1, 0.38), (2, 0.07)])
        cea = None
        if rng.random() >= 0.08:
            median = {"adjuvant": 4.0, "unresectable_first_line": 25.0}.get(indication, 15.0) if colorectal else 3.0
            cea = min(Decimal("99999.9"), _tenth(rng.lognormvariate(math.log(median), 1.3)))
        patient["cea_ng_per_ml"] = cea
        score = None
        if colorectal and cea is not None and rng.random() >= 0.15:
            # Fong 1999: node-positive primary, disease-free interval < 12 months, > 1 tumour, CEA > 200 ng/mL,
            # largest tumour > 5 cm; one point each.
            mets = patient["liver_metastases_count"]
            score = (
                (rng.random() < 0.6)
                + (rng.random() < 0.6)
                + (mets is not None and mets > 1)
                + (cea > 200)
                + (rng.random() < 0.3)
            )
        patient["clinical_risk_score"] = score
        # Known missing on every other day, left empty otherwise (as registry.demo does for the other items).
        for name in ("ecog", "cea_ng_per_ml", "clinical_risk_score"):
            if patient[name] is None and implanted_on % 2 and (name != "clinical_risk_score" or colorectal):
                patient[name + "_missing"] = "unknown"
        if colorectal:
            patient["braf_status"] = _pick(
                rng, [(BrafStatus.WILD_TYPE, 0.77), (BrafStatus.V600E, 0.08), (BrafStatus.UNKNOWN, 0.15)]
            )
            patient["msi_status"] = _pick(
                rng, [(MsiStatus.MSS, 0.82), (MsiStatus.MSI_HIGH, 0.03), (MsiStatus.UNKNOWN, 0.15)]
            )
        sites = []
        if patient["extrahepatic_disease"] and rng.random() >= 0.1:
            weights = [
                (ExtrahepaticDiseaseSite.LUNG, 0.50),
                (ExtrahepaticDiseaseSite.PORTAL_NODES, 0.20),
                (ExtrahepaticDiseaseSite.PERITONEUM, 0.12),
                (ExtrahepaticDiseaseSite.OTHER_NODES, 0.10),
                (ExtrahepaticDiseaseSite.BONE, 0.03),
                (ExtrahepaticDiseaseSite.OTHER, 0.05),
            ]
            sites = [_pick(rng, weights) for _ in range(1 if rng.random() < 0.75 else 2)]
        patient["extrahepatic_sites"] = in_vocabulary_order(sites, ExtrahepaticDiseaseSite)

    # --- the operation note
    def operation(self, implantation, percutaneous, country, extrahepatic):
        rng = self.rng
        device = implantation["device"]
        if device != "arterial_port":
            models = self.pumps[device]
            implantation["pump_model_id"] = rng.choices([m[0] for m in models], [m[3] for m in models])[0]
        for name, prevalence, weights in VARIANTS:
            if rng.random() < prevalence:
                if percutaneous:  # no ligation at a percutaneous placement: coiled, or left alone
                    weights = (0.0, weights[0] + weights[1], weights[2])
                implantation[name] = rng.choices(HANDLING, weights)[0]
        if rng.random() >= 0.04:
            implantation["catheter_tip_position"] = TIP_OF_VESSEL[implantation["catheter_vessel"]]
        if not percutaneous:
            implantation["gastroduodenal_branches_ligated"] = None if rng.random() < 0.05 else rng.random() < 0.95
            implantation["right_gastric_artery_ligated"] = None if rng.random() < 0.05 else rng.random() < 0.85
            implantation["cholecystectomy"] = None if rng.random() < 0.03 else rng.random() < 0.92
        trial, arms, share = TRIALS.get(country, (None, (), 0.0))
        if extrahepatic and rng.random() < EXTRAHEPATIC_TRIAL[2]:
            implantation["trial"], implantation["trial_arm"] = EXTRAHEPATIC_TRIAL[0], EXTRAHEPATIC_TRIAL[1]
        elif trial and rng.random() < share:
            implantation["trial"], implantation["trial_arm"] = trial, rng.choice(arms)

    def _flow_of(self, implantation):
        """(nominal flow, reservoir, the pump's own flow) for a pump; None for a port."""
        pk = implantation.get("pump_model_id")
        if pk is None:
            return None
        for models in self.pumps.values():
            for model_pk, nominal, reservoir, _ in models:
                if model_pk == pk:
                    rate = nominal if nominal is not None else PROGRAMMED_FLOW
                    own = Decimal(str(rate)) * Decimal(str(self.rng.gauss(1, 0.04)))
                    return nominal, reservoir, own
        raise ValueError(f"Pump model {pk} is not a demo pump")

    # --- refills
    def refills(self, implantation, patient, treatments, complications):
        rng = self.rng
        pump = self._flow_of(implantation)
        weight = rng.gauss(77 if patient["sex"] == "male" else 66, 12)
        previous = None  # (day, filled mL)
        for treatment in treatments:
            weight = min(150.0, max(40.0, weight + rng.gauss(-0.3, 0.8)))
            treatment["body_weight_kg"] = _tenth(weight)
            held = treatment["dose_change"] == "held"
            if treatment["dose_change"] != "full":
                reason = HOLD_REASON_OF_NOTE[treatment["dose_change_reason"]]
                toxicity = next(
                    (
                        c[0]
                        for c in complications
                        if c[0] in TOXICITY_HOLD_REASON and c[1]["onset_on"] <= treatment["given_on"]
                    ),
                    None,
                )
                if toxicity and reason in (HoldReason.ALP, HoldReason.AST, HoldReason.BILIRUBIN):
                    reason = TOXICITY_HOLD_REASON[toxicity]
                treatment["hold_reason"] = reason
            if pump is None:
                continue  # an arterial port: a bolus, no reservoir
            nominal, reservoir, own = pump
            day = treatment["given_on"]
            flow = None
            if previous is not None:
                days = day - previous[0]
                delivered = min(previous[1] - Decimal("0.5"), own * days)
                returned = _tenth(previous[1] - delivered)
                treatment["returned_volume_ml"] = returned
                # The days here are ordinals; refills takes dates.
                flow = refills.measured_flow(previous[1], _date(previous[0]), returned, _date(day))
            else:
                # The first refill empties the saline the pump was primed with in theatre: not a measured flow.
                treatment["returned_volume_ml"] = _tenth(max(0.0, rng.gauss(3, 1)))
            filled = reservoir if rng.random() < 0.9 else reservoir - Decimal("2.0")
            treatment["filled_volume_ml"] = filled
            treatment["heparin_units"] = 30000 if rng.random() < 0.8 else None
            if not held and treatment["drug"] == "fudr" and treatment["dose_unit"] == "mg/kg/day":
                basis = flow if flow is not None else nominal
                if basis is not None:
                    # The pharmacy's make-up: concentration = dose × weight ÷ flow (registry.refills).
                    made_up = treatment["dose"] * treatment["body_weight_kg"] / Decimal(str(basis))
                    made_up *= Decimal(str(rng.uniform(0.98, 1.02)))
                    treatment["drug_concentration_mg_per_ml"] = made_up.quantize(THOUSANDTH, ROUND_HALF_UP)
                treatment["dexamethasone_mg"] = Decimal("25.0") if rng.random() < 0.7 else None
            previous = (day, filled)

    # --- perfusion checks
    def perfusion(self, checks, never_treated_reason):
        rng = self.rng
        for check in checks:
            check["modality"] = MODALITY_OF_METHOD[check["method"]]
            if check["extrahepatic_perfusion"]:
                sites = [
                    _pick(
                        rng,
                        [
                            (ExtrahepaticPerfusionSite.STOMACH, 0.45),
                            (ExtrahepaticPerfusionSite.DUODENUM, 0.30),
                            (ExtrahepaticPerfusionSite.PANCREAS, 0.10),
                            (ExtrahepaticPerfusionSite.ABDOMINAL_WALL, 0.10),
                            (ExtrahepaticPerfusionSite.OTHER, 0.05),
                        ],
                    )
                    for _ in range(1 if rng.random() < 0.8 else 2)
                ]
                check["extrahepatic_sites"] = in_vocabulary_order(sites, ExtrahepaticPerfusionSite)
                check["correction"] = _pick(
                    rng,
                    [
                        (PerfusionCorrection.VESSEL_EMBOLISED, 0.55),
                        (PerfusionCorrection.VESSEL_LIGATED, 0.20),
                        (PerfusionCorrection.CATHETER_REPOSITIONED, 0.15),
                        (PerfusionCorrection.OTHER, 0.10),
                    ],
                )
                # registry.demo's note for this reason says the embolisation failed.
                failed = never_treated_reason == "extrahepatic_perfusion"
                check["repeat_check_normal"] = False if failed else rng.random() < 0.85
            else:
                check["extrahepatic_sites"] = []
                if rng.random() < 0.04:
                    check["incomplete_hepatic_perfusion"] = True
                    check["correction"] = PerfusionCorrection.VESSEL_LIGATED
                    check["repeat_check_normal"] = rng.random() < 0.8
                elif rng.random() < 0.9:
                    check["incomplete_hepatic_perfusion"] = False
                    check["correction"] = PerfusionCorrection.NONE

    # --- events after the operation
    def systemic_toxicities(self, treated, first_dose, end):
        rng = self.rng
        rows = []
        if not treated or end - first_dose < 7:
            return rows
        for term, severe, mild in SYSTEMIC_TOXICITIES:
            draw = rng.random()
            if draw < severe:
                grade = 4 if rng.random() < 0.15 else 3
            elif draw < severe + mild:
                grade = rng.choice((1, 2))
            else:
                continue
            rows.append(
                {"term": term, "grade": grade, "onset_on": first_dose + rng.randint(7, min(150, end - first_dose))}
            )
        return rows

    def readmissions(self, implanted_on, length_of_stay, complications, end):
        rng = self.rng
        rows = []
        for code, fields in complications:
            onset = fields["onset_on"]
            if fields["management"] == "reoperation":
                day = min(onset + rng.randint(0, 3), end)
                rows.append(
                    {
                        "kind": ReadmissionKind.REOPERATION,
                        "occurred_on": day,
                        "reason": REOPERATION_REASON.get(code, "other"),
                    }
                )
            if fields["grade"] >= 3 and rng.random() < 0.7:
                rows.append(
                    {
                        "kind": ReadmissionKind.READMISSION,
                        "occurred_on": min(onset + rng.randint(0, 2), end),
                        "reason": REOPERATION_REASON.get(code, ReadmissionReason.OTHER),
                    }
                )
        if rng.random() < BACKGROUND_READMISSION:
            day = implanted_on + (length_of_stay or 5) + rng.randint(1, 85)
            if day <= end:
                rows.append(
                    {"kind": ReadmissionKind.READMISSION, "occurred_on": day, "reason": _pick(rng, BACKGROUND_REASONS)}
                )
        rows.sort(key=lambda row: (row["occurred_on"], row["kind"]))
        return rows

    def entered(self, day, after):
        return entered(self.rng, self.ref, day, after)
