"""Controlled vocabularies fixed by the data dictionary.

Complication types are a table instead (``ComplicationType``) because the
coordinator extends them.
"""

from django.db import models


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"


class PrimaryTumour(models.TextChoices):
    COLORECTAL = "colorectal", "Colorectal"
    INTRAHEPATIC_CHOLANGIOCARCINOMA = "icca", "Intrahepatic cholangiocarcinoma"
    OTHER = "other", "Other"


class RasStatus(models.TextChoices):
    WILD_TYPE = "wild_type", "RAS wild-type"
    MUTANT = "mutant", "RAS mutant"
    UNKNOWN = "unknown", "Unknown"


class Indication(models.TextChoices):
    UNRESECTABLE_FIRST_LINE = "unresectable_first_line", "Unresectable liver metastases, first line"
    UNRESECTABLE_AFTER_PROGRESSION = (
        "unresectable_after_progression",
        "Unresectable liver metastases, after progression on systemic therapy",
    )
    ADJUVANT = "adjuvant", "Adjuvant after liver resection"
    UNRESECTABLE_ICCA = "unresectable_icca", "Unresectable intrahepatic cholangiocarcinoma"
    OTHER = "other", "Other"


class Approach(models.TextChoices):
    LAPAROTOMY = "laparotomy", "Laparotomy"
    LAPAROSCOPIC = "laparoscopic", "Laparoscopic"
    ROBOTIC = "robotic", "Robotic"
    PERCUTANEOUS = "percutaneous", "Percutaneous"


class Device(models.TextChoices):
    CONSTANT_FLOW_PUMP = "constant_flow_pump", "Implanted constant-flow pump"
    PROGRAMMABLE_PUMP = "programmable_pump", "Implanted programmable pump"
    ARTERIAL_PORT = "arterial_port", "Arterial port"


class CatheterVessel(models.TextChoices):
    GASTRODUODENAL = "gastroduodenal", "Gastroduodenal artery"
    COMMON_HEPATIC = "common_hepatic", "Common hepatic artery"
    PROPER_HEPATIC = "proper_hepatic", "Proper hepatic artery"
    OTHER = "other", "Other"


class NeverTreatedReason(models.TextChoices):
    SURGICAL_COMPLICATION = "surgical_complication", "Surgical complication"
    EXTRAHEPATIC_PERFUSION = "extrahepatic_perfusion", "Extrahepatic perfusion"
    PROGRESSION = "progression", "Disease progression"
    EXTRAHEPATIC_DISEASE = "extrahepatic_disease", "Extrahepatic disease found"
    PATIENT_CHOICE = "patient_choice", "Patient choice"
    OTHER = "other", "Other"


class PerfusionTiming(models.TextChoices):
    INTRAOPERATIVE = "intraoperative", "Intra-operative (e.g. methylene blue)"
    POSTOPERATIVE = "postoperative", "Post-operative (e.g. Tc-99m MAA scintigraphy)"


class PerfusionMethod(models.TextChoices):
    METHYLENE_BLUE = "methylene_blue", "Methylene blue / fluorescein"
    MAA_SCINTIGRAPHY = "maa_scintigraphy", "Tc-99m MAA scintigraphy"
    ANGIOGRAPHY = "angiography", "Angiography / CT angiography"
    OTHER = "other", "Other"


class Drug(models.TextChoices):
    FUDR = "fudr", "Floxuridine (FUDR)"
    OXALIPLATIN = "oxaliplatin", "Oxaliplatin"
    FLUOROURACIL = "5fu", "5-fluorouracil"
    IRINOTECAN = "irinotecan", "Irinotecan"
    OTHER = "other", "Other"


class DoseUnit(models.TextChoices):
    MG_PER_KG_PER_DAY = "mg/kg/day", "mg/kg/day"
    MG_PER_M2 = "mg/m2", "mg/m²"
    MG = "mg", "mg"


# (drug, unit) -> inclusive plausible range. FUDR's label range is 0.1-0.6
# mg/kg/day; reductions to a quarter of the 0.12 starting dose are common, hence 0.01.
# A pair not listed here is not a plausible prescription for that drug.
DOSE_RANGES = {
    (Drug.FUDR, DoseUnit.MG_PER_KG_PER_DAY): (0.01, 0.6),
    (Drug.OXALIPLATIN, DoseUnit.MG_PER_M2): (25, 150),
    (Drug.FLUOROURACIL, DoseUnit.MG_PER_M2): (100, 3000),
    (Drug.IRINOTECAN, DoseUnit.MG_PER_M2): (25, 350),
    (Drug.OTHER, DoseUnit.MG_PER_KG_PER_DAY): (0.001, 100),
    (Drug.OTHER, DoseUnit.MG_PER_M2): (0.1, 5000),
    (Drug.OTHER, DoseUnit.MG): (0.1, 10000),
}


class DoseChange(models.TextChoices):
    FULL = "full", "Full dose"
    REDUCED = "reduced", "Reduced"
    HELD = "held", "Held"


class SystemicRegimen(models.TextChoices):
    FOLFOX = "folfox", "FOLFOX"
    FOLFIRI = "folfiri", "FOLFIRI"
    FOLFOXIRI = "folfoxiri", "FOLFOXIRI"
    CAPOX = "capox", "CAPOX"
    GEMCITABINE_CISPLATIN = "gemcis", "Gemcitabine-cisplatin"
    OTHER = "other", "Other"


class Biologic(models.TextChoices):
    NONE = "none", "None"
    BEVACIZUMAB = "bevacizumab", "Bevacizumab"
    CETUXIMAB = "cetuximab", "Cetuximab"
    PANITUMUMAB = "panitumumab", "Panitumumab"
    OTHER = "other", "Other"


class GradingSystem(models.TextChoices):
    CLAVIEN_DINDO = "clavien_dindo", "Clavien-Dindo (surgical events)"
    CTCAE = "ctcae", "CTCAE (toxicities)"


class ClavienDindo(models.TextChoices):
    """Values are the grades as stored and sent by the API; labels as a surgeon writes them."""

    I = "I", "Clavien-Dindo grade I"  # noqa: E741 (Clavien-Dindo grade I)
    II = "II", "Clavien-Dindo grade II"
    IIIA = "IIIa", "Clavien-Dindo grade IIIa"
    IIIB = "IIIb", "Clavien-Dindo grade IIIb"
    IVA = "IVa", "Clavien-Dindo grade IVa"
    IVB = "IVb", "Clavien-Dindo grade IVb"
    V = "V", "Clavien-Dindo grade V (death)"


class Management(models.TextChoices):
    NONE = "none", "None"
    MEDICAL = "medical", "Medical"
    IR_PROCEDURE = "ir_procedure", "Interventional radiology procedure"
    BILIARY_STENT = "biliary_stent", "Biliary stent"
    REOPERATION = "reoperation", "Reoperation"


class Response(models.TextChoices):
    COMPLETE = "CR", "Complete response"
    PARTIAL = "PR", "Partial response"
    STABLE = "SD", "Stable disease"
    PROGRESSIVE = "PD", "Progressive disease"
    NOT_EVALUABLE = "NE", "Not evaluable"


class ResectionMargin(models.TextChoices):
    R0 = "R0", "R0"
    R1 = "R1", "R1"
    R2 = "R2", "R2"


class VitalStatus(models.TextChoices):
    ALIVE = "alive", "Alive"
    DEAD = "dead", "Dead"


class PumpEndReason(models.TextChoices):
    """Why a pump's use ended: each reason is either a pump failure or a competing end of use.

    ``PUMP_FAILURE_END_REASONS`` below says which; ``reports.outcomes`` (pump failure)
    counts the first as events and the second as competing events, never as censoring.
    """

    TECHNICAL_COMPLICATION = (
        "technical_complication",
        "Pump failure: technical complication (catheter, pump, pocket, artery, extrahepatic perfusion)",
    )
    PUMP_FAILURE = "pump_failure", "Pump failure: pump or catheter malfunction"
    TREATMENT_COMPLETED = "treatment_completed", "End of use: treatment completed"
    RESECTION = "resection", "End of use: conversion to resection"
    PROGRESSION = "progression", "End of use: progression"
    TOXICITY = "toxicity", "End of use: toxicity"
    PATIENT_CHOICE = "patient_choice", "End of use: patient choice"
    OTHER = "other", "End of use: other reason"


# The reasons that mean the pump failed; every other reason is a competing end of use.
PUMP_FAILURE_END_REASONS = frozenset({PumpEndReason.TECHNICAL_COMPLICATION, PumpEndReason.PUMP_FAILURE})


class ComplicationCategory(models.TextChoices):
    """What a complication says about the programme (issue 8's outcome definitions).

    Technical complications are the operation's and the device's (ITT, from implantation);
    toxicities are the drug's (over treated implantations, from the first dose).
    """

    TECHNICAL = "technical", "Technical (catheter, pump, pocket, artery, extrahepatic perfusion)"
    TOXICITY = "toxicity", "Toxicity (biliary sclerosis, chemical hepatitis, gastroduodenal ulcer)"
    OTHER = "other", "Other"


# The data dictionary's complication types: (code, name, grading system, category, catheter-related).
# Migrations 0002 and 0004 put them in the database; the coordinator adds more in the admin.
COMPLICATION_TYPES = [
    ("biliary_sclerosis", "Biliary sclerosis", "ctcae", "toxicity", False),
    ("chemical_hepatitis", "Chemical hepatitis", "ctcae", "toxicity", False),
    ("catheter_occlusion", "Catheter thrombosis / occlusion", "clavien_dindo", "technical", True),
    ("catheter_dislodgement", "Catheter dislodgement", "clavien_dindo", "technical", True),
    ("hepatic_artery_thrombosis", "Hepatic artery thrombosis or dissection", "clavien_dindo", "technical", True),
    ("extrahepatic_perfusion", "Extrahepatic perfusion", "clavien_dindo", "technical", True),
    ("pocket_infection", "Pump pocket infection", "clavien_dindo", "technical", False),
    ("pocket_seroma", "Pump pocket seroma / haematoma", "clavien_dindo", "technical", False),
    ("pump_malfunction", "Pump malfunction", "clavien_dindo", "technical", False),
    ("gastroduodenal_ulcer", "Gastroduodenal ulcer", "ctcae", "toxicity", False),
    ("other", "Other", "clavien_dindo", "other", False),
]


# Clavien-Dindo IIIa and above: an intervention under anaesthesia, organ failure or death.
SEVERE_CLAVIEN_DINDO = frozenset({"IIIa", "IIIb", "IVa", "IVb", "V"})


def is_severe(grade, clavien_dindo=""):
    """Severe: Clavien-Dindo >= IIIa where it is recorded, otherwise grade >= 3 (CTCAE).

    Clavien-Dindo: Dindo, Demartines & Clavien, Ann Surg 2004;240:205. CTCAE v5.0 grades 3-5.
    """
    if clavien_dindo:
        return clavien_dindo in SEVERE_CLAVIEN_DINDO
    return grade is not None and grade >= 3


class MissingReason(models.TextChoices):
    """Why a value is absent, recorded in the value's companion field (REDCap's missing data codes).

    An empty companion and an empty value is *missing* (not yet entered); a code is *known to be
    missing*, which completeness counts apart (registry.missing_data).
    """

    UNKNOWN = "unknown", "Unknown"
    NOT_DONE = "not_done", "Not done"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


class SystemicToxicityTerm(models.TextChoices):
    """Systemic chemotherapy toxicities recorded alongside HAI (issue 14).

    Labels are the CTCAE v5.0 terms (Common Terminology Criteria for Adverse Events, version 5.0,
    US NCI, 27 November 2017), graded 1-5 by that version's definitions.
    """

    NEUTROPENIA = "neutropenia", "Neutrophil count decreased"
    NEUROPATHY = "neuropathy", "Peripheral sensory neuropathy"
    DIARRHOEA = "diarrhoea", "Diarrhea"
    THROMBOCYTOPENIA = "thrombocytopenia", "Platelet count decreased"
    OTHER = "other", "Other"


class ReadmissionKind(models.TextChoices):
    READMISSION = "readmission", "Readmission"
    REOPERATION = "reoperation", "Reoperation"


class ReadmissionReason(models.TextChoices):
    PUMP_POCKET = "pump_pocket", "Pump pocket"
    CATHETER = "catheter", "Catheter"
    BLEEDING = "bleeding", "Bleeding"
    INFECTION = "infection", "Infection"
    BILIARY = "biliary", "Biliary"
    GASTROINTESTINAL_ULCER = "gastrointestinal_ulcer", "Gastrointestinal ulcer"
    OTHER = "other", "Other"


# --- issue 14: the richer record -------------------------------------------------------------


class HoldReason(models.TextChoices):
    """Why an HAI dose was reduced or held (the reasons the MSKCC FUDR dose-modification table acts on)."""

    BILIRUBIN = "bilirubin", "Bilirubin rise"
    ALP = "alp", "ALP rise"
    AST = "ast", "AST rise"
    CHEMICAL_HEPATITIS = "chemical_hepatitis", "Chemical hepatitis"
    BILIARY_SCLEROSIS = "biliary_sclerosis", "Biliary sclerosis"
    SYSTEMIC_TOXICITY = "systemic_toxicity", "Systemic toxicity"
    PUMP_PROBLEM = "pump_problem", "Pump problem"
    PATIENT_CHOICE = "patient_choice", "Patient choice"
    OTHER = "other", "Other"


class HepaticArteryVariant(models.TextChoices):
    """Variant hepatic arterial anatomy met at HAI pump placement (Michels' classification).

    A replaced artery is the only supply of its territory; an accessory one supplies it besides
    the normal branch. A replaced common hepatic artery arises from the superior mesenteric artery.
    """

    REPLACED_LEFT = "replaced_left", "Replaced left hepatic artery"
    ACCESSORY_LEFT = "accessory_left", "Accessory left hepatic artery"
    REPLACED_RIGHT = "replaced_right", "Replaced right hepatic artery"
    ACCESSORY_RIGHT = "accessory_right", "Accessory right hepatic artery"
    REPLACED_COMMON = "replaced_common", "Replaced common hepatic artery"


class VariantHandling(models.TextChoices):
    LIGATED = "ligated", "Ligated"
    EMBOLISED = "embolised", "Embolised"
    NONE = "none", "Left alone"


class CatheterTipPosition(models.TextChoices):
    """Where the catheter tip lies; the standard is at the gastroduodenal artery's origin, not protruding."""

    GASTRODUODENAL_ORIGIN = "gastroduodenal_origin", "At the gastroduodenal artery origin"
    COMMON_HEPATIC = "common_hepatic", "In the common hepatic artery"
    PROPER_HEPATIC = "proper_hepatic", "In the proper hepatic artery"
    OTHER = "other", "Other"


class PerfusionModality(models.TextChoices):
    INTRAOPERATIVE_DYE = "intraoperative_dye", "Intra-operative dye"
    MAA_SPECT = "maa_spect", "Tc-99m MAA SPECT"
    OTHER = "other", "Other"


# The perfusion method recorded before issue 14 -> the modality it is (the data migration and clean()).
MODALITY_OF_METHOD = {
    PerfusionMethod.METHYLENE_BLUE: PerfusionModality.INTRAOPERATIVE_DYE,
    PerfusionMethod.MAA_SCINTIGRAPHY: PerfusionModality.MAA_SPECT,
    PerfusionMethod.ANGIOGRAPHY: PerfusionModality.OTHER,
    PerfusionMethod.OTHER: PerfusionModality.OTHER,
}


class ExtrahepaticPerfusionSite(models.TextChoices):
    STOMACH = "stomach", "Stomach"
    DUODENUM = "duodenum", "Duodenum"
    PANCREAS = "pancreas", "Pancreas"
    GALLBLADDER = "gallbladder", "Gallbladder"
    ABDOMINAL_WALL = "abdominal_wall", "Abdominal wall (falciform artery)"
    OTHER = "other", "Other"


class PerfusionCorrection(models.TextChoices):
    NONE = "none", "None needed"
    VESSEL_LIGATED = "vessel_ligated", "Vessel ligated"
    VESSEL_EMBOLISED = "vessel_embolised", "Vessel embolised"
    CATHETER_REPOSITIONED = "catheter_repositioned", "Catheter repositioned"
    OTHER = "other", "Other"


class BrafStatus(models.TextChoices):
    WILD_TYPE = "wild_type", "BRAF wild-type"
    V600E = "v600e", "BRAF V600E mutant"
    UNKNOWN = "unknown", "Unknown"


class MsiStatus(models.TextChoices):
    MSS = "mss", "Microsatellite stable (MSS) / pMMR"
    MSI_HIGH = "msi_high", "MSI-high / dMMR"
    UNKNOWN = "unknown", "Unknown"


class ExtrahepaticDiseaseSite(models.TextChoices):
    LUNG = "lung", "Lung"
    PERITONEUM = "peritoneum", "Peritoneum"
    PORTAL_NODES = "portal_nodes", "Portal (hilar) lymph nodes"
    OTHER_NODES = "other_nodes", "Other lymph nodes"
    BONE = "bone", "Bone"
    OTHER = "other", "Other"
