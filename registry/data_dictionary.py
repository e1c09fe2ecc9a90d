"""The data dictionary: one row per field of every form a data manager fills (issue 13).

After REDCap's data dictionary, but generated from the models, so it cannot drift from them: a field
added to a model appears here (``tests/test_data_dictionary.py`` checks every editable field of each
form against the model). Each row says the field's form, its name (as the API and the CSV import
spell it), label, type, unit, whether it is required, its allowed values (choice codes with labels;
for a reference, what it refers to), its range (from the validators), the companion that carries its
missing-data code (``registry.missing_data``) and its help text.

Served as CSV and HTML in the admin (``registry.admin_site``: /admin/registry/data-dictionary/) and
as JSON or CSV by the API (``GET /api/v1/data-dictionary/``).
"""

import csv
import io
import re

from django.core import validators
from django.db import models

from . import missing_data
from .fields import CodedSetField
from .models import (
    Complication,
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

# The forms a data manager fills, in the order of data entry: (form name, model).
FORMS = (
    ("patient", Patient),
    ("implantation", Implantation),
    ("perfusion_check", PerfusionCheck),
    ("treatment", Treatment),
    ("complication", Complication),
    ("liver_test", LiverTest),
    ("follow_up", FollowUp),
    ("systemic_toxicity", SystemicToxicity),
    ("readmission", Readmission),
    ("systemic_therapy_line", SystemicTherapyLine),
    # The pump catalogue the coordinator keeps (an implantation's pump_model names one of its rows).
    ("pump_model", PumpModel),
)

FORM_TITLES = {
    "patient": "Patient",
    "implantation": "Implantation",
    "perfusion_check": "Perfusion check",
    "treatment": "HAI dose (treatment)",
    "complication": "Complication",
    "liver_test": "Liver tests",
    "follow_up": "Follow-up",
    "systemic_toxicity": "Systemic toxicity (CTCAE v5.0)",
    "readmission": "Readmission or reoperation",
    "systemic_therapy_line": "Systemic therapy line",
    "pump_model": "Pump model (the catalogue, kept by the coordinator)",
}

# Internal columns: the row's id, its version (sites.versioning) and its entry time are no one's to fill.
INTERNAL_FIELDS = frozenset({"id", "version", "created_at"})

# What a reference field takes, by (model, field).
REFERENCES = {
    (Patient, "centre"): "centre code (e.g. LYON)",
    (Implantation, "patient"): "patient: its registry id in the API, its registry pseudonym in the CSV import",
    (Implantation, "surgeon"): "surgeon code (registry code of a surgeon of the patient's centre)",
    (Implantation, "replaces"): "implantation: the registry id of the same patient's replaced implantation "
    "(not in the CSV import)",
    (Complication, "type"): "complication type code (GET /api/v1/vocabularies/complication-types/)",
    (Implantation, "pump_model"): "pump model: a model of the pump catalogue (form pump_model), by its name in the "
    "CSV import, its registry id in the API; active models only for a new record",
    (Treatment, "liver_test"): "liver tests: the registry id of the same implantation's liver tests in the API; in "
    "the CSV import the column liver_test_measured_on, the date of those liver tests (YYYY-MM-DD)",
    (SystemicTherapyLine, "patient"): "patient: its registry id",
}
IMPLANTATION_REFERENCE = "implantation: its registry id"

NOTE_MARK = "free text for the centre; never shown to investigators"

COLUMNS = (
    "form",
    "field",
    "label",
    "type",
    "unit",
    "required",
    "allowed_values",
    "range",
    "missing_code_field",
    "help_text",
    "note",
)

_UNIT = re.compile(r"\(([^()]+)\)\s*$")


def _type(field):
    if isinstance(field, CodedSetField):
        return "set of choices"
    if field.is_relation:
        return "reference"
    if field.choices:
        return "choice"
    if isinstance(field, models.BooleanField):
        return "yes/no"
    if isinstance(field, models.DateTimeField):
        return "date and time"
    if isinstance(field, models.DateField):
        return "date"
    if isinstance(field, models.DecimalField):
        return "decimal"
    if isinstance(field, (models.IntegerField, models.FloatField)):
        return "integer" if isinstance(field, models.IntegerField) else "decimal"
    return "text"


def _unit(model, field):
    if any(other.name == f"{field.name}_unit" for other in model._meta.concrete_fields):
        return f"as given in {field.name}_unit"
    match = _UNIT.search(str(field.verbose_name))
    if match:
        unit = match.group(1)
        return "" if unit == "RECIST" else unit
    return ""


def _label(field):
    label = _UNIT.sub("", str(field.verbose_name)).strip()
    return label[:1].upper() + label[1:]


def _range(field):
    low = high = None
    for validator in field._validators:  # the model's own, not the database column's integer bounds
        if isinstance(validator, validators.MinValueValidator):
            low = validator.limit_value
        elif isinstance(validator, validators.MaxValueValidator):
            high = validator.limit_value
    positive = (models.PositiveBigIntegerField, models.PositiveIntegerField, models.PositiveSmallIntegerField)
    if low is None and isinstance(field, positive) and high is not None:
        low = 0
    if low is None and high is None:
        return ""
    if high is None:
        return f"≥ {low}"
    return f"{0 if low is None else low}–{high}"


def _allowed(model, field):
    if field.is_relation:
        if field.name == "implantation":
            return IMPLANTATION_REFERENCE
        return REFERENCES.get((model, field.name), f"{field.related_model._meta.verbose_name}")
    if field.choices:
        return "; ".join(f"{code} = {label}" for code, label in field.flatchoices)
    if isinstance(field, CodedSetField):
        # Any number of these codes: a list in the API, separated by ";" in the CSV import.
        return "; ".join(f"{code} = {label}" for code, label in field.choices_for_form())
    if isinstance(field, models.BooleanField):
        return "yes; no" if not field.null else "yes; no; empty = not known"
    if isinstance(field, models.DateField):
        return "YYYY-MM-DD"
    return ""


def _required(field):
    if isinstance(field, models.BooleanField):
        return not field.null and not field.has_default()
    return not field.blank and not field.has_default()


def _is_note(field):
    # A model's SHOWN_TEXT_FIELDS (a trial identifier and arm, say) are text investigators do see.
    shown = getattr(field.model, "SHOWN_TEXT_FIELDS", ())
    if field.model is PumpModel:
        return False  # the catalogue is registry-wide reference data, not a centre's note
    return (
        isinstance(field, (models.CharField, models.TextField))
        and not field.choices
        and not field.unique
        and field.name not in shown
    )


def fields_of(model):
    """The fields a data manager fills on ``model``'s form: editable, concrete, not internal."""
    return [
        field
        for field in model._meta.concrete_fields
        if field.editable and not field.auto_created and field.name not in INTERNAL_FIELDS
    ]


def rows():
    """One dict per field of every form, with the keys of ``COLUMNS``."""
    out = []
    for form, model in FORMS:
        coded = set(getattr(model, "MISSING_DATA_FIELDS", ()))
        for field in fields_of(model):
            help_text = str(field.help_text or "")
            if field.name.endswith(missing_data.SUFFIX) and field.name.removesuffix(missing_data.SUFFIX) in coded:
                help_text = f"Why {field.name.removesuffix(missing_data.SUFFIX)} is empty. {help_text}".strip()
            out.append(
                {
                    "form": form,
                    "field": field.name,
                    "label": _label(field),
                    "type": _type(field),
                    "unit": _unit(model, field),
                    "required": _required(field),
                    "allowed_values": _allowed(model, field),
                    "range": _range(field),
                    "missing_code_field": missing_data.companion(field.name) if field.name in coded else "",
                    "help_text": help_text,
                    "note": NOTE_MARK if _is_note(field) else "",
                }
            )
    return out


def as_csv(dictionary_rows=None):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS))
    writer.writeheader()
    for row in dictionary_rows if dictionary_rows is not None else rows():
        writer.writerow({**row, "required": "yes" if row["required"] else "no"})
    return buffer.getvalue()
