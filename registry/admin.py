from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from rangefilter.filters import DateRangeFilterBuilder

from sites import access
from sites.admin_mixins import (
    AuditedAdmin,
    AuditedInlineMixin,
    CentreScopedAdminMixin,
    CentreScopedInlineMixin,
    ReasonedDeletionFormSet,
    VisibleCentreListFilter,
)

from . import missing_data, refills, rules
from .admin_consent import ConsentWithdrawalMixin
from .admin_units import UNIT_FIELD as BILIRUBIN_UNIT_FIELD
from .admin_units import BilirubinUnitAdminMixin, BilirubinUnitInlineMixin
from .admin_warnings import SoftWarningForm, SoftWarningInlineMixin
from .import_storage import RegistryImportMixin
from .imports import (
    ComplicationResource,
    FollowUpResource,
    ImplantationResource,
    LiverTestResource,
    PatientResource,
    PerfusionCheckResource,
    ReadmissionResource,
    SystemicToxicityResource,
    TreatmentResource,
)
from .models import (
    VARIANT_FIELDS,
    Complication,
    ComplicationType,
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
from .vocabulary import DoseChange, VariantHandling

# A variant artery's field is empty when the variant is not there: the select says so instead of "-------".
VARIANT_CHOICES = [("", "Not present"), *VariantHandling.choices]

# --- The never-treated rule across the implantation page's inlines --------------
#
# Doses and follow-ups are edited together with the implantation, so the rule
# is checked against the rows as they stand in the submitted form, not the
# database. The treatment formset is validated before the follow-up formset
# (inline order), and leaves its count on the parent for the follow-ups.


def _kept_forms(formset):
    return [
        form
        for form in formset.forms
        if form.has_changed() or form.instance.pk
        if not (formset.can_delete and formset._should_delete_form(form))
        if getattr(form, "cleaned_data", None) is not None
    ]


class TreatmentFormSet(ReasonedDeletionFormSet):
    def clean(self):
        super().clean()
        doses = [f for f in _kept_forms(self) if f.cleaned_data.get("dose_change") != DoseChange.HELD]
        self.instance._pending_dose_count = len(doses)
        message = rules.never_treated_errors(
            reason=self.instance.never_treated_reason, dose_count=len(doses), pump_never_used=False
        ).get("never_treated_reason")
        if message:
            raise ValidationError(message + " Clear 'Never-treated reason' above or remove the doses.")


class FollowUpFormSet(ReasonedDeletionFormSet):
    def clean(self):
        super().clean()
        dose_count = getattr(self.instance, "_pending_dose_count", None)
        if dose_count is None:
            dose_count = self.instance.treatments.given().count() if self.instance.pk else 0
        for form in _kept_forms(self):
            if not form.cleaned_data.get("pump_never_used"):
                continue
            errors = rules.never_treated_errors(
                reason=self.instance.never_treated_reason, dose_count=dose_count, pump_never_used=True
            )
            if "pump_never_used" in errors:
                form.add_error("pump_never_used", errors["pump_never_used"])
            elif "never_treated_reason" in errors:
                form.add_error("pump_never_used", errors["never_treated_reason"] + " Choose it above.")


class ImplantationChildInline(SoftWarningInlineMixin, AuditedInlineMixin, CentreScopedInlineMixin, admin.StackedInline):
    extra = 0


class RefusedDeletionFormSet(ReasonedDeletionFormSet):
    """Rows another record still points to (RESTRICT, e.g. a refill's liver tests) are refused, not a 500.

    Checked before Django's own check of protected rows (run by the formset's unique check), so that the
    page says what to do instead of listing the rows.
    """

    def clean(self):
        from .services import deletion_refusal

        refusals = [deletion_refusal(form.instance) for form in self._deleted_existing()]
        refusals = list(dict.fromkeys(filter(None, refusals)))
        if refusals:
            raise ValidationError(refusals)
        super().clean()


PERFUSION_CHECK_FIELDS = [
    "checked_on",
    "timing",
    ("method", "modality"),
    ("extrahepatic_perfusion", "extrahepatic_sites"),
    "incomplete_hepatic_perfusion",
    ("correction", "repeat_check_normal"),
]


class PerfusionCheckInline(ImplantationChildInline):
    model = PerfusionCheck
    classes = ["collapse"]
    fields = PERFUSION_CHECK_FIELDS


class RefillDerivedMixin:
    """The two values a refill's volumes give (registry.refills), shown beside what was entered, never typed in."""

    @admin.display(description="measured flow (mL/day)")
    def measured_flow_display(self, obj):
        flow = refills.flow_of(obj) if obj is not None and obj.pk else None
        return "–" if flow is None else f"{flow:g}"

    @admin.display(description="computed dose (mg/kg/day)")
    def computed_dose_display(self, obj):
        check = refills.dose_check(obj) if obj is not None and obj.pk else None
        if check is None:
            return "–"
        dose, flow, basis = check
        return f"{dose:g} (at the {basis} {flow:g} mL/day)"


TREATMENT_FIELDS = [
    "given_on",
    "drug",
    "dose",
    "dose_unit",
    "dose_change",
    "hold_reason",
    "dose_change_reason",
    "body_weight_kg",
    "returned_volume_ml",
    "filled_volume_ml",
    "drug_concentration_mg_per_ml",
    "dexamethasone_mg",
    "heparin_units",
    "liver_test",
    "measured_flow_display",
    "computed_dose_display",
]
TREATMENT_DERIVED = ["measured_flow_display", "computed_dose_display"]


def _same_implantations_liver_tests(formfield, implantation):
    """A refill links only its own implantation's liver tests (registry.refills.errors names the rule)."""
    if formfield is not None:
        formfield.queryset = (
            formfield.queryset.filter(implantation=implantation) if implantation else (formfield.queryset.none())
        )
    return formfield


class TreatmentInline(RefillDerivedMixin, ImplantationChildInline, admin.TabularInline):
    model = Treatment
    formset = TreatmentFormSet
    template = "admin/edit_inline/tabular.html"
    verbose_name = "HAI dose"
    verbose_name_plural = "HAI doses (each cycle or refill)"
    fields = TREATMENT_FIELDS
    readonly_fields = TREATMENT_DERIVED

    def get_formset(self, request, obj=None, **kwargs):
        request._refills_implantation = obj if obj is not None and obj.pk else None  # for the liver test choices
        return super().get_formset(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "liver_test":
            # A new implantation has no liver tests yet: none to offer.
            return _same_implantations_liver_tests(formfield, getattr(request, "_refills_implantation", None))
        return formfield


class ComplicationInline(ImplantationChildInline):
    model = Complication

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "type":
            kwargs["queryset"] = ComplicationType.objects.filter(active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


def _coded(*names):
    """One line per field with its missing-data code beside it (registry.missing_data)."""
    return [(name, missing_data.companion(name)) for name in names]


# The liver tests' values, then their codes: a table row (tabular inline) takes no lines.
LIVER_TEST_FIELDS = [
    "measured_on",
    "is_baseline",
    *LiverTest.MISSING_DATA_FIELDS,
    BILIRUBIN_UNIT_FIELD,  # the unit the bilirubin and its ULN are entered in (a form field: registry.admin_units)
    *(missing_data.companion(name) for name in LiverTest.MISSING_DATA_FIELDS),
    *LiverTest.UPPER_LIMIT_FIELDS,
]
FOLLOW_UP_FIELDS = [
    "contact_on",
    "vital_status",
    "died_on",
    *_coded("response"),
    "resected",
    "resection_on",
    *_coded("resection_margin", "hepatic_progression_on", "progression_on"),
    "pump_ended_on",
    "pump_end_reason",
    "pump_explanted",
    "pump_never_used",
]


class LiverTestInline(BilirubinUnitInlineMixin, ImplantationChildInline, admin.TabularInline):
    model = LiverTest
    formset = RefusedDeletionFormSet
    template = "admin/edit_inline/tabular.html"
    fields = LIVER_TEST_FIELDS


class FollowUpInline(ImplantationChildInline):
    model = FollowUp
    formset = FollowUpFormSet
    verbose_name_plural = "follow-ups"
    fields = FOLLOW_UP_FIELDS


class SystemicToxicityInline(ImplantationChildInline, admin.TabularInline):
    model = SystemicToxicity
    template = "admin/edit_inline/tabular.html"
    fields = ["term", "grade", "onset_on"]


class ReadmissionInline(ImplantationChildInline, admin.TabularInline):
    model = Readmission
    template = "admin/edit_inline/tabular.html"
    fields = ["kind", "occurred_on", "reason"]


class TreatedListFilter(admin.SimpleListFilter):
    title = "ever treated"
    parameter_name = "treated"

    def lookups(self, request, model_admin):
        return [("yes", "Treated (at least one dose)"), ("no", "Never treated")]

    def queryset(self, request, queryset):
        given = Treatment.objects.given().filter(implantation=OuterRef("pk"))
        if self.value() == "yes":
            return queryset.filter(Exists(given))
        if self.value() == "no":
            return queryset.exclude(Exists(given))
        return queryset


class ComplicationTypeListFilter(admin.SimpleListFilter):
    title = "complication type"
    parameter_name = "complication_type"

    def lookups(self, request, model_admin):
        return [(t.code, t.name) for t in ComplicationType.objects.all()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(
                Exists(Complication.objects.filter(implantation=OuterRef("pk"), type__code=self.value()))
            )
        return queryset


class ImplantationCentreFilter(VisibleCentreListFilter):
    centre_path = "patient__centre"


class ScopedSaveMixin:
    """Saves and deletions go through the service, which re-checks the centre and records who did it and why."""

    form = SoftWarningForm  # soft warnings: confirmed in the form, kept by save_record (registry.admin_warnings)

    def save_model(self, request, obj, form, change):
        from .services import save_record

        save_record(obj, user=request.user, confirmed_warnings=form.cleaned_data.get("confirmed_warnings", ()))

    def save_related(self, request, form, formsets, change):
        """After the save: a record dated in a month whose report already ran is in the next one (issue 13)."""
        super().save_related(request, form, formsets, change)
        from django.contrib import messages

        from reports.late_entries import late_entry_notice

        saved = [form.instance] if not change or form.has_changed() else []
        for formset in formsets:
            saved += [
                *getattr(formset, "new_objects", ()),
                *(obj for obj, _ in getattr(formset, "changed_objects", ())),
            ]
        for notice in dict.fromkeys(filter(None, map(late_entry_notice, saved))):
            messages.warning(request, notice)

    def has_delete_permission(self, request, obj=None):
        from .services import may_delete

        return super().has_delete_permission(request, obj) and (obj is None or may_delete(request.user, obj))

    def delete_view(self, request, object_id, extra_context=None):
        """A record others still point to (RESTRICT) is refused with the service's message, before the page."""
        from django.contrib.admin.utils import unquote
        from django.urls import reverse

        from .services import deletion_refusal

        obj = self.get_object(request, unquote(object_id))
        refusal = deletion_refusal(obj) if obj is not None else None
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            opts = self.opts
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        return super().delete_view(request, object_id, extra_context)

    def delete_model(self, request, obj):
        from .services import delete_record

        self.use_opened_version(request, obj)
        delete_record(obj, user=request.user, reason=self.deletion_reason(request))


@admin.register(Implantation)
class ImplantationAdmin(RegistryImportMixin, CentreScopedAdminMixin, ScopedSaveMixin, AuditedAdmin):
    list_display = [
        "__str__",
        "centre_code",
        "surgeon",
        "implanted_on",
        "indication",
        "treated_display",
        "surgeon_sequence_display",
    ]
    list_filter = [
        ImplantationCentreFilter,
        "indication",
        ("implanted_on", DateRangeFilterBuilder()),
        TreatedListFilter,
        ComplicationTypeListFilter,
        "device",
    ]
    search_fields = ["patient__pseudonym"]
    autocomplete_fields = ["patient", "surgeon"]
    date_hierarchy = "implanted_on"
    list_select_related = ["patient__centre", "surgeon"]
    readonly_fields = ["centre_code", "treated_display", "days_to_first_dose_display", "surgeon_sequence_display"]
    inlines = [
        PerfusionCheckInline,
        TreatmentInline,
        ComplicationInline,
        LiverTestInline,
        FollowUpInline,
        SystemicToxicityInline,
        ReadmissionInline,
    ]
    # In the order of an operation note: the operation, the device placed, the arteries met, the rest.
    fieldsets = [
        (
            "Operation",
            {
                "fields": [
                    "patient",
                    "surgeon",
                    "implanted_on",
                    "indication",
                    "approach",
                    ("concurrent_colorectal_resection", "concurrent_hepatectomy", "concurrent_ablation"),
                    *_coded("operative_minutes", "blood_loss_ml", "length_of_stay_days"),
                ]
            },
        ),
        ("Pump and catheter", {"fields": ["device", "pump_model", "catheter_vessel", "catheter_tip_position"]}),
        (
            "Arterial anatomy",
            {
                "fields": [
                    *VARIANT_FIELDS.values(),
                    "accessory_arteries_ligated",
                    "gastroduodenal_branches_ligated",
                    "right_gastric_artery_ligated",
                ],
                "description": "Each variant hepatic artery (Michels): not present, or how it was handled.",
            },
        ),
        ("Other procedures", {"fields": ["cholecystectomy"]}),
        ("Trial and replacement", {"fields": [("trial", "trial_arm"), "replaces"]}),
        ("Never treated", {"fields": ["never_treated_reason", "never_treated_note"]}),
        (
            "Derived (read-only)",
            {"fields": ["centre_code", "treated_display", "days_to_first_dose_display", "surgeon_sequence_display"]},
        ),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        request._replacing_implantation = obj  # read by formfield_for_foreignkey, for the replaces choices
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "replaces" and formfield is not None:
            # The same patient's other implantations (a new one: the centre's; clean() names the rule).
            obj = getattr(request, "_replacing_implantation", None)
            queryset = formfield.queryset.select_related("patient")
            if obj is not None and obj.pk:
                queryset = queryset.filter(patient_id=obj.patient_id, implanted_on__lte=obj.implanted_on).exclude(
                    pk=obj.pk
                )
            formfield.queryset = queryset
        if db_field.name == "pump_model" and formfield is not None:
            # New choices from the active catalogue only; a row keeps the model it has (as complication types).
            obj = getattr(request, "_replacing_implantation", None)
            current = obj.pump_model_id if obj is not None else None
            formfield.queryset = PumpModel.objects.filter(Q(active=True) | Q(pk=current))
        return formfield

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name in VARIANT_FIELDS.values():
            kwargs["choices"] = VARIANT_CHOICES
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    # The file import (registry.imports), with its permission (access.can_write_clinical) and user scope:
    # registry.import_storage.RegistryImportMixin.
    import_resource_class = ImplantationResource

    def get_queryset(self, request):
        return super().get_queryset(request).with_derived()

    import_export_change_list_template = "admin/registry/implantation/change_list_record_status.html"
    # Its history lists its doses', complications', liver tests', follow-ups' and perfusion checks' too (issue 13).
    object_history_template = "admin/registry/implantation/object_history.html"

    def history_view(self, request, object_id, extra_context=None):
        from django.contrib.admin.utils import unquote

        from .child_history import child_history

        rows, truncated = child_history(unquote(object_id)) if str(unquote(object_id)).isdigit() else ([], False)
        extra_context = {**(extra_context or {}), "child_history": rows, "child_history_truncated": truncated}
        return super().history_view(request, object_id, extra_context)

    def get_urls(self):  # the record status dashboard (issue 12): registry.admin_dashboard
        from django.urls import path

        from .admin_dashboard import record_status_view

        view = self.admin_site.admin_view(lambda request: record_status_view(request, self))
        return [path("record-status/", view, name="registry_implantation_record_status"), *super().get_urls()]

    @admin.display(description="centre", ordering="patient__centre__code")
    def centre_code(self, obj):
        return obj.patient.centre.code if obj.patient_id else "–"

    @admin.display(description="ever treated", boolean=True)
    def treated_display(self, obj):
        return obj.treated if obj.pk else None

    @admin.display(description="days to first dose")
    def days_to_first_dose_display(self, obj):
        return obj.days_to_first_dose if obj.pk else None

    @admin.display(description="surgeon's pump number", ordering="derived_surgeon_sequence")
    def surgeon_sequence_display(self, obj):
        return obj.surgeon_sequence if obj.pk else None


class ImplantationInline(SoftWarningInlineMixin, AuditedInlineMixin, CentreScopedInlineMixin, admin.TabularInline):
    model = Implantation
    extra = 0
    fields = ["implanted_on", "surgeon", "indication", "approach", "device"]
    autocomplete_fields = ["surgeon"]
    show_change_link = True
    verbose_name_plural = "implantations (open one to enter doses, complications, liver tests and follow-ups)"


class SystemicTherapyLineInline(
    SoftWarningInlineMixin, AuditedInlineMixin, CentreScopedInlineMixin, admin.TabularInline
):
    model = SystemicTherapyLine
    extra = 0


@admin.register(Patient)
class PatientAdmin(RegistryImportMixin, ConsentWithdrawalMixin, CentreScopedAdminMixin, ScopedSaveMixin, AuditedAdmin):
    import_resource_class = PatientResource  # file import (registry.imports), as for each form below
    list_display = ["pseudonym", "centre", "birth_year", "sex", "primary_tumour"]
    list_filter = [VisibleCentreListFilter, "primary_tumour", "sex"]
    search_fields = ["pseudonym"]
    list_select_related = ["centre"]
    inlines = [ImplantationInline, SystemicTherapyLineInline]
    fieldsets = [
        (None, {"fields": ["pseudonym", "centre", ("birth_year", "sex"), "consent_on"]}),
        (
            "Case mix at implant",
            {
                "fields": [
                    "primary_tumour",
                    ("ras_status", "braf_status", "msi_status"),
                    *_coded("liver_metastases_count", "bilobar_disease", "extrahepatic_disease"),
                    "extrahepatic_sites",
                    "prior_systemic_lines",
                    *_coded("ecog", "cea_ng_per_ml", "clinical_risk_score"),
                ]
            },
        ),
    ]

    def get_readonly_fields(self, request, obj=None):
        """The registry generates pseudonyms; only the coordinator sets one (a migration from another registry)."""
        readonly = list(super().get_readonly_fields(request, obj))
        if not access.is_coordinator(request.user):
            readonly.append("pseudonym")
        return readonly


class ChildRecordAdmin(CentreScopedAdminMixin, ScopedSaveMixin, AuditedAdmin):
    """Child records listed on their own for searching and their history; entered on the implantation."""

    autocomplete_fields = ["implantation"]
    search_fields = ["implantation__patient__pseudonym"]
    list_select_related = ["implantation__patient__centre"]


@admin.register(Complication)
class ComplicationAdmin(RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = ComplicationResource
    list_display = ["implantation", "type", "onset_on", "grade", "pump_lost"]
    list_filter = ["type", "grade", "pump_lost"]
    list_select_related = ["implantation__patient__centre", "type"]


@admin.register(Treatment)
class TreatmentAdmin(RefillDerivedMixin, RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = TreatmentResource
    list_display = ["implantation", "given_on", "drug", "dose", "dose_unit", "dose_change", "hold_reason"]
    list_filter = ["drug", "dose_change", "hold_reason"]
    fields = ["implantation", *TREATMENT_FIELDS]
    readonly_fields = TREATMENT_DERIVED

    def get_form(self, request, obj=None, change=False, **kwargs):
        request._refills_implantation = obj.parent if obj is not None and obj.pk else None
        return super().get_form(request, obj, change, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "liver_test":
            # A new dose's implantation is not known until saved; clean() then checks the link.
            implantation = getattr(request, "_refills_implantation", None)
            if implantation is not None:
                return _same_implantations_liver_tests(formfield, implantation)
        return formfield


@admin.register(FollowUp)
class FollowUpAdmin(RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = FollowUpResource
    list_display = ["implantation", "contact_on", "vital_status", "resected", "pump_never_used"]
    list_filter = ["vital_status", "resected", "pump_never_used"]
    fields = ["implantation", *FOLLOW_UP_FIELDS]


@admin.register(LiverTest)
class LiverTestAdmin(RegistryImportMixin, BilirubinUnitAdminMixin, ChildRecordAdmin):
    import_resource_class = LiverTestResource
    # Bilirubin in the centre's unit (registry.admin_units), the unit written next to each value.
    list_display = [
        "implantation",
        "measured_on",
        "is_baseline",
        "ast_u_per_l",
        "alt_u_per_l",
        "alp_u_per_l",
        "bilirubin_in_centre_unit",
    ]
    fields = [
        "implantation",
        "measured_on",
        "is_baseline",
        BILIRUBIN_UNIT_FIELD,
        *_coded(*LiverTest.MISSING_DATA_FIELDS),
        tuple(LiverTest.UPPER_LIMIT_FIELDS),
    ]


@admin.register(PerfusionCheck)
class PerfusionCheckAdmin(RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = PerfusionCheckResource
    list_display = ["implantation", "checked_on", "timing", "modality", "extrahepatic_perfusion", "correction"]
    list_filter = ["modality", "extrahepatic_perfusion", "correction"]
    fields = ["implantation", *PERFUSION_CHECK_FIELDS]


@admin.register(SystemicToxicity)
class SystemicToxicityAdmin(RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = SystemicToxicityResource
    list_display = ["implantation", "term", "grade", "onset_on"]
    list_filter = ["term", "grade"]
    fields = ["implantation", "term", "grade", "onset_on"]


@admin.register(Readmission)
class ReadmissionAdmin(RegistryImportMixin, ChildRecordAdmin):
    import_resource_class = ReadmissionResource
    list_display = ["implantation", "kind", "occurred_on", "reason"]
    list_filter = ["kind", "reason"]
    fields = ["implantation", "kind", "occurred_on", "reason"]


@admin.register(SystemicTherapyLine)
class SystemicTherapyLineAdmin(CentreScopedAdminMixin, ScopedSaveMixin, AuditedAdmin):
    list_display = ["patient", "line_number", "regimen", "biologic", "started_on", "ended_on"]
    autocomplete_fields = ["patient"]
    search_fields = ["patient__pseudonym"]


@admin.register(ComplicationType)
class ComplicationTypeAdmin(AuditedAdmin):
    list_display = ["name", "code", "category", "grading_system", "catheter_related", "active"]
    list_filter = ["category", "grading_system", "active"]
    search_fields = ["name", "code"]


@admin.register(PumpModel)
class PumpModelAdmin(AuditedAdmin):
    """The pump catalogue: the coordinator adds and changes models; the other staff roles read it.

    Registry-wide reference data like the complication types, so the roles' permissions are the same
    (sites.backends gives them for ``registry.complicationtype``; asked here for this catalogue).
    """

    list_display = ["name", "manufacturer", "kind", "reservoir_volume_ml", "nominal_flow_ml_per_day", "active"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "manufacturer"]

    def has_view_permission(self, request, obj=None):
        return access.is_coordinator(request.user) or access.can_read_clinical(request.user)

    def has_add_permission(self, request):
        return access.is_coordinator(request.user)

    def has_change_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_delete_permission(self, request, obj=None):
        # Models on records are protected (Implantation.pump_model); an unused one may go, by the coordinator.
        return access.is_coordinator(request.user)


from . import admin_quality  # noqa: E402,F401  (data queries and the FUDR table, issue 12)
