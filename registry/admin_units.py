"""Bilirubin in the admin in the centre's unit (issue 13): entered and shown in µmol/L or mg/dL, stored in µmol/L.

The liver test's form keeps the model's field names (``bilirubin_umol_per_l`` and its upper limit of normal),
so the fieldsets, the missing-data codes beside them, the soft warnings and the version check all see the
fields they expect; only the unit of the numbers in the form differs:

* shown: the stored µmol/L converted to the unit of the record's centre (``Centre.bilirubin_unit``,
  ``registry.units``), with the unit in the label ("total bilirubin (mg/dL)") and so in the inline's
  column header;
* entered: in the unit of the row's own select ``bilirubin_entry_unit`` (the bilirubin and its ULN are from
  one laboratory), which starts at the centre's unit; a page that cannot know the centre yet (a new
  implantation, a new liver test) starts at the user's centre's unit, or µmol/L;
* stored: converted to µmol/L with one decimal just before the model's own validation, so the model's
  rules and constraints see what is saved. The hard range (0–1000 µmol/L) is checked on the stored value,
  with the message in the unit entered. A value the user left as shown is kept as stored (a µmol/L value
  shown in mg/dL and converted back could move by 0.1).

``LiverTestForm`` (the liver test's page) and ``LiverTestInlineForm`` (the implantation page's rows) add this
to ``SoftWarningForm`` / ``SoftWarningInlineForm``; the admins' own wrappers (the user of the soft warnings,
the version check) wrap them as they wrap any form. ``BilirubinUnitAdminMixin`` / ``BilirubinUnitInlineMixin``
tell the form class the unit to start at when the record has no centre yet.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin
from django.utils.text import capfirst

from sites import access
from sites.models import BilirubinUnit, Centre

from . import missing_data
from .admin_warnings import SoftWarningForm, SoftWarningInlineForm
from .models import LiverTest
from .units import bilirubin_from_micromol, bilirubin_to_micromol

UNIT_FIELD = "bilirubin_entry_unit"
# The form's bilirubin fields: their label without the unit, and the stored range in µmol/L (the model's).
BILIRUBIN_FIELDS = {
    "bilirubin_umol_per_l": ("total bilirubin", Decimal("0"), Decimal("1000")),
    "bilirubin_upper_limit_umol_per_l": ("bilirubin ULN", Decimal("1"), Decimal("100")),
}
# As many decimals as a laboratory reports, and as many as the stored µmol/L (one) can carry.
DECIMALS = {BilirubinUnit.MICROMOL_PER_L: 1, BilirubinUnit.MG_PER_DL: 2}
STORED_UNIT = BilirubinUnit.MICROMOL_PER_L


def unit_label(unit):
    return BilirubinUnit(unit).label


def labelled(name, unit):
    """E.g. "Total bilirubin (mg/dL)": the unit as written (never upper-cased, see admin/base_site.html)."""
    return capfirst(f"{BILIRUBIN_FIELDS[name][0]} ({unit_label(unit)})")


def centre_unit_of_implantation(implantation):
    """The bilirubin unit of an implantation's centre, or None while it has no patient."""
    patient = implantation.patient_or_none if implantation is not None else None
    return patient.centre.bilirubin_unit if patient is not None and patient.centre_id else None


def centre_unit_of(record):
    """The bilirubin unit of a liver test's centre, or None while the record has no implantation."""
    return centre_unit_of_implantation(record.parent)


def default_unit_for(user):
    """The unit a new record starts at: the user's centres' unit if they have one unit, else µmol/L."""
    ids = access.editable_centre_ids(user)
    if ids is access.ALL_CENTRES or not ids:
        return STORED_UNIT
    units = set(Centre.objects.filter(pk__in=ids).values_list("bilirubin_unit", flat=True))
    return units.pop() if len(units) == 1 else STORED_UNIT


def _format(value, unit):
    """A stored value in ``unit``, as the form shows it (mg/dL with two decimals, µmol/L with one)."""
    return bilirubin_from_micromol(value, unit)


class UnitChoiceField(forms.ChoiceField):
    """The row's unit: a form posted without it (a script, an older page) means the unit the form showed."""

    def has_changed(self, initial, data):
        return data not in (None, "") and super().has_changed(initial, data)


class BilirubinUnitForm(forms.ModelForm):
    """The bilirubin fields of a liver test in the centre's unit (see the module)."""

    # Set by BilirubinUnitAdminMixin / BilirubinUnitInlineMixin for a record with no centre yet.
    default_bilirubin_unit = STORED_UNIT

    bilirubin_entry_unit = UnitChoiceField(
        choices=BilirubinUnit.choices,
        required=False,
        label="bilirubin unit",
        help_text="The unit of the bilirubin and its ULN as entered; the registry stores µmol/L "
        "(1 mg/dL = 17.1 µmol/L).",
    )

    class Meta:
        model = LiverTest
        # The admins list their own fields; these are the form's used alone.
        fields = [
            "implantation",
            "measured_on",
            "is_baseline",
            *LiverTest.MISSING_DATA_FIELDS,
            *(missing_data.companion(name) for name in LiverTest.MISSING_DATA_FIELDS),
            *LiverTest.UPPER_LIMIT_FIELDS,
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bilirubin_unit = centre_unit_of(self.instance) or self.default_bilirubin_unit
        self.fields[UNIT_FIELD].initial = self.bilirubin_unit
        self.initial.setdefault(UNIT_FIELD, self.bilirubin_unit)
        for name in BILIRUBIN_FIELDS:
            if name not in self.fields:
                continue
            model_field = self.fields[name]
            # No decimal places or bounds on the form field: they depend on the unit (checked in clean).
            self.fields[name] = forms.DecimalField(
                required=model_field.required,
                label=labelled(name, self.bilirubin_unit),
                help_text=model_field.help_text,
                widget=forms.NumberInput(attrs={"step": "any", "min": "0", "class": "bilirubin-value"}),
            )
            if self.initial.get(name) is not None:  # the stored µmol/L (model_to_dict), shown in the unit
                self.initial[name] = _format(self.initial[name], self.bilirubin_unit)
        self._stored_bilirubin = {}

    def entered_unit(self):
        unit = (getattr(self, "cleaned_data", None) or {}).get(UNIT_FIELD)
        return unit if unit in BilirubinUnit.values else self.bilirubin_unit

    def clean(self):
        cleaned = super().clean()
        unit = self.entered_unit()
        self._stored_bilirubin = {}
        for name, (label, low, high) in BILIRUBIN_FIELDS.items():
            if name not in self.fields or name not in cleaned:
                continue
            value = cleaned[name]
            if value is None:
                self._stored_bilirubin[name] = None
                continue
            if self._unchanged(name, value, unit):
                self._stored_bilirubin[name] = getattr(self.instance, name)
                continue
            places = DECIMALS[unit]
            if -value.as_tuple().exponent > places:
                self.add_error(name, f"Enter {label} in {unit_label(unit)} with at most {places} decimal places.")
                continue
            stored = bilirubin_to_micromol(value, unit)
            if not low <= stored <= high:
                self.add_error(name, self.range_message(label, low, high, unit))
                continue
            self._stored_bilirubin[name] = stored
        return cleaned

    def _unchanged(self, name, value, unit):
        """The value as the form showed it, in the unit it showed it in: the stored value stands."""
        if not self.instance.pk or getattr(self.instance, name) is None or unit != self.bilirubin_unit:
            return False
        return value == _format(getattr(self.instance, name), unit)

    @staticmethod
    def range_message(label, low, high, unit):
        """The stored range in the unit entered, e.g. "... between 0 and 58.48 mg/dL (0–1000 µmol/L)"."""
        stored = unit_label(STORED_UNIT)
        if unit == STORED_UNIT:
            return f"{label.capitalize()} must be between {low} and {high} {stored}."
        shown_low = _format(low, unit) if low else 0
        shown_high = _format(high, unit)
        return (
            f"{label.capitalize()} must be between {shown_low} and {shown_high} {unit_label(unit)} "
            f"({low}–{high} {stored}, the registry's range)."
        )

    def _post_clean(self):
        # The model (its validation, the soft warnings, the save) sees the stored µmol/L; the form's
        # cleaned_data is given back its entered values afterwards, for anything that shows them.
        entered = {name: self.cleaned_data[name] for name in self._stored_bilirubin if name in self.cleaned_data}
        self.cleaned_data.update(self._stored_bilirubin)
        try:
            super()._post_clean()
        finally:
            self.cleaned_data.update(entered)


class LiverTestForm(BilirubinUnitForm, SoftWarningForm):
    """The liver test's own page."""


class LiverTestInlineForm(BilirubinUnitForm, SoftWarningInlineForm):
    """A row of the implantation page's liver tests."""


class BilirubinUnitAdminMixin:
    """The liver test's admin: the form starts at the user's unit for a new test; the list shows the centre's."""

    form = LiverTestForm

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = kwargs.get("form", self.form)
        kwargs["form"] = type(
            form.__name__,
            (form,),
            {"default_bilirubin_unit": default_unit_for(request.user), "__module__": form.__module__},
        )
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="total bilirubin", ordering="bilirubin_umol_per_l")
    def bilirubin_in_centre_unit(self, obj):
        """In the centre's unit, with the unit written next to each value."""
        if obj.bilirubin_umol_per_l is None:
            return None
        unit = centre_unit_of(obj) or STORED_UNIT
        return f"{_format(obj.bilirubin_umol_per_l, unit)} {unit_label(unit)}"


class BilirubinUnitInlineMixin:
    """The implantation page's liver tests: a new row starts at the implantation's centre's unit."""

    form = LiverTestInlineForm

    def get_formset(self, request, obj=None, **kwargs):
        form = kwargs.get("form", self.form)
        unit = centre_unit_of_implantation(obj)
        kwargs["form"] = type(
            form.__name__,
            (form,),
            {"default_bilirubin_unit": unit or default_unit_for(request.user), "__module__": form.__module__},
        )
        return super().get_formset(request, obj, **kwargs)
