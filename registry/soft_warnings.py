"""Soft warnings (issue 12): values that are implausible but possible, saved once the user confirms them.

A hard rule (``Model.clean()``, ``vocabulary.DOSE_RANGES``, the database's check constraints) refuses a
value outright. A soft warning only asks: the value is unusual, is it right? ``registry.services.save_record``
raises ``UnconfirmedWarnings`` for every warning the caller did not confirm, and writes nothing; saved again
with the warnings' codes confirmed, the record is saved and each confirmation is kept
(``SoftWarningConfirmation``: who, when, and the message as the user saw it). Hard rules are checked first,
so a value a hard rule refuses never reaches a warning and cannot be confirmed.

The API sends the codes as ``confirmed_warnings``; the admin has a box per warning; the import a box for the
whole file. The codes below are a contract with API clients: add warnings, never rename a code.

**Asked once per value.** A warning already confirmed for the same record with the same message is not asked
again (say on a later, unrelated edit of the record). The message shows the value (and for the first dose,
the dates), so a changed value is a new message and is asked again; comparing messages rather than fields also
re-asks when the value is changed and changed back, which is deliberate: each value saved is vouched for.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError

from . import refills
from .vocabulary import DoseChange, DoseUnit, Drug

# --- Thresholds: each one a value that is rare enough to be worth a second look, not an impossible one ----

# The usual FUDR dose range of issue 12: 0.1-0.3 mg/kg/day. The MSKCC starting dose is 0.12 mg/kg/day
# (× the pump's flow rate, for 14 days); 0.3 is already 2.5 times that. The hard range (DOSE_RANGES) is wider.
FUDR_USUAL_LOW = Decimal("0.1")
FUDR_USUAL_HIGH = Decimal("0.3")
# A pump placement takes 2-4 hours, 6-8 with a hepatectomy or colorectal resection; over 10 h is rare.
LONG_OPERATIVE_MINUTES = 600
# Most patients go home within 1-2 weeks; a two-month stay is a major complication or a data entry slip.
LONG_STAY_DAYS = 60
# 3 L is more than half an adult's blood volume: a massive haemorrhage, or a millilitre/centilitre mix-up.
HIGH_BLOOD_LOSS_ML = 3000

CONFIRM_HINT = "If the value is right, confirm it and save again."


@dataclass(frozen=True)
class SoftWarning:
    """One warning about one record: a stable code, the field it concerns and a message showing the value."""

    code: str
    field: str
    message: str

    def as_dict(self):
        return {"code": self.code, "field": self.field, "message": self.message}


class UnconfirmedWarnings(ValidationError):
    """Raised by ``save_record`` for warnings not confirmed: a ``ValidationError`` with each message on its field.

    ``warnings`` is the list of ``SoftWarning`` not confirmed; nothing was written.
    """

    def __init__(self, warnings):
        self.warnings = list(warnings)
        errors = {}
        for warning in self.warnings:
            errors.setdefault(warning.field, []).append(
                ValidationError(f"{warning.message} {CONFIRM_HINT}", code=warning.code)
            )
        super().__init__(errors)


def _fmt(value):
    return f"{value:,}" if isinstance(value, int) else str(value)


# --- The catalogue: (model label, code, field, check); check(record) -> message or None --------------------


def _fudr_dose_outside_usual(treatment):
    if treatment.drug != Drug.FUDR or treatment.dose_unit != DoseUnit.MG_PER_KG_PER_DAY or treatment.dose is None:
        return None
    dose = Decimal(str(treatment.dose))
    if FUDR_USUAL_LOW <= dose <= FUDR_USUAL_HIGH:
        return None
    # Written without trailing zeros, so that 0.5 typed and 0.500 read back are the same message.
    return (
        f"A FUDR dose of {dose.normalize():f} mg/kg/day is outside the usual {FUDR_USUAL_LOW}–{FUDR_USUAL_HIGH} mg/kg/day "
        "(MSKCC starting dose 0.12 mg/kg/day)."
    )


def _dose_differs_from_computed(treatment):
    if treatment.dose_change == DoseChange.HELD:
        return None
    check = refills.dose_check(treatment)
    if check is None:
        return None
    computed, flow, basis = check
    gap = refills.dose_difference(treatment.dose, computed)
    if gap is None or gap <= refills.DOSE_TOLERANCE:
        return None
    stated = Decimal(str(treatment.dose)).normalize()
    return (
        f"The stated dose of {stated:f} mg/kg/day and the dose this fill gives, {computed.normalize():f} mg/kg/day "
        f"({treatment.drug_concentration_mg_per_ml.normalize():f} mg/mL × {flow.normalize():f} mL/day {basis} flow ÷ "
        f"{treatment.body_weight_kg.normalize():f} kg), are {gap * 100:.0f}% apart (more than "
        f"{refills.DOSE_TOLERANCE * 100:.0f}%)."
    )


def _first_dose_on_implantation_day(treatment):
    implantation = treatment.parent
    if implantation is None or treatment.dose_change == DoseChange.HELD:  # a held cycle is not a dose
        return None
    if treatment.given_on is None or treatment.given_on != implantation.implanted_on:
        return None
    return (
        f"This dose is given on the implantation day ({treatment.given_on.isoformat()}): 0 days to first dose; "
        "the pump is usually first filled some days after the operation."
    )


def _above(field, limit, described, unit):
    def check(record):
        value = getattr(record, field)
        if value is None or value <= limit:
            return None
        return f"{described} of {_fmt(value)} {unit} is unusually high (over {_fmt(limit)} {unit})."

    return check


CATALOGUE = [
    ("registry.treatment", "fudr_dose_outside_usual", "dose", _fudr_dose_outside_usual),
    ("registry.treatment", "first_dose_on_implantation_day", "given_on", _first_dose_on_implantation_day),
    ("registry.treatment", "dose_differs_from_computed", "dose", _dose_differs_from_computed),
    (
        "registry.implantation",
        "operative_time_long",
        "operative_minutes",
        _above("operative_minutes", LONG_OPERATIVE_MINUTES, "An operative time", "min"),
    ),
    (
        "registry.implantation",
        "length_of_stay_long",
        "length_of_stay_days",
        _above("length_of_stay_days", LONG_STAY_DAYS, "A length of stay", "days"),
    ),
    (
        "registry.implantation",
        "blood_loss_high",
        "blood_loss_ml",
        _above("blood_loss_ml", HIGH_BLOOD_LOSS_ML, "A blood loss", "mL"),
    ),
]
CODES = frozenset(code for _, code, _, _ in CATALOGUE)


def codes_for(model):
    """The codes of the warnings that may be raised about records of ``model``."""
    return [code for label, code, _, _ in CATALOGUE if label == model._meta.label_lower]


def current_warnings(record):
    """Every warning the record's values raise now, confirmed or not."""
    label = record._meta.label_lower
    found = []
    for model_label, code, field, check in CATALOGUE:
        if model_label == label:
            message = check(record)
            if message:
                found.append(SoftWarning(code, field, message[:300]))
    return found


def warnings_for(record):
    """The warnings to ask about before saving ``record`` (unsaved, or changed in memory).

    Leaves out a warning confirmed earlier for this same record with the same message (the same value).
    """
    from .models import SoftWarningConfirmation

    found = current_warnings(record)
    if not found or not record.pk:
        return found
    confirmed = set(
        SoftWarningConfirmation.objects.filter(
            record_model=record._meta.label_lower, record_id=record.pk, code__in=[w.code for w in found]
        ).values_list("code", "message")
    )
    return [w for w in found if (w.code, w.message) not in confirmed]


def unconfirmed(warnings, confirmed_codes):
    confirmed_codes = set(confirmed_codes or ())
    return [w for w in warnings if w.code not in confirmed_codes]


def record_confirmations(record, warnings, user):
    """Keep that ``user`` confirmed ``warnings`` for the saved ``record``: one row per warning."""
    from sites import access

    from .models import SoftWarningConfirmation

    if not warnings:
        return []
    centre_id = access.centre_id_of(record)
    name = user.get_username() if user is not None and user.is_authenticated else ""
    return SoftWarningConfirmation.objects.bulk_create(
        SoftWarningConfirmation(
            centre_id=centre_id,
            record_model=record._meta.label_lower,
            record_id=record.pk,
            code=w.code,
            message=w.message,
            confirmed_by=user if name else None,
            confirmed_by_name=name,
        )
        for w in warnings
    )
