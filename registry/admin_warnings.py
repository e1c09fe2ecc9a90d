"""Soft warnings in the admin (``registry.soft_warnings``): the form asks, the user ticks a box, the save goes on.

Every admin form and inline form of the clinical records uses ``SoftWarningForm``. Once a form passes every
rule, the warnings its values raise are computed; any not confirmed is an error of the form, listing each
warning (also on its field) with a box "I confirm this value is correct" (the ``confirmed_warnings`` field).
Submitted again with the boxes ticked, the form is valid:

* a main form's record is saved by ``save_record`` (``ScopedSaveMixin.save_model`` passes the codes), which
  checks the warnings again and keeps the confirmations;
* an inline row is saved by Django's formset, so the form keeps the confirmations itself once the row is
  saved (``_save_m2m``), naming the user that ``SoftWarningInlineMixin`` binds to the form.

A hard rule's error is shown as always, without a box: the warnings are only asked about valid values.
"""

from django import forms
from django.utils.html import format_html, format_html_join

from . import soft_warnings

FIELD = "confirmed_warnings"
CONFIRM_LABEL = "I confirm this value is correct"
INTRO = "Unusual value(s): check them. If they are right, tick the box for each and save again."


class SoftWarningForm(forms.ModelForm):
    """A clinical record's admin form that asks for confirmation of its soft warnings (see the module)."""

    # Inline rows are saved without save_record: their form keeps the confirmations (SoftWarningInlineForm).
    records_confirmations = False
    soft_warning_user = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending_warnings = []  # the warnings of this submission, once the form is valid
        codes = soft_warnings.codes_for(self._meta.model) if self._meta.model else []
        if codes:
            # Not a declared field, so the admin's fieldsets and inline columns never list it: its boxes are
            # shown in the form's error, only when there is something to confirm.
            self.fields[FIELD] = forms.MultipleChoiceField(
                choices=[(code, code) for code in codes],
                required=False,
                widget=forms.CheckboxSelectMultiple,
                label="Soft warnings confirmed",
            )

    def should_check_warnings(self):
        return True

    def _post_clean(self):
        super()._post_clean()
        self.pending_warnings = []
        if FIELD not in self.fields or self._errors or not self.should_check_warnings():
            return
        self.pending_warnings = soft_warnings.warnings_for(self.instance)
        missing = soft_warnings.unconfirmed(self.pending_warnings, self.cleaned_data.get(FIELD))
        if not missing:
            return
        for warning in missing:
            if warning.field in self.fields:
                self.add_error(warning.field, warning.message)
        self.add_error(None, self.confirmation_html(missing))

    def confirmation_html(self, warnings):
        name = self.add_prefix(FIELD)
        items = format_html_join(
            "",
            '<li class="soft-warning" data-code="{}"><label for="{}"><input type="checkbox" name="{}" value="{}" '
            'id="{}"> {}</label>: {}</li>',
            (
                (w.code, f"id_{name}_{i}", name, w.code, f"id_{name}_{i}", CONFIRM_LABEL, w.message)
                for i, w in enumerate(warnings)
            ),
        )
        return format_html('{}<ul class="soft-warnings">{}</ul>', INTRO, items)

    def confirmed_codes(self):
        return list((getattr(self, "cleaned_data", None) or {}).get(FIELD) or ())

    def _save_m2m(self):
        super()._save_m2m()
        if self.records_confirmations and self.pending_warnings and self.instance.pk:
            soft_warnings.record_confirmations(self.instance, self.pending_warnings, self.soft_warning_user)


class SoftWarningInlineForm(SoftWarningForm):
    records_confirmations = True

    def should_check_warnings(self):
        # An unchanged existing row is not saved by the formset: nothing to ask about.
        return self.instance.pk is None or self.has_changed()


class SoftWarningInlineMixin:
    """For inline admins: rows use ``SoftWarningInlineForm``, which knows the user who confirms."""

    form = SoftWarningInlineForm

    def get_formset(self, request, obj=None, **kwargs):
        form = kwargs.get("form", self.form)
        kwargs["form"] = type(
            form.__name__, (form,), {"soft_warning_user": request.user, "__module__": form.__module__}
        )
        return super().get_formset(request, obj, **kwargs)
