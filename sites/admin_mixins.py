"""Admin plumbing that applies the one visibility rule (``sites.access``)."""

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin

from . import access


class CentreScopedAdminMixin:
    """Rows, object permissions and foreign-key choices all come from the scoped querysets.

    A record of another centre is absent from lists, search and autocomplete,
    opens as "does not exist" by URL, and cannot be chosen in a foreign key.
    """

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def _centre_allows(self, request, obj, check):
        return obj is None or check(request.user, access.centre_id_of(obj))

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._centre_allows(request, obj, access.can_view_centre)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._centre_allows(request, obj, access.can_edit_centre)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._centre_allows(request, obj, access.can_edit_centre)

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


class AuditedAdmin(SimpleHistoryAdmin):
    """Every change is kept by django-simple-history and shown read-only.

    simple_history only hides the revert button when reverting is disabled;
    a crafted POST to a past version would still write, so it is refused here.
    """

    CHANGE_REASON = "change_reason"

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = kwargs.get("form", self.form)
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
                    "operative note'. No patient identifiers.",
                ),
                "__module__": base.__module__,
            },
        )
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        may_write = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        listed = self.CHANGE_REASON in flatten_fieldsets(fieldsets)
        if not may_write and listed:  # a read-only view shows no reason box
            return [
                (name, {**options, "fields": [f for f in options["fields"] if f != self.CHANGE_REASON]})
                for name, options in fieldsets
            ]
        if may_write and not listed:
            fieldsets.append(("History", {"fields": [self.CHANGE_REASON]}))
        return fieldsets

    def save_form(self, request, form, change):
        record = super().save_form(request, form, change)
        # django-simple-history reads _change_reason when it writes the history row.
        record._change_reason = form.cleaned_data.get(self.CHANGE_REASON) or None
        return record

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method != "GET":
            raise PermissionDenied("The audit trail cannot be edited.")
        return super().history_form_view(request, object_id, version_id, extra_context)
