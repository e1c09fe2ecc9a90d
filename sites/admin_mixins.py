"""Admin plumbing that applies the one visibility rule (``sites.access``)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin

from registry.dates import ISODateField

from . import access, reads
from .versioning import StaleRecord, Versioned, last_change_of

# Every date of the admin's forms: YYYY-MM-DD only, refused otherwise with what the text may have meant
# (registry.dates). The calendar widget writes the locale's first input format, ISO (registry.formats).
ISO_DATE_OVERRIDES = {models.DateField: {"form_class": ISODateField}}


class CentreScopedAdminMixin:
    """Rows, object permissions and foreign-key choices all come from the scoped querysets.

    A record of another centre is absent from lists, search and autocomplete,
    opens as "does not exist" by URL, and cannot be chosen in a foreign key.
    """

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    # Reads are logged (sites.reads): the record a change, delete or history page opens, and the rows a list
    # page shows. Only patients' records are kept; ReadLogMiddleware writes them if the page is a 2xx.

    def get_object(self, request, object_id, from_field=None):
        return reads.note(request, super().get_object(request, object_id, from_field))

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:  # the page's rows: a queryset the template evaluates, read from its cache
            reads.note(request, changelist.result_list)
        return response

    def history_view_title(self, request, obj):
        # simple_history's history pages fetch the record themselves, not through get_object.
        return super().history_view_title(request, reads.note(request, obj))

    def history_form_view_title(self, request, obj):
        return super().history_form_view_title(request, reads.note(request, obj))

    def _centre_allows(self, request, obj, check):
        return obj is None or check(request.user, access.centre_id_of(obj))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._centre_allows(request, obj, access.can_view_centre)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._centre_allows(request, obj, access.can_edit_centre)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._centre_allows(request, obj, access.can_edit_centre)

    def get_changeform_initial_data(self, request):
        """A data manager of exactly one centre finds it chosen on a new record (still theirs to change)."""
        initial = super().get_changeform_initial_data(request)
        if "centre" not in initial and any(field.name == "centre" for field in self.model._meta.fields):
            ids = access.editable_centre_ids(request.user)
            if ids is not access.ALL_CENTRES and len(ids) == 1:
                initial["centre"] = next(iter(ids))
        return initial

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if hasattr(related, "centre_lookup") and hasattr(related.objects, "editable_by"):
            kwargs["queryset"] = related.objects.editable_by(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class CentreScopedInlineMixin(CentreScopedAdminMixin):
    """Inlines: the parent decides; the children share its centre."""

    # For an inline, ``obj`` in the permission checks is the parent record.

    def has_add_permission(self, request, obj=None):
        return super().has_add_permission(request, obj) and self._centre_allows(request, obj, access.can_edit_centre)


class VisibleCentreListFilter(admin.SimpleListFilter):
    """Filter by centre, offering only the centres the user may see."""

    title = "centre"
    parameter_name = "centre"
    centre_path = "centre"

    def lookups(self, request, model_admin):
        from .models import Centre

        return [(str(c.pk), c.code) for c in Centre.objects.visible_to(request.user)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{f"{self.centre_path}__pk": self.value()})
        return queryset


class VersionCheckedForm(forms.ModelForm):
    """Refuses to save over a change made since the user opened the form (issue 11).

    The form carries the version it was opened at. If the record has moved on and the user changed
    something, the save is refused with who changed it, when, and the record's current values next to
    the user's; the form then carries the new version, so saving again keeps the user's values
    deliberately. A race between this check and the save is caught by the record's compare-and-swap
    save (``sites.versioning``).
    """

    OPENED_VERSION = "opened_version"
    NOT_COMPARED = frozenset({OPENED_VERSION, "change_reason"})
    NOT_SHOWN = frozenset({"DELETE", "ORDER"})  # an inline row's own controls: a change, but not a value

    opened_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and isinstance(self.instance, Versioned):
            self.initial[self.OPENED_VERSION] = self.instance.version

    def clean(self):
        cleaned = super().clean()
        opened = cleaned.get(self.OPENED_VERSION)
        record = self.instance
        if not record.pk or not isinstance(record, Versioned) or opened is None or opened == record.version:
            return cleaned
        changed = [name for name in self.changed_data if name not in self.NOT_COMPARED]
        if not changed:
            return cleaned  # the form says what the record now says: nothing to overwrite
        self.data = self.data.copy()
        self.data[self.add_prefix(self.OPENED_VERSION)] = record.version
        raise forms.ValidationError(self.stale_message(changed))

    def stale_message(self, changed):
        author, when = last_change_of(self.instance)
        by = f" by {author}" if author else ""
        at = f" at {when:%Y-%m-%d %H:%M} UTC" if when else ""
        differences = "; ".join(
            f"{self.fields[name].label or name}: now {self._shown(name, self.initial.get(name))} "
            f"(yours: {self._shown(name, self.cleaned_data.get(name))})"
            for name in changed
            if name in self.fields and name not in self.NOT_SHOWN
        )
        current = f" Its current values: {differences}." if differences else ""
        return (
            f"This {self.instance._meta.verbose_name} was changed{by}{at} since you opened it.{current} "
            "Save again to keep your values, or reload the page to start from the current ones."
        )

    def _shown(self, name, value):
        try:
            model_field = self.instance._meta.get_field(name)
        except Exception:  # a form-only field
            model_field = None
        if value in (None, ""):
            return "(empty)"
        if model_field is not None and model_field.is_relation and not hasattr(value, "pk"):
            value = model_field.related_model._base_manager.filter(pk=value).first() or value
        if model_field is not None and model_field.flatchoices:
            return str(dict(model_field.flatchoices).get(value, value))
        return str(value)


def with_version_check(form_class):
    if issubclass(form_class, VersionCheckedForm):
        return form_class
    return type(form_class.__name__, (VersionCheckedForm, form_class), {"__module__": form_class.__module__})


class ReasonedDeletionFormSet(BaseInlineFormSet):
    """Rows deleted on a parent's page go through ``delete_record`` with the page's change reason."""

    reason_field = "change_reason"
    deleting_user = None

    def _deleted_existing(self):
        return [form for form in self.forms if form.instance.pk and self.can_delete and self._should_delete_form(form)]

    def clean(self):
        super().clean()
        if self._deleted_existing() and not self.data.get(self.reason_field, "").strip():
            raise forms.ValidationError(
                "Give a reason for this change (under History) to delete a row; it is kept in the row's history."
            )

    def delete_existing(self, obj, commit=True):
        if not commit:
            return
        from registry.services import delete_record

        delete_record(obj, user=self.deleting_user, reason=self.data.get(self.reason_field, ""))

    # Rows added or changed on the parent's page keep the page's reason in their history too (issue 13).
    def _with_page_reason(self, form):
        form.instance._change_reason = self.data.get(self.reason_field, "").strip() or None

    def save_new(self, form, commit=True):
        self._with_page_reason(form)
        return super().save_new(form, commit)

    def save_existing(self, form, obj, commit=True):
        self._with_page_reason(form)
        return super().save_existing(form, obj, commit)


class AuditedInlineMixin:
    """Inline rows: the same version check as the page, and deletions with the page's reason."""

    formset = ReasonedDeletionFormSet
    formfield_overrides = ISO_DATE_OVERRIDES

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["form"] = with_version_check(kwargs.get("form", self.form))
        formset = super().get_formset(request, obj, **kwargs)
        if not issubclass(formset, ReasonedDeletionFormSet):
            raise TypeError(f"{type(self).__name__}.formset must extend ReasonedDeletionFormSet")
        return formset


class AuditedAdmin(SimpleHistoryAdmin):
    """Every change is kept by django-simple-history and shown read-only.

    simple_history only hides the revert button when reverting is disabled;
    a crafted POST to a past version would still write, so it is refused here.
    Forms refuse to overwrite a change made since they were opened; deletions ask for a reason,
    one at a time (no bulk delete).
    """

    CHANGE_REASON = "change_reason"
    DELETION_REASON = "reason"
    formfield_overrides = ISO_DATE_OVERRIDES
    delete_confirmation_template = "admin/audited_delete_confirmation.html"

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = with_version_check(kwargs.get("form", self.form))
        kwargs["form"] = type(
            base.__name__,
            (base,),
            {
                self.CHANGE_REASON: forms.CharField(
                    label="Reason for this change",
                    required=False,
                    max_length=500,
                    widget=forms.TextInput(attrs={"size": 80}),
                    help_text="Optional; kept in the record's history with your name, e.g. 'corrected from the "
                    "operative note'. Required when you delete a row below. No patient identifiers.",
                ),
                "__module__": base.__module__,
            },
        )
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        may_write = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        added = [self.CHANGE_REASON, VersionCheckedForm.OPENED_VERSION]
        listed = set(added) & set(flatten_fieldsets(fieldsets))
        if listed:  # the form's own fields go in the History box below, or nowhere on a read-only view
            fieldsets = [
                (name, {**options, "fields": [f for f in options["fields"] if f not in added]})
                for name, options in fieldsets
            ]
            fieldsets = [(name, options) for name, options in fieldsets if options["fields"]]
        if may_write:
            fieldsets.append(("History", {"fields": added}))
        return fieldsets

    def save_form(self, request, form, change):
        record = super().save_form(request, form, change)
        # django-simple-history reads _change_reason when it writes the history row.
        record._change_reason = form.cleaned_data.get(self.CHANGE_REASON) or None
        return record

    def save_formset(self, request, form, formset, change):
        formset.deleting_user = request.user
        super().save_formset(request, form, formset, change)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except StaleRecord:
            # Someone saved between this form's check and its save: nothing was written.
            messages.error(
                request,
                "Someone changed this record while you were saving; nothing was saved. "
                "Check the current values and enter your change again.",
            )
            return HttpResponseRedirect(request.get_full_path())

    # --- Deletion: one at a time, with a reason ---------------------------------------------

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def deletion_reason(self, request):
        return request.POST.get(self.DELETION_REASON, "").strip()

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST" and request.POST.get("post") and not self.deletion_reason(request):
            messages.error(request, "Give a reason for deleting; it is kept in the history of every row deleted.")
            return HttpResponseRedirect(request.get_full_path())
        record = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}), "opened_version": getattr(record, "version", None)}
        try:
            return super().delete_view(request, object_id, extra_context)
        except StaleRecord:
            messages.error(
                request,
                "This record was changed since you opened it; nothing was deleted. Check it "
                "and delete again if you still mean to.",
            )
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request, obj):
        self.use_opened_version(request, obj)
        obj._change_reason = self.deletion_reason(request)
        super().delete_model(request, obj)

    def use_opened_version(self, request, obj):
        """The deletion removes what the user saw, or nothing (``delete_record`` compares versions)."""
        opened = request.POST.get(VersionCheckedForm.OPENED_VERSION, "")
        if opened.isdigit() and isinstance(obj, Versioned):
            obj.version = int(opened)

    def delete_queryset(self, request, queryset):
        raise PermissionDenied("Records are deleted one at a time, each with its reason.")

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("The audit trail cannot be edited.")
        return super().history_form_view(request, object_id, version_id, extra_context)
