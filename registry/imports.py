"""Bulk import of implantations from a file (Django admin, django-import-export).

See ``ImplantationResource`` for the columns, the rules and the example file
``docs/import_template.csv``.
"""

import datetime
import re

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from import_export import fields, resources, widgets
from import_export.results import RowResult

from sites.models import Surgeon

from . import missing_data, soft_warnings
from .models import Implantation, Patient
from .soft_warnings import UnconfirmedWarnings
from .vocabulary import Approach, CatheterVessel, Device, Indication, MissingReason, NeverTreatedReason

IMPORT_REASON = "Bulk import (admin file import)"

# Column order of the file; the same as docs/import_template.csv. Each field that may carry a missing-data
# code (registry.missing_data) is followed by its code's column, e.g. operative_minutes_missing.
COLUMNS = [
    column
    for name in Implantation.ENTRY_FIELDS
    for column in ((name, missing_data.companion(name)) if name in Implantation.MISSING_DATA_FIELDS else (name,))
]
REQUIRED_COLUMNS = ["patient", "surgeon", "implanted_on", "indication", "approach", "device"]
SAVED_TYPES = (RowResult.IMPORT_TYPE_NEW, RowResult.IMPORT_TYPE_UPDATE, RowResult.IMPORT_TYPE_DELETE)
CONFIRM_WARNINGS_LABEL = "Confirm the warnings listed"


def unconfirmed_warnings_message(row_numbers):
    rows = ", ".join(str(number) for number in row_numbers)
    return (
        f"Nothing was imported: {len(row_numbers)} row(s) of the file have unusual values (soft warnings) that "
        f"were not confirmed (row(s) {rows}). Upload the file again, check the warnings listed in the preview and "
        f"tick '{CONFIRM_WARNINGS_LABEL}' to import them."
    )


def _text(value):
    return "" if value is None else str(value).strip()


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
        self.user = None  # bound by ImplantationResource.__init__

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


class IsoDateWidget(widgets.DateWidget):
    """A date written YYYY-MM-DD, and nothing else (no 01/03/2024: day and month are ambiguous)."""

    PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")

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
        if not self.PATTERN.match(text):
            raise ValueError(f"Write the date as YYYY-MM-DD, e.g. 2024-03-01 (got '{text}').")
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'{text}' is not a valid date.") from None


class CodeWidget(widgets.CharWidget):
    """A code from one of the vocabularies in ``registry.vocabulary`` (case does not matter)."""

    def __init__(self, vocabulary, required=False, default=""):
        super().__init__(allow_blank=True)
        self.codes = list(vocabulary.values)
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
    """yes/no, y/n, true/false or 1/0; an empty cell means no."""

    TRUE_TEXT = {"yes", "y", "true", "1"}
    FALSE_TEXT = {"no", "n", "false", "0"}

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if text.endswith(".0"):  # 1.0 / 0.0 from spreadsheets
            text = text[:-2]
        if not text:
            return False
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

    def clean(self, value, row=None, **kwargs):
        if isinstance(value, bool):
            raise ValueError(f"Enter a whole number, e.g. 240 (got '{value}').")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        text = _text(value)
        if not text:
            return None
        if not self.PATTERN.match(text):
            raise ValueError(f"Enter a whole number, e.g. 240 (got '{text}').")
        if len(text.lstrip("+-")) > 9:
            raise ValueError(f"'{text}' is far too large.")
        return int(text)


def _column(name, widget):
    return fields.Field(attribute=name, column_name=name, widget=widget)


class ImplantationResource(resources.ModelResource):
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
    catheter_vessel                     no        code from ``vocabulary.CatheterVessel``; empty = gastroduodenal
    accessory_arteries_ligated          no        yes/no (also y/n, true/false, 1/0); empty = no
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
    ==================================  ========  ==================================================

    A missing-data code says the value is known to be missing (``registry.missing_data``): give it
    only with the value's cell empty; a row with both is refused, the message on the code's column.

    Vocabulary codes are matched without regard to case. An unknown column is
    an error (it would otherwise be dropped silently); rows that are entirely
    empty are skipped.

    **Patients must already exist.** Rows never create patients. Design choice:
    pseudonyms are generated by the registry when a patient is entered in the
    admin, and a file exported from a hospital system is exactly where a hospital
    number would slip in as a "pseudonym". Moreover pseudonyms are unique across
    the whole registry, so creating a patient from a file with a pseudonym that
    another centre already uses would have to fail, which would tell the user that
    the pseudonym exists elsewhere. Referencing only existing patients keeps the
    rule below exact. Enter new patients in the admin first (or add a separate
    patient import that always generates pseudonyms).

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
    catheter_vessel = _column(
        "catheter_vessel", CodeWidget(CatheterVessel, default=CatheterVessel.GASTRODUODENAL.value)
    )
    accessory_arteries_ligated = _column("accessory_arteries_ligated", YesNoWidget())
    concurrent_colorectal_resection = _column("concurrent_colorectal_resection", YesNoWidget())
    concurrent_hepatectomy = _column("concurrent_hepatectomy", YesNoWidget())
    concurrent_ablation = _column("concurrent_ablation", YesNoWidget())
    operative_minutes = _column("operative_minutes", WholeNumberWidget())
    blood_loss_ml = _column("blood_loss_ml", WholeNumberWidget())
    length_of_stay_days = _column("length_of_stay_days", WholeNumberWidget())
    never_treated_reason = _column("never_treated_reason", CodeWidget(NeverTreatedReason))
    operative_minutes_missing = _column("operative_minutes_missing", MissingCodeWidget("operative_minutes"))
    blood_loss_ml_missing = _column("blood_loss_ml_missing", MissingCodeWidget("blood_loss_ml"))
    length_of_stay_days_missing = _column("length_of_stay_days_missing", MissingCodeWidget("length_of_stay_days"))

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
            if isinstance(field.widget, ScopedLookupWidget):
                field.widget.user = user
        self._row_errors = {}

    def get_queryset(self):
        return Implantation.objects.visible_to(self.user)

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
        return result

    def before_import(self, dataset, **kwargs):
        """Normalise the header row and work out, once, what is wrong with the columns."""
        headers = [_text(h).lower() for h in (dataset.headers or [])]
        if dataset.headers:
            dataset.headers = headers
        known = set(COLUMNS)
        errors = {}
        for name in REQUIRED_COLUMNS:
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
            problems.append(f"Unknown column(s): {', '.join(unknown)}. Allowed columns: {', '.join(COLUMNS)}.")
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
        return super().import_row(row, instance_loader, **kwargs)

    def import_instance(self, instance, row, **kwargs):
        errors = {name: [ValidationError(text) for text in texts] for name, texts in self._row_errors.items()}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as e:
            errors = e.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        errors = dict(import_validation_errors or {})
        if "patient" not in errors and "implanted_on" not in errors and instance.patient_id and instance.implanted_on:
            if Implantation.objects.filter(patient_id=instance.patient_id, implanted_on=instance.implanted_on).exists():
                errors["implanted_on"] = [
                    ValidationError(
                        f"Patient {instance.patient.pseudonym} already has an implantation on "
                        f"{instance.implanted_on.isoformat()} (in the registry or earlier in this file)."
                    )
                ]
        super().validate_instance(instance, errors, validate_unique=validate_unique)

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
