"""Consent withdrawal in the admin (issue 11): the coordinator's button on a patient, and the tombstones.

``PatientAdmin`` takes ``ConsentWithdrawalMixin``: the coordinator sees "Record consent withdrawal"
on the patient's page (``admin/registry/patient/change_form.html``), which opens a confirmation
form (``admin/registry/patient/withdraw_consent.html``) that calls
``registry.services.withdraw_consent`` and lands on the tombstone. Tombstones are read-only for
everyone: the coordinator sees all, a centre's data managers and leads their centres'.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from sites import access
from sites.admin_mixins import CentreScopedAdminMixin

from .dates import ISODateField
from .models import ConsentWithdrawal, Implantation, SystemicTherapyLine

CONFIRM_LABEL = "I understand this erases the patient's records"


class ConsentWithdrawalForm(forms.Form):
    withdrawn_on = ISODateField(label="Consent withdrawn on", widget=AdminDateWidget)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=2000,
        help_text=ConsentWithdrawal._meta.get_field("reason").help_text,
    )
    confirm = forms.BooleanField(
        label=CONFIRM_LABEL,
        help_text="The patient's implantations, doses, complications, liver tests, follow-ups, systemic lines and "
        "their history are deleted for good; only a tombstone (who, when, why) is kept.",
    )


class ConsentWithdrawalMixin:
    """For ``PatientAdmin``: the withdrawal page, and its button on the patient's page for the coordinator."""

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/withdraw-consent/",
                self.admin_site.admin_view(self.withdraw_consent_view),
                name=f"{opts.app_label}_{opts.model_name}_withdraw_consent",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "may_withdraw_consent": access.is_coordinator(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def withdraw_consent_view(self, request, object_id):
        from .services import withdraw_consent

        if not access.is_coordinator(request.user):
            raise PermissionDenied("Only the registry coordinator records a withdrawal of consent.")
        patient = self.get_object(request, object_id)
        if patient is None:
            raise Http404("No such patient.")
        form = ConsentWithdrawalForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                tombstone = withdraw_consent(
                    patient,
                    user=request.user,
                    withdrawn_on=form.cleaned_data["withdrawn_on"],
                    reason=form.cleaned_data["reason"],
                )
            except ValidationError as error:
                for field, messages_ in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, messages_)
            else:
                self.message_user(
                    request,
                    f"Consent withdrawal recorded; the records of {tombstone.pseudonym} are erased.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:registry_consentwithdrawal_change", args=[tombstone.pk]))
        implantations = Implantation.objects.filter(patient=patient)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Record consent withdrawal: {patient.pseudonym}",
            "opts": self.model._meta,
            "original": patient,
            "form": form,
            "media": self.media + form.media,
            "implantation_count": implantations.count(),
            "systemic_line_count": SystemicTherapyLine.objects.filter(patient=patient).count(),
        }
        return TemplateResponse(request, "admin/registry/patient/withdraw_consent.html", context)


@admin.register(ConsentWithdrawal)
class ConsentWithdrawalAdmin(CentreScopedAdminMixin, admin.ModelAdmin):
    """Tombstones: permanent, read-only; the coordinator sees all, a centre's users their centres'."""

    list_display = ["pseudonym", "centre", "withdrawn_on", "recorded_by", "recorded_at"]
    list_filter = ["centre"]
    list_select_related = ["centre"]
    search_fields = ["pseudonym"]
    date_hierarchy = "recorded_at"
    fields = [
        "pseudonym",
        "former_patient_id",
        "centre",
        "withdrawn_on",
        "reason",
        "recorded_by",
        "recorded_at",
        "erased",
    ]
    readonly_fields = fields

    @admin.display(description="recorded by", ordering="recorded_by_name")
    def recorded_by(self, obj):
        return obj.recorded_by_name

    @admin.display(description="rows erased")
    def erased(self, obj):
        return format_html_join(", ", "{}: {}", sorted(obj.erased_counts.items())) or "–"

    def has_module_permission(self, request):
        return access.can_read_clinical(request.user)

    def has_view_permission(self, request, obj=None):
        return access.can_read_clinical(request.user) and (
            obj is None or access.can_view_centre(request.user, obj.centre_id)
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
