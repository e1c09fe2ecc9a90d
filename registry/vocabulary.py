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
    I = "I", "I"  # noqa: E741 (Clavien-Dindo grade I)
    II = "II", "II"
    IIIA = "IIIa", "IIIa"
    IIIB = "IIIb", "IIIb"
    IVA = "IVa", "IVa"
    IVB = "IVb", "IVb"
    V = "V", "V (death)"


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
    TREATMENT_COMPLETED = "treatment_completed", "Treatment completed"
    COMPLICATION = "complication", "Complication"
    PROGRESSION = "progression", "Progression"
    PUMP_FAILURE = "pump_failure", "Pump or catheter failure"
    PATIENT_CHOICE = "patient_choice", "Patient choice"
    OTHER = "other", "Other"
