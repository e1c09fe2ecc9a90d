"""Bulk import from a file (Django admin, django-import-export), one resource per form.

=====================  ==========================  ==================================================
form                   resource                    one row of the file is
=====================  ==========================  ==================================================
patients               ``PatientResource``         a new patient (the registry generates the pseudonym)
implantations          ``ImplantationResource``    a pump (or port) implantation of an existing patient
HAI doses              ``TreatmentResource``       one HAI cycle or refill of an existing implantation
complications          ``ComplicationResource``    one complication of an existing implantation
liver tests            ``LiverTestResource``       one liver test panel of an existing implantation
follow-ups             ``FollowUpResource``        one follow-up contact of an existing implantation
perfusion checks       ``PerfusionCheckResource``  one perfusion check of an existing implantation
systemic toxicities    ``SystemicToxicityResource``  one grade 3-4 systemic toxicity event
readmissions           ``ReadmissionResource``     one readmission or reoperation of an implantation
=====================  ==========================  ==================================================

What they share (``RegistryResource``):

* **Scope.** Patients, surgeons, centres and implantations are looked up only among the importing user's
  editable records; another centre's record gets exactly the message a missing one gets.
* **Children find their implantation** by the patient's pseudonym and the implantation date, columns
  ``patient`` and ``implanted_on``; a complication its type by ``ComplicationType.code``; an implantation its
  pump by ``PumpModel.name`` (active catalogue models only); a refill its liver tests by their date
  (``liver_test_measured_on``: a liver test of the same implantation, imported before with the liver tests).
* **Sets of codes** (e.g. extrahepatic disease sites): the codes separated by ";", e.g. ``lung;bone``.
* **Values as in the model**: dates YYYY-MM-DD (a non-ISO date gets a message with the ISO form),
  vocabulary codes (any case), yes/no, whole numbers, decimals (point or comma).
* **Per-column messages**: ``result.invalid_rows[i].error_dict`` maps the column name to its messages;
  ``result.error_records`` lists them as (row, column, value, message), row 1 being the first row below
  the header. An unknown or repeated column is an error; entirely empty rows are skipped.
* **Every rule applies**: rows are saved through ``registry.services.save_record`` (centre, model rules,
  soft warnings, history with the change reason ``IMPORT_REASON``).
* **All or nothing**: one file is one transaction; any invalid row and nothing of the file is written.
* **Duplicates**: a row that repeats a record already in the registry (or earlier in the file) is refused,
  so a file imported twice is refused the second time (patients excepted: they have no natural key).

CSV files may be separated by commas, semicolons (Excel in French, Dutch or Italian settings) or tabs
(``DelimitedCSV`` detects which) and may start with a UTF-8 byte order mark.

Templates: ``docs/import_template.csv`` (implantations) and ``docs/import_templates/<form>.csv``, written
by ``template_csv(resource, DEMO names)`` and importable into the demo registry (``seed_demo``); the import
page offers the same file filled with the user's own centre's codes (``template_context(user)``).
"""

import csv
import datetime
import io
import re
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils.encoding import force_str
from import_export import fields, resources, widgets
from import_export.formats import base_formats
from import_export.results import RowResult

from sites import access
from sites.models import Centre, Surgeon

from . import missing_data, rules, soft_warnings
from .dates import parse_iso_date
from .fields import CodedSetField
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
    SystemicToxicity,
    Treatment,
)
from .soft_warnings import UnconfirmedWarnings
from .vocabulary import (
    Approach,
    CatheterTipPosition,
    CatheterVessel,
    Device,
    Indication,
    MissingReason,
    NeverTreatedReason,
    VariantHandling,
)

IMPORT_REASON = "Bulk import (admin file import)"

# Column order of the implantation file; the same as docs/import_template.csv. Each field that may carry a
# missing-data code (registry.missing_data) is followed by its code's column, e.g. operative_minutes_missing.
COLUMNS = [
    column
    for name in Implantation.ENTRY_FIELDS
    for column in ((name, missing_data.companion(name)) if name in Implantation.MISSING_DATA_FIELDS else (name,))
]
REQUIRED_COLUMNS = ["patient", "surgeon", "implanted_on", "indication", "approach", "device"]
SAVED_TYPES = (RowResult.IMPORT_TYPE_NEW, RowResult.IMPORT_TYPE_UPDATE, RowResult.IMPORT_TYPE_DELETE)
CONFIRM_WARNINGS_LABEL = "Confirm the warnings listed"
DELIMITERS = ",;\t"
MAX_ERROR_RECORDS = 5000  # kept for the error file; a file with more errors is wrong throughout anyway


def unconfirmed_warnings_message(row_numbers):
    rows = ", ".join(str(number) for number in row_numbers)
    return (
        f"Nothing was imported: {len(row_numbers)} row(s) of the file have unusual values (soft warnings) that "
        f"were not confirmed (row(s) {rows}). Upload the file again, check the warnings listed in the preview and "
        f"tick '{CONFIRM_WARNINGS_LABEL}' to import them."
    )


def _text(value):
    return "" if value is None else str(value).strip()


# --- Reading the file -----------------------------------------------------------------------------


def detect_delimiter(text):
    """Comma, semicolon or tab: the one the header line is separated by (comma when it cannot tell)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    found = [d for d in DELIMITERS if d in header]
    if len(found) == 1:
        return found[0]
    if not found:
        return ","
    try:
        return csv.Sniffer().sniff(header, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return max(found, key=header.count)


class DelimitedCSV(base_formats.CSV):
    """CSV separated by commas, semicolons or tabs (detected on the header line), with or without a BOM."""

    def create_dataset(self, in_stream, **kwargs):
        if isinstance(in_stream, bytes):
            in_stream = in_stream.decode(self.encoding or "utf-8-sig")
        text = in_stream.removeprefix("\ufeff")
        kwargs.setdefault("delimiter", detect_delimiter(text))
        return super().create_dataset(text, **kwargs)


def import_formats(formats):
    """The admin's import formats with CSV replaced by ``DelimitedCSV`` (same title, same position)."""
    return [DelimitedCSV if fmt is base_formats.CSV else fmt for fmt in formats]


# --- Dates ----------------------------------------------------------------------------------------

EXCEL_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]00:00(?::00)?$")  # a spreadsheet's date-time cell


def read_iso_date(text):
    """A date written YYYY-MM-DD, or ValueError with ``registry.dates``' message (it shows the ISO form)."""
    match = EXCEL_MIDNIGHT.match(text)
    return parse_iso_date(match[1] if match else text)


class CellError(ValueError):
    """A cell's message, and the column it belongs to when that is not the field's own."""

    def __init__(self, message, column=None):
        super().__init__(message)
        self.column = column


# --- Widgets: turn one cell into a value, or raise ValueError with a message for that column.
#
# import-export turns a ValueError raised while reading a cell into a
# ValidationError on that field, so every message below ends up on the column
# that is wrong, in the row that is wrong, instead of a traceback.


class ScopedLookupWidget(widgets.ForeignKeyWidget):
    """Finds a patient (by pseudonym) or surgeon (by code) among the importing user's editable records only.

    A record of another centre is looked for nowhere else, so it gets the very
    same message as one that does not exist.
    """

    def __init__(self, model, field, noun, key_label):
        super().__init__(model, field=field)
        self.noun = noun
        self.key_label = key_label
        self.user = None  # bound by RegistryResource.__init__

    def get_queryset(self, value, row, *args, **kwargs):
        # No user (or a user without a data-manager role) edits nothing: fail closed.
        return self.model.objects.editable_by(self.user)

    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        if not text:
            raise ValueError(f"Required: the {self.noun}'s {self.key_label}.")
        found = self.get_queryset(text, row).filter(**{self.field: text.upper()}).first()
        if found is None:
            raise ValueError(f"No {self.noun} '{text}' in your centres.")
        return found


class CentreWidget(ScopedLookupWidget):
    """The centre by code, among the user's editable centres; empty = the user's only centre."""

    def __init__(self):
        super().__init__(Centre, "code", "centre", "code")

    def clean(self, value, row=None, **kwargs):
        if not _text(value):
            centres = list(self.get_queryset(value, row)[:2])
            if len(centres) == 1:
                return centres[0]
            raise ValueError("Required: the centre's code (you enter data for more than one centre).")
        return super().clean(value, row, **kwargs)


class PseudonymWidget(widgets.CharWidget):
    """Empty: the registry generates the pseudonym. Only the coordinator sets one (as in the admin)."""

    def __init__(self):
        super().__init__(allow_blank=True)
        self.user = None

    def clean(self, value, row=None, **kwargs):
        text = _text(value).upper()
        if text and not access.is_coordinator(self.user):
            raise ValueError(
                "Leave the pseudonym empty: the registry generates it (only the coordinator sets one). "
                "Never put a name or hospital number in the file."
            )
        return text

    def render(self, value, obj=None, **kwargs):
        return value or "(generated)"


class ImplantationLookupWidget(widgets.ForeignKeyWidget):
    """A child row's implantation: the patient (column ``patient``) and the implantation date (``implanted_on``).

    Only the user's editable patients are looked in: another centre's patient is "not found" like a missing one.
    """

    def __init__(self):
        super().__init__(Implantation)
        self.user = None

    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        if not text:
            raise CellError("Required: the patient's registry pseudonym.", "patient")
        patient = Patient.objects.editable_by(self.user).filter(pseudonym=text.upper()).first()
        if patient is None:
            raise CellError(f"No patient '{text}' in your centres.", "patient")
        if row is None or "implanted_on" not in row:
            raise CellError("", "implanted_on")  # reported once, as a missing column
        date_text = row.get("implanted_on")
        if isinstance(date_text, datetime.datetime):
            implanted_on = date_text.date()
        elif isinstance(date_text, datetime.date):
            implanted_on = date_text
        elif not _text(date_text):
            raise CellError("Required: the implantation date, YYYY-MM-DD, e.g. 2024-03-01.", "implanted_on")
        else:
            try:
                implanted_on = read_iso_date(_text(date_text))
            except ValueError as error:
                raise CellError(str(error), "implanted_on") from None
        found = Implantation.objects.filter(patient=patient, implanted_on=implanted_on).first()
        if found is None:
            raise CellError(
                f"Patient {patient.pseudonym} has no implantation on {implanted_on.isoformat()}.", "implanted_on"
            )
        return found

    def render(self, value, obj=None, **kwargs):
        return value.patient.pseudonym if value is not None else ""


class ComplicationTypeWidget(widgets.ForeignKeyWidget):
    """A complication type by its code (``ComplicationType.code``, e.g. catheter_occlusion)."""

    def __init__(self):
        super().__init__(ComplicationType, field="code")

    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        codes = ", ".join(ComplicationType.objects.filter(active=True).order_by("code").values_list("code", flat=True))
        if not text:
            raise ValueError(f"Required: the complication type's code, one of: {codes}.")
        found = ComplicationType.objects.filter(code=text.lower()).first()
        if found is None:
            raise ValueError(f"Unknown complication type '{text}'. Use one of: {codes}.")
        return found

    def render(self, value, obj=None, **kwargs):
        return value.code if value is not None else ""


class PumpModelWidget(widgets.ForeignKeyWidget):
    """A pump model by its catalogue name (``PumpModel.name``, any case); empty = none (an arterial port)."""

    def __init__(self):
        super().__init__(PumpModel, field="name")

    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        if not text:
            return None
        names = ", ".join(PumpModel.objects.filter(active=True).order_by("name").values_list("name", flat=True))
        found = PumpModel.objects.filter(name__iexact=text).first()
        if found is None:
            raise ValueError(f"Unknown pump model '{text}'. Use a catalogue name: {names or '(none yet)'}.")
        if not found.active:
            # As in the admin: an inactive model stays on old records but is not chosen for new ones.
            raise ValueError(f"The pump model '{found.name}' is no longer in use. Use one of: {names}.")
        return found

    def render(self, value, obj=None, **kwargs):
        return value.name if value is not None else ""


class CodedSetWidget(widgets.Widget):
    """A set of codes from one vocabulary, separated by ";" (e.g. ``lung;bone``); empty = none."""

    SEPARATOR = ";"

    def __init__(self, vocabulary):
        super().__init__()
        self.codes = [str(code) for code in vocabulary.values]
        self.by_lower = {code.lower(): code for code in self.codes}

    def clean(self, value, row=None, **kwargs):
        parts = [part.strip() for part in _text(value).split(self.SEPARATOR)]
        parts = [part for part in parts if part]
        unknown = [part for part in parts if part.lower() not in self.by_lower]
        if unknown:
            raise ValueError(
                f"Unknown code(s) {', '.join(repr(part) for part in unknown)}. Use one or more of "
                f"{', '.join(self.codes)}, separated by '{self.SEPARATOR}'."
            )
        return list(dict.fromkeys(self.by_lower[part.lower()] for part in parts))

    def render(self, value, obj=None, **kwargs):
        return self.SEPARATOR.join(value or ())


class LiverTestDateColumn(fields.Field):
    """A refill's linked liver tests, named by their date: a liver test of the row's implantation on that day.

    Read once the ``patient`` column has found the implantation (it comes first); without one, that column's
    message is the row's error and this one says nothing more.
    """

    COLUMN = "liver_test_measured_on"

    def __init__(self):
        super().__init__(attribute="liver_test", column_name=self.COLUMN, widget=IsoDateWidget())

    def save(self, instance, row, is_m2m=False, **kwargs):
        measured_on = self.clean(row, **kwargs)
        if measured_on is None:
            instance.liver_test = None
            return
        if not instance.implantation_id:
            return
        found = (
            LiverTest.objects.filter(implantation_id=instance.implantation_id, measured_on=measured_on)
            .order_by("id")
            .first()
        )
        if found is None:
            raise ValueError(
                f"The implantation of {instance.implantation.implanted_on.isoformat()} has no liver tests on "
                f"{measured_on.isoformat()}: import the liver tests first, or leave this column empty."
            )
        instance.liver_test = found

    def get_value(self, instance):
        test = instance.liver_test if instance.liver_test_id else None
        return test.measured_on if test is not None else None


class IsoDateWidget(widgets.DateWidget):
    """A date written YYYY-MM-DD, and nothing else (no 01/03/2024: day and month are ambiguous)."""

    def __init__(self, required=False):
        super().__init__(format="%Y-%m-%d")
        self.required = required

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, datetime.datetime):  # spreadsheet formats may hand over real dates
            return value.date()
        if isinstance(value, datetime.date):
            return value
        text = _text(value)
        if not text:
            if self.required:
                raise ValueError("Required: a date written YYYY-MM-DD, e.g. 2024-03-01.")
            return None
        return read_iso_date(text)


class CodeWidget(widgets.CharWidget):
    """A code from one of the vocabularies in ``registry.vocabulary`` (case does not matter)."""

    def __init__(self, vocabulary, required=False, default=""):
        super().__init__(allow_blank=True)
        self.codes = [str(code) for code in getattr(vocabulary, "values", vocabulary)]
        self.by_lower = {code.lower(): code for code in self.codes}
        self.required = required
        self.default = default

    def clean(self, value, row=None, **kwargs):
        text = _text(value)
        listing = ", ".join(self.codes)
        if not text:
            if self.required:
                raise ValueError(f"Required: one of {listing}.")
            return self.default
        code = self.by_lower.get(text.lower())
        if code is None:
            raise ValueError(f"Unknown code '{text}'. Use one of: {listing}.")
        return code


class MissingCodeWidget(CodeWidget):
    """A missing-data code (``vocabulary.MissingReason``) for the value of ``value_column``; empty = none."""

    def __init__(self, value_column):
        super().__init__(MissingReason)
        self.value_column = value_column

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row, **kwargs)
        except ValueError:
            raise ValueError(
                f"Unknown missing-data code '{_text(value)}'. Use one of: {', '.join(self.codes)}, "
                f"and only when {self.value_column} is empty; or leave this column empty."
            ) from None


class YesNoWidget(widgets.BooleanWidget):
    """yes/no, y/n, true/false or 1/0; an empty cell means no (or, for ``empty=None``, not known)."""

    TRUE_TEXT = {"yes", "y", "true", "1"}
    FALSE_TEXT = {"no", "n", "false", "0"}

    def __init__(self, empty=False, **kwargs):
        super().__init__(**kwargs)
        self.empty = empty

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if text.endswith(".0"):  # 1.0 / 0.0 from spreadsheets
            text = text[:-2]
        if not text:
            return self.empty
        if text in self.TRUE_TEXT:
            return True
        if text in self.FALSE_TEXT:
            return False
        raise ValueError(f"Write yes or no (or 1/0, true/false); got '{_text(value)}'.")

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return "yes" if value else "no"


class WholeNumberWidget(widgets.IntegerWidget):
    """A whole number; the model's validators then check its range."""

    PATTERN = re.compile(r"^[+-]?\d+$")

    def __init__(self, required=False, default=None, **kwargs):
        super().__init__(**kwargs)
        self.required = required
        self.default = default

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            raise ValueError(f"Enter a whole number, e.g. 240 (got '{value}').")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = _text(value)
        if not text:
            if self.required:
                raise ValueError("Required: a whole number.")
            return self.default
        if not self.PATTERN.match(text):
            raise ValueError(f"Enter a whole number, e.g. 240 (got '{text}').")
        if len(text.lstrip("+-")) > 9:
            raise ValueError(f"'{text}' is far too large.")
        return int(text)


class DecimalNumberWidget(widgets.DecimalWidget):
    """A number with a decimal point (or a decimal comma, as Excel writes it in many languages)."""

    PATTERN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")

    def __init__(self, required=False, **kwargs):
        super().__init__(**kwargs)
        self.required = required

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            raise ValueError(f"Enter a number, e.g. 0.25 (got '{value}').")
        if isinstance(value, int | float):
            return Decimal(str(value))
        text = _text(value).replace(" ", "")
        if not text:
            if self.required:
                raise ValueError("Required: a number, e.g. 0.25.")
            return None
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")
        if not self.PATTERN.match(text) or len(text) > 20:
            raise ValueError(f"Enter a number, e.g. 0.25 (got '{_text(value)}').")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"Enter a number, e.g. 0.25 (got '{_text(value)}').") from None

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else format(value, "f")


class TextWidget(widgets.CharWidget):
    """Free text (e.g. why a dose was reduced); surrounding spaces are dropped."""

    def __init__(self):
        super().__init__(allow_blank=True)

    def clean(self, value, row=None, **kwargs):
        return _text(value)


def _column(name, widget, attribute=None):
    return fields.Field(attribute=attribute or name, column_name=name, widget=widget)


class ParentDateColumn(fields.Field):
    """The ``implanted_on`` column of a child row: read with ``patient`` to find the implantation."""

    def __init__(self):
        super().__init__(attribute=None, column_name="implanted_on", widget=IsoDateWidget(required=True))

    def get_value(self, instance):
        implantation = getattr(instance, "parent", None)
        return implantation.implanted_on if implantation is not None else None


def _auto_widget(model, field):
    """The widget for one model field, from its type, choices, blank and default."""
    companions = {missing_data.companion(name): name for name in getattr(model, "MISSING_DATA_FIELDS", ())}
    default = field.get_default() if field.has_default() else None
    required = not field.blank and not field.has_default()
    if field.name in companions:
        return MissingCodeWidget(companions[field.name])
    if isinstance(field, CodedSetField):
        return CodedSetWidget(field.vocabulary)
    if isinstance(field, models.BooleanField):
        return YesNoWidget(empty=None if field.null else bool(default))
    if field.choices:
        return CodeWidget(
            [code for code, _label in field.flatchoices], required=required, default=str(default) if default else ""
        )
    if isinstance(field, models.DateField):
        return IsoDateWidget(required=required)
    if isinstance(field, models.DecimalField):
        return DecimalNumberWidget(required=required)
    if isinstance(field, models.IntegerField):
        return WholeNumberWidget(required=required, default=default)
    return TextWidget()


def _entry_columns(model, special=()):
    """The entry columns of ``model`` in its field order, each coded field followed by its code's column."""
    coded = getattr(model, "MISSING_DATA_FIELDS", ())
    companions = {missing_data.companion(name) for name in coded}
    names = []
    for field in model._meta.concrete_fields:
        if field.primary_key or not field.editable or field.name in companions or field.name == "implantation":
            continue
        if field.is_relation and field.name not in special:
            continue
        names.append(field.name)
        if field.name in coded:
            names.append(missing_data.companion(field.name))
    return names


def _required_columns(model, columns):
    required = []
    for name in columns:
        try:
            field = model._meta.get_field(name)
        except Exception:
            continue
        if not field.is_relation and not field.blank and not field.has_default():
            required.append(name)
    return required


# --- The resources --------------------------------------------------------------------------------


class RegistryResource(resources.ModelResource):
    """What every form's import shares (module docstring): scope, messages per column, all or nothing.

    A subclass sets ``columns`` (the file's columns, in the template's order), ``required_columns``,
    ``form`` (the name in URLs and template files) and ``examples`` (the template's rows; see
    ``template_rows``), and may refine ``duplicate_errors``.
    """

    columns = ()
    required_columns = ()
    form = ""
    examples = ()

    class Meta:
        abstract = True

    def __init__(self, user=None, confirm_warnings=False, **kwargs):
        super().__init__(**kwargs)
        self.user = user
        # Soft warnings (registry.soft_warnings): the preview lists them per row; the import saves rows with
        # warnings only when the user confirmed them ("Confirm the warnings listed"), else refuses the file.
        self.confirm_warnings = confirm_warnings
        self.row_warnings = {}  # row number -> [SoftWarning]
        self._saving_row = (None, False)  # (row number, dry run) of the row being saved
        # self.fields is this instance's own copy, so binding the user here is per import.
        for field in self.fields.values():
            if hasattr(field.widget, "user"):
                field.widget.user = user
        self._row_errors = {}
        self._raw_rows = {}  # row number -> {column: cell text}, for the error file
        self._cell_columns = {}  # attribute -> column, for the row being imported
        self._attribute_columns = {f.attribute: f.column_name for f in self.fields.values() if f.attribute}

    def get_queryset(self):
        return self._meta.model.objects.visible_to(self.user)

    # --- The whole file -------------------------------------------------------

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None, **kwargs):
        """One file, one transaction: any invalid or failed row rolls back every row."""
        kwargs["rollback_on_validation_errors"] = True
        result = super().import_data(
            dataset, dry_run=dry_run, raise_errors=raise_errors, use_transactions=True, **kwargs
        )
        if not dry_run and (result.has_errors() or result.has_validation_errors()):
            # The transaction was rolled back: no row may be reported (or
            # logged in the admin) as created.
            for row in result.rows:
                if row.import_type in SAVED_TYPES:
                    result.totals[row.import_type] -= 1
                    result.totals[RowResult.IMPORT_TYPE_SKIP] += 1
                    row.import_type = RowResult.IMPORT_TYPE_SKIP
                    row.object_id = None
                    row.instance = None
            request = kwargs.get("request")  # given by the admin's confirm step
            if request is not None:
                unconfirmed = [row.number for row in result.invalid_rows if isinstance(row.error, UnconfirmedWarnings)]
                failed = len(result.invalid_rows) + len(result.error_rows) - len(unconfirmed)
                if unconfirmed:
                    messages.error(request, unconfirmed_warnings_message(unconfirmed))
                if failed:
                    messages.error(
                        request,
                        f"Nothing was imported: {failed} row(s) of the file no longer passed the checks when the "
                        "import was confirmed (for example, the same case was entered meanwhile). "
                        "Upload the file again to see the errors for each row.",
                    )
        result.soft_warnings = sorted(self.row_warnings.items())  # [(row number, [SoftWarning])], for the preview
        result.file_headers = list(dataset.headers or [])
        result.error_records = self.error_records(result)
        return result

    def error_records(self, result):
        """Every message of the file as {row, column, value, message}; row 1 is the first row below the header.

        ``value`` is the cell as the file has it (empty for a message on the whole row): nothing but what the
        user's own file holds, and only the cells that are wrong.
        """
        records = []
        for row in result.invalid_rows:
            cells = self._raw_rows.get(row.number, {})
            for column, texts in row.error_dict.items():
                name = "" if column == NON_FIELD_ERRORS else column
                for text in texts:
                    message = force_str(text)
                    records.append(
                        {"row": row.number, "column": name, "value": cells.get(name, ""), "message": message}
                    )
        for number, errors in result.row_errors():
            for error in errors:
                records.append({"row": number, "column": "", "value": "", "message": force_str(error.error)})
        records.sort(key=lambda record: record["row"])
        return records[:MAX_ERROR_RECORDS]

    def before_import(self, dataset, **kwargs):
        """Normalise the header row and work out, once, what is wrong with the columns."""
        headers = [_text(h).lower() for h in (dataset.headers or [])]
        if dataset.headers:
            dataset.headers = headers
        known = set(self.columns)
        errors = {}
        for name in self.required_columns:
            if name not in headers:
                errors[name] = [f"The file has no '{name}' column (required)."]
        unknown = [
            h or "(a column without a header)"
            for i, h in enumerate(headers)
            if h not in known and (h or any(_text(values[i]) for values in dataset))
        ]
        repeated = sorted({h for h in headers if h in known and headers.count(h) > 1})
        problems = []
        if unknown:
            problems.append(f"Unknown column(s): {', '.join(unknown)}. Allowed columns: {', '.join(self.columns)}.")
        if repeated:
            problems.append(f"Column(s) given more than once: {', '.join(repeated)}.")
        if problems:
            errors[NON_FIELD_ERRORS] = problems
        self._row_errors = errors

    def after_import(self, dataset, result, **kwargs):
        # ModelResource resets the table's id sequence after an import, which is
        # only needed when a file supplies ids (this one never does) and can
        # race with concurrent inserts. Skip it.
        pass

    # --- One row --------------------------------------------------------------

    def import_row(self, row, instance_loader, **kwargs):
        if all(not _text(value) for value in row.values()):
            row_result = self.get_row_result_class()()
            row_result.import_type = RowResult.IMPORT_TYPE_SKIP
            return row_result
        self._raw_rows[kwargs.get("row_number")] = {_text(k): _text(v) for k, v in row.items()}
        return super().import_row(row, instance_loader, **kwargs)

    def import_instance(self, instance, row, **kwargs):
        errors = {name: [ValidationError(text) for text in texts] for name, texts in self._row_errors.items()}
        self._cell_columns = {}
        for field in self.get_import_fields():
            try:
                self.import_field(field, instance, row, **kwargs)
            except ValueError as error:
                if isinstance(error, CellError) and error.column:
                    self._cell_columns[field.attribute] = error.column
                errors.setdefault(field.attribute, []).append(ValidationError(force_str(error), code="invalid"))
        if errors:
            raise ValidationError(errors)

    def duplicate_errors(self, instance, errors):
        """{column: [ValidationError]} when the row repeats a record in the registry or earlier in the file."""
        return {}

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        for name, found in self.duplicate_errors(instance, errors).items():
            errors.setdefault(name, []).extend(found)
        try:
            super().validate_instance(instance, errors, validate_unique=validate_unique)
        except ValidationError as error:
            raise ValidationError(self._by_column(error.error_dict)) from None

    def _by_column(self, error_dict):
        """Messages keyed by the file's column names (a model field's name where no column matches)."""
        merged = {}
        for key, found in error_dict.items():
            column = self._cell_columns.get(key) or self._attribute_columns.get(key, key)
            texts = merged.setdefault(column, [])
            for error in found:
                for text in ValidationError(error).messages:
                    if text and text not in texts:
                        texts.append(text)
        return {column: texts for column, texts in merged.items() if texts}

    def before_save_instance(self, instance, row, **kwargs):
        self._saving_row = (kwargs.get("row_number"), bool(kwargs.get("dry_run")))

    def after_import_row(self, row, row_result, **kwargs):
        row_result.soft_warnings = self.row_warnings.get(kwargs.get("row_number"), [])

    def do_instance_save(self, instance, is_create):
        # The one write path for clinical records: re-checks the centre,
        # validates again, and records the user in the history.
        from .services import save_record

        # The preview (a dry run, rolled back) notes the row's soft warnings and goes on; the import proper
        # confirms them only if the user said so, else save_record refuses the row (UnconfirmedWarnings).
        number, dry_run = self._saving_row
        warnings = soft_warnings.warnings_for(instance)
        if warnings and number is not None:
            self.row_warnings[number] = warnings
        confirmed = [w.code for w in warnings] if dry_run or self.confirm_warnings else ()
        save_record(instance, user=self.user, reason=IMPORT_REASON, confirmed_warnings=confirmed)

    # --- The template ---------------------------------------------------------

    @classmethod
    def template_rows(cls, context):
        """The example rows, filled from ``context`` (``template_context``): lists in the order of ``columns``.

        In ``examples`` a ``Context("name")`` is replaced by ``context["name"]`` and an ``After(days)`` by the
        date that many days after ``context["implanted_on"]``; columns left out are empty.
        """
        rows = []
        for example in cls.examples:
            row = []
            for name in cls.columns:
                value = example.get(name, "")
                if isinstance(value, Context):
                    value = context.get(value.name, "")
                elif isinstance(value, After):
                    start = datetime.date.fromisoformat(context["implanted_on"])
                    value = (start + datetime.timedelta(days=value.days)).isoformat()
                row.append(str(value))
            rows.append(row)
        return rows


class Context:
    def __init__(self, name):
        self.name = name


class After:
    def __init__(self, days):
        self.days = days


def template_csv(resource_class, context, delimiter=","):
    """The template file of a form: the header row (the resource's columns) and its example rows."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(resource_class.columns)
    writer.writerows(resource_class.template_rows(context))
    return out.getvalue()


def template_context(user):
    """The names a template's example rows use, from ``user``'s own (first editable) centre.

    ``centre``, ``surgeon`` (an active surgeon's code), ``patient`` and ``implanted_on`` (the centre's latest
    implantation, for the child forms), ``new_patient`` / ``new_patient_2`` and ``new_implanted_on`` /
    ``new_implanted_on_2`` (patients of the centre and recent dates, for the implantation form).
    """
    today = rules.today()
    centres = Centre.objects.editable_by(user).order_by("code")
    centre = centres.first()
    context = {
        "centre": centre.code if centre and centres.count() > 1 else "",
        "surgeon": "",
        "patient": "",
        "implanted_on": (today - datetime.timedelta(days=200)).isoformat(),
        "new_patient": "",
        "new_patient_2": "",
        "new_implanted_on": (today - datetime.timedelta(days=14)).isoformat(),
        "new_implanted_on_2": (today - datetime.timedelta(days=7)).isoformat(),
    }
    if centre is None:
        return context
    surgeon = Surgeon.objects.editable_by(user).filter(centre=centre).order_by("-active", "code").first()
    context["surgeon"] = surgeon.code if surgeon else ""
    patients = Patient.objects.editable_by(user).filter(centre=centre)
    latest = (
        Implantation.objects.editable_by(user)
        .filter(patient__centre=centre)
        .select_related("patient")
        .order_by("-implanted_on", "-id")
        .first()
    )
    if latest is not None:
        context["patient"] = latest.patient.pseudonym
        context["implanted_on"] = latest.implanted_on.isoformat()
    fresh = list(patients.filter(implantations__isnull=True).order_by("pseudonym")[:2])
    fresh += list(patients.exclude(pk__in=[p.pk for p in fresh]).order_by("-pk")[: 2 - len(fresh)])
    names = [p.pseudonym for p in fresh] or [context["patient"]]
    context["new_patient"] = names[0]
    context["new_patient_2"] = names[-1]
    return context


def demo_template_context():
    """The names of the shipped templates (docs/): the records ``registry.demo`` seeds for them."""
    from . import demo

    return dict(demo.IMPORT_EXAMPLE_NAMES)


class ImplantationResource(RegistryResource):
    """Bulk import of implantations: one row of the file is one pump (or port) implantation.

    Example file: ``docs/import_template.csv`` (header row and two example rows).
    The import page in the admin lists the same columns.

    Columns (the header row must use these names; case and surrounding spaces
    are ignored; columns may come in any order):

    ==================================  ========  ==================================================
    column                              required  content
    ==================================  ========  ==================================================
    patient                             yes       registry pseudonym of an existing patient, e.g. PT-000001
    surgeon                             yes       registry code of the surgeon, e.g. SURG-01
    implanted_on                        yes       date of implantation, YYYY-MM-DD
    indication                          yes       code from ``vocabulary.Indication``
    approach                            yes       code from ``vocabulary.Approach``
    device                              yes       code from ``vocabulary.Device``
    pump_model                          no        the pump's catalogue name (``PumpModel.name``, an active
                                                  model of the device's kind); empty for an arterial port
    catheter_vessel                     no        code from ``vocabulary.CatheterVessel``; empty = gastroduodenal
    catheter_tip_position               no        code from ``vocabulary.CatheterTipPosition``; empty = not
                                                  recorded
    accessory_arteries_ligated          no        yes/no (also y/n, true/false, 1/0); empty = no
    replaced_left_hepatic_artery,       no        one column per variant hepatic artery: how it was handled,
    accessory_left_hepatic_artery,                a code from ``vocabulary.VariantHandling`` (ligated,
    replaced_right_hepatic_artery,                embolised, none = left alone); empty = the variant is not
    accessory_right_hepatic_artery,               present
    replaced_common_hepatic_artery
    gastroduodenal_branches_ligated     no        yes/no; empty = not recorded
    right_gastric_artery_ligated        no        yes/no; empty = not recorded
    cholecystectomy                     no        yes/no; empty = not recorded
    concurrent_colorectal_resection     no        yes/no; empty = no
    concurrent_hepatectomy              no        yes/no; empty = no
    concurrent_ablation                 no        yes/no; empty = no
    operative_minutes                   no        whole number (10-1440)
    operative_minutes_missing           no        why operative_minutes is empty: a code from
                                                  ``vocabulary.MissingReason`` (unknown, not_done,
                                                  not_applicable); empty = no code
    blood_loss_ml                       no        whole number (0-20000)
    blood_loss_ml_missing               no        why blood_loss_ml is empty (as above)
    length_of_stay_days                 no        whole number (0-365)
    length_of_stay_days_missing         no        why length_of_stay_days is empty (as above)
    never_treated_reason                no        code from ``vocabulary.NeverTreatedReason``; only when
                                                  the pump never delivered a dose
    trial                               no        the trial's registry identifier, e.g. NCT01234567,
                                                  EudraCT 2015-001234-56, ISRCTN12345678; empty = not
                                                  in a trial
    trial_arm                           no        the trial arm (short text); only with a trial
    ==================================  ========  ==================================================

    A replacement pump (``Implantation.replaces``) is not imported: the file only creates first pumps, and
    a same-day second row for a patient is refused as a duplicate. Enter replacements in the admin or the API.

    A missing-data code says the value is known to be missing (``registry.missing_data``): give it
    only with the value's cell empty; a row with both is refused, the message on the code's column.

    Vocabulary codes are matched without regard to case. An unknown column is
    an error (it would otherwise be dropped silently); rows that are entirely
    empty are skipped.

    **Patients must already exist.** Rows never create patients (``PatientResource`` does). Design choice:
    pseudonyms are generated by the registry when a patient is entered in the
    admin, and a file exported from a hospital system is exactly where a hospital
    number would slip in as a "pseudonym". Moreover pseudonyms are unique across
    the whole registry, so creating a patient from a file with a pseudonym that
    another centre already uses would have to fail, which would tell the user that
    the pseudonym exists elsewhere. Referencing only existing patients keeps the
    rule below exact. Enter new patients in the admin first (or add a separate
    patient file first: ``PatientResource`` generates the pseudonyms).

    **Scope.** The resource takes the importing ``user``; patients and surgeons
    are looked up only in ``Patient.objects.editable_by(user)`` and
    ``Surgeon.objects.editable_by(user)``. A pseudonym or surgeon code of another
    centre gets exactly the message a non-existent one gets ("No patient 'X' in
    your centres."). Without a user nothing is found. Each row is saved through
    ``registry.services.save_record``, which checks the centre again.

    **Validation.** Every cell is read by a widget that raises a message for
    its own column (bad date, unknown code, not a number, missing required
    value, missing required column); then the model's ``full_clean()`` applies
    the rules of ``registry.models`` (e.g. no future date, not before the
    patient's birth year, surgeon of the patient's centre, ranges). A row whose
    patient already has an implantation on the same date (in the registry or
    earlier in the file) is refused as a duplicate, so a file imported twice is
    refused the second time. Errors are per row and per column: ``result.invalid_rows[i].error_dict``
    maps the column name to its messages. Row 1 is the first row below the header.

    **All or nothing.** One file is one transaction: if any row is invalid or
    fails, nothing from the file is kept, whatever arguments ``import_data`` is
    called with.

    **History.** Each imported implantation gets a django-simple-history record
    with ``history_user`` = the importing user and the change reason
    ``IMPORT_REASON``.

    **Soft warnings** (``registry.soft_warnings``, e.g. an operative time over
    10 hours) are not errors. The preview (dry run) lists them per row
    (``result.soft_warnings``, ``row_result.soft_warnings``); the import proper
    saves such rows only with ``confirm_warnings=True`` (the admin's "Confirm the
    warnings listed" box), keeping one confirmation per warning with the
    importing user. Without it the rows are invalid, with the warnings on their
    columns, and (all or nothing) the file is not imported.
    """

    patient = _column("patient", ScopedLookupWidget(Patient, "pseudonym", "patient", "registry pseudonym"))
    surgeon = _column("surgeon", ScopedLookupWidget(Surgeon, "code", "surgeon", "registry code"))
    implanted_on = _column("implanted_on", IsoDateWidget(required=True))
    indication = _column("indication", CodeWidget(Indication, required=True))
    approach = _column("approach", CodeWidget(Approach, required=True))
    device = _column("device", CodeWidget(Device, required=True))
    pump_model = _column("pump_model", PumpModelWidget())
    catheter_vessel = _column(
        "catheter_vessel", CodeWidget(CatheterVessel, default=CatheterVessel.GASTRODUODENAL.value)
    )
    catheter_tip_position = _column("catheter_tip_position", CodeWidget(CatheterTipPosition))
    accessory_arteries_ligated = _column("accessory_arteries_ligated", YesNoWidget())
    replaced_left_hepatic_artery = _column("replaced_left_hepatic_artery", CodeWidget(VariantHandling))
    accessory_left_hepatic_artery = _column("accessory_left_hepatic_artery", CodeWidget(VariantHandling))
    replaced_right_hepatic_artery = _column("replaced_right_hepatic_artery", CodeWidget(VariantHandling))
    accessory_right_hepatic_artery = _column("accessory_right_hepatic_artery", CodeWidget(VariantHandling))
    replaced_common_hepatic_artery = _column("replaced_common_hepatic_artery", CodeWidget(VariantHandling))
    gastroduodenal_branches_ligated = _column("gastroduodenal_branches_ligated", YesNoWidget(empty=None))
    right_gastric_artery_ligated = _column("right_gastric_artery_ligated", YesNoWidget(empty=None))
    cholecystectomy = _column("cholecystectomy", YesNoWidget(empty=None))
    concurrent_colorectal_resection = _column("concurrent_colorectal_resection", YesNoWidget())
    concurrent_hepatectomy = _column("concurrent_hepatectomy", YesNoWidget())
    concurrent_ablation = _column("concurrent_ablation", YesNoWidget())
    operative_minutes = _column("operative_minutes", WholeNumberWidget())
    blood_loss_ml = _column("blood_loss_ml", WholeNumberWidget())
    length_of_stay_days = _column("length_of_stay_days", WholeNumberWidget())
    never_treated_reason = _column("never_treated_reason", CodeWidget(NeverTreatedReason))
    trial = _column("trial", TextWidget())
    trial_arm = _column("trial_arm", TextWidget())
    operative_minutes_missing = _column("operative_minutes_missing", MissingCodeWidget("operative_minutes"))
    blood_loss_ml_missing = _column("blood_loss_ml_missing", MissingCodeWidget("blood_loss_ml"))
    length_of_stay_days_missing = _column("length_of_stay_days_missing", MissingCodeWidget("length_of_stay_days"))

    columns = COLUMNS
    required_columns = REQUIRED_COLUMNS
    form = "implantation"
    examples = (
        {
            "patient": Context("new_patient"),
            "surgeon": Context("surgeon"),
            "implanted_on": Context("new_implanted_on"),
            "indication": "unresectable_first_line",
            "approach": "laparotomy",
            "device": "constant_flow_pump",
            "catheter_vessel": "gastroduodenal",
            "catheter_tip_position": "gastroduodenal_origin",
            "accessory_arteries_ligated": "no",
            "gastroduodenal_branches_ligated": "yes",
            "right_gastric_artery_ligated": "yes",
            "cholecystectomy": "yes",
            "concurrent_colorectal_resection": "yes",
            "concurrent_hepatectomy": "no",
            "concurrent_ablation": "no",
            "operative_minutes": 265,
            "blood_loss_ml": 350,
            "length_of_stay_days": 6,
        },
        {
            "patient": Context("new_patient_2"),
            "surgeon": Context("surgeon"),
            "implanted_on": Context("new_implanted_on_2"),
            "indication": "adjuvant",
            "approach": "laparoscopic",
            "device": "programmable_pump",
            "catheter_vessel": "gastroduodenal",
            "catheter_tip_position": "gastroduodenal_origin",
            "accessory_arteries_ligated": "yes",
            "replaced_left_hepatic_artery": "ligated",
            "gastroduodenal_branches_ligated": "yes",
            "right_gastric_artery_ligated": "no",
            "cholecystectomy": "no",
            "concurrent_colorectal_resection": "no",
            "concurrent_hepatectomy": "no",
            "concurrent_ablation": "no",
            "operative_minutes": 150,
            "blood_loss_ml_missing": "unknown",
            "length_of_stay_days": 4,
            "never_treated_reason": "extrahepatic_perfusion",
        },
    )

    class Meta:
        model = Implantation
        fields = COLUMNS
        import_order = COLUMNS
        export_order = COLUMNS
        # Rows only ever create implantations; an import never updates or deletes.
        force_init_instance = True
        clean_model_instances = True
        use_transactions = True
        skip_unchanged = False

    def duplicate_errors(self, instance, errors):
        if "patient" in errors or "implanted_on" in errors or not (instance.patient_id and instance.implanted_on):
            return {}
        if not Implantation.objects.filter(patient_id=instance.patient_id, implanted_on=instance.implanted_on).exists():
            return {}
        return {
            "implanted_on": [
                ValidationError(
                    f"Patient {instance.patient.pseudonym} already has an implantation on "
                    f"{instance.implanted_on.isoformat()} (in the registry or earlier in this file)."
                )
            ]
        }


def _declare(model, columns, special):
    """One import-export field per column: the special widgets given, else the one the model field calls for."""
    declared = {}
    for name in columns:
        if name in special:
            declared[name] = special[name]
        else:
            declared[name] = _column(name, _auto_widget(model, model._meta.get_field(name)))
    return declared


def _resource(class_name, base, model, *, form, doc, special, columns, required, examples, **attributes):
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "fields": columns,
            "import_order": columns,
            "export_order": columns,
            # Rows only ever create records; an import never updates or deletes.
            "force_init_instance": True,
            "clean_model_instances": True,
            "use_transactions": True,
            "skip_unchanged": False,
        },
    )
    namespace = {
        "__module__": __name__,
        "__doc__": doc,
        **_declare(model, columns, special),
        "Meta": meta,
        "columns": columns,
        "required_columns": required,
        "form": form,
        "examples": examples,
        **attributes,
    }
    return type(class_name, (base,), namespace)


class ChildRecordResource(RegistryResource):
    """A record of an existing implantation, found by ``patient`` (pseudonym) and ``implanted_on``.

    ``duplicate_keys``: the fields (besides the implantation and the record's date) that make a row the
    same record as one already in the registry or earlier in the file.
    """

    duplicate_keys = ()

    def duplicate_errors(self, instance, errors):
        model = type(instance)
        date_field = model.date_field
        keys = (date_field, *self.duplicate_keys)
        if not instance.implantation_id or "implantation" in errors or any(key in errors for key in keys):
            return {}
        values = {key: getattr(instance, key) for key in keys}
        if any(value is None for value in values.values()):
            return {}
        if not model.objects.filter(implantation_id=instance.implantation_id, **values).exists():
            return {}
        when = values[date_field].isoformat()
        return {
            date_field: [
                ValidationError(
                    f"Patient {instance.implantation.patient.pseudonym} already has this {model.event_label} on "
                    f"{when} for the implantation of {instance.implantation.implanted_on.isoformat()} "
                    "(in the registry or earlier in this file)."
                )
            ]
        }


def _child_columns(model, special=()):
    return ["patient", "implanted_on", *_entry_columns(model, special)]


def _child_special(**more):
    return {
        "patient": _column("patient", ImplantationLookupWidget(), attribute="implantation"),
        "implanted_on": ParentDateColumn(),
        **more,
    }


_CHILD_DOC = """Bulk import of {what}: one row of the file is {row}.

Columns: {columns}. Required: {required}. ``patient`` (the registry pseudonym) and ``implanted_on``
(YYYY-MM-DD) name the implantation; only the importing user's editable patients are looked in. Otherwise
each column holds the model field's value (``registry.models.{model}``): dates YYYY-MM-DD, vocabulary
codes, yes/no, numbers; a ``<field>_missing`` column holds the missing-data code of ``<field>`` (only with
``<field>`` empty). A row repeating a record of the same implantation ({duplicate}) is refused.
"""


def _child_doc(what, row, model, columns, required, duplicate):
    return _CHILD_DOC.format(
        what=what,
        row=row,
        model=model.__name__,
        columns=", ".join(columns),
        required=", ".join(required),
        duplicate=duplicate,
    )


_PATIENT_SPECIAL = {
    "pseudonym": _column("pseudonym", PseudonymWidget()),
    "centre": _column("centre", CentreWidget()),
}
_PATIENT_COLUMNS = _entry_columns(Patient, _PATIENT_SPECIAL)
PatientResource = _resource(
    "PatientResource",
    RegistryResource,
    Patient,
    form="patient",
    doc=f"""Bulk import of patients: one row of the file is one new patient.

    Columns: {", ".join(_PATIENT_COLUMNS)}. Required: birth_year, sex, primary_tumour.

    ``pseudonym`` stays empty: the registry generates it, as in the admin (README, "Pseudonyms"); only the
    coordinator may give one (a migration from another registry). ``centre`` is the centre's code, among the
    user's editable centres; empty means the user's only centre. Patients have no natural key: a file
    imported twice creates its patients twice (the preview shows how many rows are new).
    """,
    special=_PATIENT_SPECIAL,
    columns=_PATIENT_COLUMNS,
    required=_required_columns(Patient, _PATIENT_COLUMNS),
    examples=(
        {
            "centre": Context("centre"),
            "birth_year": 1961,
            "sex": "female",
            "primary_tumour": "colorectal",
            "ras_status": "wild_type",
            "liver_metastases_count": 6,
            "bilobar_disease": "yes",
            "extrahepatic_disease": "yes",
            "extrahepatic_sites": "lung;portal_nodes",
            "prior_systemic_lines": 1,
            "ecog": 1,
            "cea_ng_per_ml": "12.5",
            "clinical_risk_score": 3,
            "braf_status": "wild_type",
            "msi_status": "mss",
            "consent_on": "2024-02-01",
        },
        {
            "centre": Context("centre"),
            "birth_year": 1954,
            "sex": "male",
            "primary_tumour": "icca",
            "ras_status": "unknown",
            "liver_metastases_count_missing": "unknown",
            "bilobar_disease": "no",
            "extrahepatic_disease_missing": "not_done",
            "prior_systemic_lines": 0,
            "ecog": 0,
            "cea_ng_per_ml_missing": "not_done",
            "clinical_risk_score_missing": "unknown",
            "braf_status": "unknown",
            "msi_status": "unknown",
            "consent_on": "2024-03-12",
        },
    ),
)


def _child_resource(
    class_name,
    model,
    *,
    what,
    row,
    duplicate,
    examples,
    special=None,
    duplicate_keys=(),
    extra_required=(),
    extra_columns=(),
):
    special = _child_special(**(special or {}))
    columns = [*_child_columns(model, special), *extra_columns]
    required = ["patient", "implanted_on", *extra_required, *_required_columns(model, columns)]
    return _resource(
        class_name,
        ChildRecordResource,
        model,
        form=model._meta.model_name,
        doc=_child_doc(what, row, model, columns, required, duplicate),
        special=special,
        columns=columns,
        required=required,
        examples=examples,
        duplicate_keys=duplicate_keys,
    )


_PARENT = {"patient": Context("patient"), "implanted_on": Context("implanted_on")}

TreatmentResource = _child_resource(
    "TreatmentResource",
    Treatment,
    what="HAI doses",
    row="one HAI cycle or pump refill",
    duplicate="same date and drug",
    duplicate_keys=("drug",),
    # The refill's liver tests by their date (LiverTestDateColumn), not by a row id nobody has in a file.
    special={LiverTestDateColumn.COLUMN: LiverTestDateColumn()},
    extra_columns=(LiverTestDateColumn.COLUMN,),
    examples=(
        {
            **_PARENT,
            "given_on": After(14),
            "drug": "fudr",
            "dose": "0.12",
            "dose_unit": "mg/kg/day",
            "dose_change": "full",
            "body_weight_kg": "72.0",
            "filled_volume_ml": "30.0",
            "drug_concentration_mg_per_ml": "8.640",
            "dexamethasone_mg": "25.0",
            "heparin_units": 30000,
        },
        {
            **_PARENT,
            # 30 mL filled, 2 mL returned 28 days later: 1.0 mL/day; 7.15 mg/mL x 1.0 / 71.5 kg = 0.1 mg/kg/day.
            "given_on": After(42),
            "drug": "fudr",
            "dose": "0.1",
            "dose_unit": "mg/kg/day",
            "dose_change": "reduced",
            "hold_reason": "alp",
            "dose_change_reason": "Raised ALP after the first cycle",
            "body_weight_kg": "71.5",
            "returned_volume_ml": "2.0",
            "filled_volume_ml": "30.0",
            "drug_concentration_mg_per_ml": "7.150",
            "dexamethasone_mg": "25.0",
            "heparin_units": 30000,
        },
    ),
)

ComplicationResource = _child_resource(
    "ComplicationResource",
    Complication,
    what="complications",
    row="one complication",
    duplicate="same onset date and type",
    special={"type": _column("type", ComplicationTypeWidget())},
    duplicate_keys=("type",),
    extra_required=("type",),
    examples=(
        {
            **_PARENT,
            "type": "catheter_occlusion",
            "onset_on": After(60),
            "grade": 3,
            "clavien_dindo": "IIIa",
            "management": "ir_procedure",
            "pump_lost": "no",
            "related_to_pump": "yes",
        },
        {
            **_PARENT,
            "type": "chemical_hepatitis",
            "onset_on": After(90),
            "grade": 2,
            "management": "medical",
            "pump_lost": "no",
            "related_to_pump": "yes",
        },
    ),
)

LiverTestResource = _child_resource(
    "LiverTestResource",
    LiverTest,
    what="liver tests",
    row="one panel of liver tests",
    duplicate="same date",
    examples=(
        {
            **_PARENT,
            "measured_on": After(-7),
            "is_baseline": "yes",
            "ast_u_per_l": 32,
            "alt_u_per_l": 28,
            "alp_u_per_l": 110,
            "bilirubin_umol_per_l": "9.5",
            "ast_upper_limit": 40,
            "alt_upper_limit": 45,
            "alp_upper_limit": 130,
            "bilirubin_upper_limit_umol_per_l": "21",
        },
        {
            **_PARENT,
            "measured_on": After(35),
            "is_baseline": "no",
            "ast_u_per_l": 48,
            "alt_u_per_l": 51,
            "alp_u_per_l": 190,
            "bilirubin_umol_per_l_missing": "not_done",
        },
    ),
)

FollowUpResource = _child_resource(
    "FollowUpResource",
    FollowUp,
    what="follow-ups",
    row="one follow-up contact",
    duplicate="same contact date",
    examples=(
        {
            **_PARENT,
            "contact_on": After(120),
            "vital_status": "alive",
            "response": "PR",
            "resected": "no",
            "resection_margin_missing": "not_applicable",
            "pump_explanted": "no",
            "pump_never_used": "no",
        },
        {
            **_PARENT,
            "contact_on": After(240),
            "vital_status": "alive",
            "response": "SD",
            "resected": "no",
            "resection_margin_missing": "not_applicable",
            "hepatic_progression_on_missing": "unknown",
            "progression_on_missing": "unknown",
            "pump_explanted": "no",
            "pump_never_used": "no",
        },
    ),
)

PerfusionCheckResource = _child_resource(
    "PerfusionCheckResource",
    PerfusionCheck,
    what="perfusion checks",
    row="one perfusion check",
    duplicate="same date and timing",
    duplicate_keys=("timing",),
    examples=(
        {
            **_PARENT,
            "checked_on": After(0),
            "timing": "intraoperative",
            "method": "methylene_blue",
            "modality": "intraoperative_dye",
            "extrahepatic_perfusion": "yes",
            "extrahepatic_sites": "stomach;duodenum",
            "incomplete_hepatic_perfusion": "no",
            "correction": "vessel_ligated",
            "repeat_check_normal": "yes",
        },
        {
            **_PARENT,
            "checked_on": After(10),
            "timing": "postoperative",
            "method": "maa_scintigraphy",
            "extrahepatic_perfusion": "no",
            "incomplete_hepatic_perfusion": "no",
            "correction": "none",
        },
    ),
)

SystemicToxicityResource = _child_resource(
    "SystemicToxicityResource",
    SystemicToxicity,
    what="systemic toxicities",
    row="one systemic toxicity event (CTCAE term and grade)",
    duplicate="same onset date and term",
    duplicate_keys=("term",),
    examples=(
        {**_PARENT, "term": "neutropenia", "grade": 3, "onset_on": After(50)},
        {**_PARENT, "term": "neuropathy", "grade": 3, "onset_on": After(110)},
    ),
)

ReadmissionResource = _child_resource(
    "ReadmissionResource",
    Readmission,
    what="readmissions and reoperations",
    row="one readmission or reoperation",
    duplicate="same date and kind",
    duplicate_keys=("kind",),
    examples=(
        {**_PARENT, "kind": "readmission", "occurred_on": After(12), "reason": "infection"},
        {**_PARENT, "kind": "reoperation", "occurred_on": After(75), "reason": "pump_pocket"},
    ),
)

# Every form's resource, by the name its admin, URLs and template files use.
RESOURCES = {
    resource.form: resource
    for resource in (
        PatientResource,
        ImplantationResource,
        TreatmentResource,
        ComplicationResource,
        LiverTestResource,
        FollowUpResource,
        PerfusionCheckResource,
        SystemicToxicityResource,
        ReadmissionResource,
    )
}
