"""Data queries and the FUDR dose-modification table in the admin (issue 12).

* *Data queries*: a centre's users see their centres' queries only (``CentreScopedAdminMixin``); the
  data manager writes the answer on the query's page and follows the link to the record to correct it.
  The coordinator raises queries by hand (*Add*, or *Raise a data query* on any record's page), closes
  and re-opens them (buttons on the query's page, or the list's actions). Each step goes through
  ``registry.data_quality_services``, which decides with ``sites.access`` and keeps who and when.
* *FUDR dose-modification bands*: the MSKCC table the ``liver_tests_rising_without_hold`` rule applies;
  everyone reads it, the coordinator adjusts it.

Imported by ``registry.admin`` (its last line), which registers the admin classes.
"""

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from sites import access
from sites.admin_mixins import AuditedAdmin, CentreScopedAdminMixin, VisibleCentreListFilter
from sites.versioning import StaleRecord

from . import data_quality, data_quality_services
from .models import DATA_QUERY_RECORD_MODELS, DataQuery, DataQueryStatus, FudrDoseBand

RECORD_LEVEL = ""  # the field part of a "record kind and field" choice for the record as a whole


def record_kind_and_field_choices():
    """Grouped choices "model label:field" for the raise form: every clinical record kind and its fields."""
    groups = []
    for label in DATA_QUERY_RECORD_MODELS:
        model = apps.get_model(label)
        name = str(model._meta.verbose_name).capitalize()
        options = [(f"{label}:{RECORD_LEVEL}", f"{name} (the record as a whole)")]
        options += [
            (f"{label}:{field}", f"{name}: {text}") for field, text in data_quality_services.field_choices(label)
        ]
        groups.append((name, options))
    return groups


class RaiseDataQueryForm(forms.Form):
    record_field = forms.ChoiceField(label="Record kind and field", choices=record_kind_and_field_choices)
    record_id = forms.IntegerField(label="Record id", min_value=1, help_text="The id in the record's admin page URL.")
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=4000,
        help_text="The question for the centre. No patient identifiers (the registry pseudonym is fine).",
    )

    def clean(self):
        cleaned = super().clean()
        choice, record_id = cleaned.get("record_field"), cleaned.get("record_id")
        if choice and record_id:
            record_model, field_name = choice.split(":", 1)
            record = data_quality_services.record_of(record_model, record_id)
            if record is None:
                self.add_error("record_id", f"There is no {record_model.split('.')[1]} with id {record_id}.")
            cleaned.update(record=record, field_name=field_name)
        return cleaned


class AnswerForm(forms.ModelForm):
    class Meta:
        model = DataQuery
        fields = ["answer"]
        widgets = {"answer": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def clean_answer(self):
        answer = (self.cleaned_data.get("answer") or "").strip()
        if not answer:  # saving the page without an answer would say "changed" and change nothing
            raise ValidationError("Write the answer: what you corrected, or why the value stands.")
        return answer


class DataQueryCentreFilter(VisibleCentreListFilter):
    centre_path = "patient__centre"


class RuleFilter(admin.SimpleListFilter):
    title = "rule"
    parameter_name = "rule"

    def lookups(self, request, model_admin):
        return list(data_quality.RULE_TITLES.items())

    def queryset(self, request, queryset):
        return queryset.filter(rule=self.value()) if self.value() else queryset


def record_admin_url(record_model, record_id):
    app_label, model_name = record_model.split(".")
    try:
        return reverse(f"admin:{app_label}_{model_name}_change", args=[record_id])
    except NoReverseMatch:
        return None


@admin.register(DataQuery)
class DataQueryAdmin(CentreScopedAdminMixin, AuditedAdmin):
    form = AnswerForm
    list_display = ["id", "status", "rule", "centre_code", "record", "short_message", "raised_on", "answered_at"]
    list_display_links = ["id", "short_message"]
    list_filter = ["status", RuleFilter, DataQueryCentreFilter]
    list_select_related = ["patient__centre"]
    search_fields = ["message", "answer", "patient__pseudonym"]
    date_hierarchy = "raised_on"
    actions = ["close_selected", "reopen_selected"]
    change_form_template = "admin/registry/dataquery/change_form.html"
    SHOWN = [
        "status",
        "rule",
        "centre_code",
        "record",
        "field_name",
        "message",
        "raised_on",
        "raised_by",
        "answer",
        "answered_by",
        "answered_at",
        "closed_by",
        "closed_at",
        "closed_automatically",
        "close_note",
    ]

    # --- who may do what (sites.access) ------------------------------------------------------------

    def has_module_permission(self, request):
        return access.can_read_data_queries(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return access.can_read_data_queries(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return access.can_raise_data_query(request.user)

    def may_answer(self, request, obj):
        return (
            obj is not None
            and obj.status != DataQueryStatus.CLOSED
            and access.can_answer_data_query(request.user, access.centre_id_of(obj))
        )

    def has_change_permission(self, request, obj=None):
        if obj is None:  # the list, and the close/re-open actions
            return access.can_close_data_query(request.user) or access.can_write_clinical(request.user)
        return self.may_answer(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # a query is part of the audit trail: it is closed, never deleted

    def has_close_permission(self, request):
        return access.can_close_data_query(request.user)

    has_reopen_permission = has_close_permission

    # --- the page ------------------------------------------------------------------------------------

    def get_fields(self, request, obj=None):
        return list(self.SHOWN)

    def get_readonly_fields(self, request, obj=None):
        if self.may_answer(request, obj):
            return [name for name in self.SHOWN if name != "answer"]
        return list(self.SHOWN)

    @admin.display(description="centre", ordering="patient__centre__code")
    def centre_code(self, obj):
        return obj.patient.centre.code

    @admin.display(description="record")
    def record(self, obj):
        url = record_admin_url(obj.record_model, obj.record_id)
        text = obj.record_label
        return format_html('<a href="{}">{}</a>', url, text) if url else text

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message if len(obj.message) <= 90 else obj.message[:87] + "…"

    def save_model(self, request, obj, form, change):
        if "answer" not in form.changed_data:
            return
        self.use_opened_version(request, obj)
        answered = data_quality_services.answer_query(
            obj, user=request.user, answer=form.cleaned_data["answer"], reason=getattr(obj, "_change_reason", "") or ""
        )
        obj.version = answered.version

    def save_related(self, request, form, formsets, change):
        pass  # no inlines, no many-to-many

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        may_close = access.can_close_data_query(request.user)
        extra_context = {
            **(extra_context or {}),
            "may_close": may_close and obj is not None and obj.status != DataQueryStatus.CLOSED,
            "may_reopen": may_close and obj is not None and obj.status != DataQueryStatus.OPEN,
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path("<path:object_id>/close/", self.admin_site.admin_view(self.close_view), name=f"{name}_close"),
            path("<path:object_id>/reopen/", self.admin_site.admin_view(self.reopen_view), name=f"{name}_reopen"),
            *super().get_urls(),
        ]

    # --- raising by hand --------------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied(data_quality_services.COORDINATOR_ONLY)
        initial = {}
        record_model, record_id = request.GET.get("record_model", ""), request.GET.get("record_id", "")
        if record_model in DATA_QUERY_RECORD_MODELS:
            initial["record_field"] = f"{record_model}:{request.GET.get('field_name', RECORD_LEVEL)}"
        if record_id.isdigit():
            initial["record_id"] = int(record_id)
        form = RaiseDataQueryForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                query = data_quality_services.raise_query(
                    form.cleaned_data["record"],
                    user=request.user,
                    message=form.cleaned_data["message"],
                    field_name=form.cleaned_data["field_name"],
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                self.message_user(request, f"Query {query.pk} raised on {query.record_label}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:registry_dataquery_change", args=[query.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Raise a data query",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/registry/dataquery/raise.html", context)

    # --- closing and re-opening ---------------------------------------------------------------------------

    def _step_view(self, request, object_id, step, done):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not access.can_close_data_query(request.user):
            raise PermissionDenied(data_quality_services.COORDINATOR_ONLY)
        query = self.get_object(request, object_id)
        if query is None:
            raise Http404("No such data query.")
        opened = request.POST.get("opened_version", "")
        if opened.isdigit():
            query.version = int(opened)
        try:
            step(query, user=request.user, note=request.POST.get("note", ""))
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        except StaleRecord:
            self.message_user(
                request, "This query was changed since you opened it; check it and try again.", messages.ERROR
            )
        else:
            self.message_user(request, f"Query {query.pk} {done}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:registry_dataquery_change", args=[query.pk]))

    def close_view(self, request, object_id):
        return self._step_view(request, object_id, data_quality_services.close_query, "closed")

    def reopen_view(self, request, object_id):
        return self._step_view(request, object_id, data_quality_services.reopen_query, "re-opened")

    def _bulk(self, request, queryset, step, done):
        count, refused = 0, 0
        for query in queryset:
            try:
                step(query, user=request.user)
                count += 1
            except (ValidationError, StaleRecord):
                refused += 1
        self.message_user(request, f"{count} quer{'y' if count == 1 else 'ies'} {done}.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"{refused} left as they were (already {done}, or changed meanwhile).", messages.WARNING
            )

    @admin.action(description="Close the selected queries", permissions=["close"])
    def close_selected(self, request, queryset):
        self._bulk(request, queryset, data_quality_services.close_query, "closed")

    @admin.action(description="Re-open the selected queries", permissions=["reopen"])
    def reopen_selected(self, request, queryset):
        self._bulk(request, queryset, data_quality_services.reopen_query, "re-opened")


@admin.register(FudrDoseBand)
class FudrDoseBandAdmin(AuditedAdmin):
    """The MSKCC FUDR dose-modification table (registry.data_quality): everyone reads it, the coordinator adjusts it."""

    list_display = ["analyte", "reference_from", "reference_below", "ratio_from", "ratio_below", "action"]
    list_filter = ["analyte"]
    fields = ["analyte", "reference_from", "reference_below", "ratio_from", "ratio_below", "dose_percent"]

    @admin.display(description="FUDR dose")
    def action(self, obj):
        return "hold" if obj.dose_percent == 0 else f"{obj.dose_percent}%"

    def has_add_permission(self, request):
        return access.is_coordinator(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_delete_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)
