from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from sites import access
from sites.admin_mixins import ISO_DATE_OVERRIDES, AuditedAdmin, CentreScopedAdminMixin

from . import services
from .models import CentreReport, OutlierReview, ReportRun


def pdf_link(report):
    """Through the API's scoped download: report files are never served from /media/."""
    if not report.pdf:
        return "–"
    return format_html('<a href="/api/v1/reports/{}/pdf/">PDF</a>', report.pk)


class CentreReportInline(admin.TabularInline):
    model = CentreReport
    extra = 0
    can_delete = False
    fields = ["centre", "status", "delivery_state", "checksum", "render_seconds", "sent_at", "download", "error"]
    readonly_fields = fields

    @admin.display(description="report")
    def download(self, report):
        return pdf_link(report)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ReportRun)
class ReportRunAdmin(admin.ModelAdmin):
    """The coordinator starts runs here; adding a run starts it.

    Starting never waits for the run (``services.start_run(background=True)``):
    the coordinator lands on the run's page, which shows how many centre
    reports are rendered and sent and reloads itself until the run is finished.
    """

    refresh_seconds = 3
    list_display = [
        "period",
        "data_cut",
        "status",
        "progress",
        "method_version",
        "started_at",
        "finished_at",
        "triggered_by",
    ]
    list_filter = ["status"]
    fields = ["period", "data_cut", "status", "method_version", "triggered_by", "started_at", "finished_at"]
    formfield_overrides = ISO_DATE_OVERRIDES  # the period as YYYY-MM-DD (registry.dates)
    inlines = [CentreReportInline]
    actions = ["start_again"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_queryset(self, request):
        counts = services.progress_aggregates(prefix="centre_reports__")
        return super().get_queryset(request).annotate(**{f"progress_{name}": c for name, c in counts.items()})

    @staticmethod
    def run_progress(run):
        """From the changelist's annotations when present, else one query."""
        names = services.RunProgress.__dataclass_fields__
        if all(hasattr(run, f"progress_{name}") for name in names):
            return services.RunProgress(**{name: getattr(run, f"progress_{name}") for name in names})
        return services.run_progress(run.pk)

    @admin.display(description="progress")
    def progress(self, run):
        return self.run_progress(run).short

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["run_progress"] = self.run_progress(obj)
            context["refresh_seconds"] = self.refresh_seconds
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ["status", "method_version", "triggered_by", "started_at", "finished_at"]
        return self.fields

    def has_module_permission(self, request):
        return access.is_coordinator(request.user)

    def has_view_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_add_permission(self, request):
        return access.is_coordinator(request.user)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        run = services.start_run(
            obj.period.replace(day=1), data_cut=form.cleaned_data.get("data_cut"), user=request.user, background=True
        )
        obj.pk = run.pk
        obj.refresh_from_db()

    def response_add(self, request, obj, post_url_continue=None):
        """Straight to the new run's page, which follows its progress."""
        if IS_POPUP_VAR in request.POST:
            return super().response_add(request, obj, post_url_continue)
        total = obj.centre_reports.count()
        self.message_user(
            request,
            f"Started run {obj.pk} for {obj.period:%Y-%m} ({total} centre report{'' if total == 1 else 's'}). "
            "This page shows its progress and refreshes itself until the run is finished.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:reports_reportrun_change", args=[obj.pk]))

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "data_cut" in form.base_fields:
            form.base_fields["data_cut"].required = False
            form.base_fields["data_cut"].help_text = "Leave empty for the end of the month (or now, if sooner)."
        return form

    @admin.action(description="Start a new run for the same month (new data cut)")
    def start_again(self, request, queryset):
        for run in queryset:
            new = services.start_run(run.period, user=request.user, background=True)
            self.message_user(
                request,
                format_html(
                    'Started <a href="{}">run {}</a> for {}.',
                    reverse("admin:reports_reportrun_change", args=[new.pk]),
                    new.pk,
                    f"{new.period:%Y-%m}",
                ),
                messages.SUCCESS,
            )


@admin.register(CentreReport)
class CentreReportAdmin(CentreScopedAdminMixin, admin.ModelAdmin):
    """A centre's users find their reports here; the coordinator sees all."""

    list_display = ["centre", "run", "status", "delivery_state", "sent_at", "download"]
    list_filter = ["status", "delivery_state"]
    list_select_related = ["centre", "run"]
    fields = ["run", "centre", "status", "delivery_state", "download", "checksum", "recipients", "sent_at", "error"]
    readonly_fields = fields

    @admin.display(description="report")
    def download(self, report):
        return pdf_link(report)

    def has_view_permission(self, request, obj=None):
        allowed = access.can_read_clinical(request.user)
        return allowed and (obj is None or access.can_view_centre(request.user, obj.centre_id))

    def has_module_permission(self, request):
        return access.can_read_clinical(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OutlierReviewForm(forms.ModelForm):
    """The one step the user may take on the review, checked by the services' own rules."""

    sign_off = forms.BooleanField(
        required=False, label="Sign off", help_text="The centre's answer is accepted; the outlier process is over."
    )
    request_user = None  # set by OutlierReviewAdmin.get_form

    class Meta:
        model = OutlierReview
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("query", "answer"):  # present only when it is this user's step
            if name in self.fields:
                self.fields[name].required = True

    def clean(self):
        data = super().clean()
        review, user = self.instance, self.request_user
        try:
            if "query" in self.changed_data:
                data["query"] = services.check_query(review, user, data.get("query"))
            if "answer" in self.changed_data:
                data["answer"] = services.check_answer(review, user, data.get("answer"))
            if data.get("sign_off"):
                services.check_sign_off(review, user)
        except PermissionDenied as error:
            raise ValidationError(str(error)) from error
        return data


@admin.register(OutlierReview)
class OutlierReviewAdmin(CentreScopedAdminMixin, AuditedAdmin):
    """Outlier reviews: the coordinator sees every centre's, queries and signs off; a centre's users answer theirs."""

    form = OutlierReviewForm
    list_display = ["centre", "run", "measure", "level", "surgeon", "status", "created_at"]
    list_filter = ["status", "level"]
    list_select_related = ["centre", "run", "surgeon"]
    actions = ["sign_off"]
    FIELDS = [
        "run",
        "centre",
        "measure",
        "level",
        "surgeon",
        "status",
        "created_at",
        "opened_by",
        "query",
        "queried_by",
        "queried_at",
        "answer",
        "answered_by",
        "answered_at",
        "signed_off_by",
        "signed_off_at",
    ]

    def _editable(self, request, obj):
        if obj is None or obj.status == OutlierReview.Status.SIGNED_OFF:
            return set()
        editable = set()
        if access.can_sign_off_outlier_review(request.user) and obj.status == OutlierReview.Status.OPEN:
            editable.add("query")
        if access.can_answer_outlier_review(request.user, obj.centre_id):
            editable.add("answer")
        return editable

    def _may_sign_off(self, request, obj):
        return (
            obj is not None
            and obj.status == OutlierReview.Status.ANSWERED
            and access.can_sign_off_outlier_review(request.user)
        )

    def get_fields(self, request, obj=None):
        return self.FIELDS + (["sign_off"] if self._may_sign_off(request, obj) else [])

    def get_readonly_fields(self, request, obj=None):
        editable = self._editable(request, obj)
        return [name for name in self.FIELDS if name not in editable]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"request_user": request.user})

    def has_module_permission(self, request):
        return access.can_read_clinical(request.user)

    def has_view_permission(self, request, obj=None):
        allowed = access.can_read_clinical(request.user)
        return allowed and (obj is None or access.can_view_centre(request.user, obj.centre_id))

    def has_change_permission(self, request, obj=None):
        if obj is None:
            return access.can_read_clinical(request.user)
        return bool(self._editable(request, obj)) or self._may_sign_off(request, obj)

    def has_add_permission(self, request):
        return False  # opened by the run, one per alarm

    def has_delete_permission(self, request, obj=None):
        return False  # the record of the outlier process is kept

    def has_sign_off_permission(self, request):
        return access.can_sign_off_outlier_review(request.user)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if "query" in form.changed_data:
            services.set_review_query(obj, request.user, data["query"])
        if "answer" in form.changed_data:
            services.answer_review(obj, request.user, data["answer"])
        if data.get("sign_off"):
            services.sign_off_review(obj, request.user)
        obj.refresh_from_db()

    @admin.action(description="Sign off the selected answered reviews", permissions=["sign_off"])
    def sign_off(self, request, queryset):
        done, refused = 0, []
        for review in queryset.select_related("centre"):
            try:
                services.sign_off_review(review, request.user)
                done += 1
            except (ValidationError, PermissionDenied) as error:
                refused.append(f"{review}: {' '.join(getattr(error, 'messages', [str(error)]))}")
        if done:
            self.message_user(request, f"Signed off {done} review{'s' if done != 1 else ''}.", messages.SUCCESS)
        for text in refused:
            self.message_user(request, text, messages.ERROR)


from .models import Release  # noqa: E402  (data releases, issue 15)


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Data releases, read-only: frozen with ``manage.py freeze_release`` or POST /api/v1/releases/, never edited.

    The coordinator sees what each holds; the codes key and the storage stay out of sight.
    """

    list_display = ["name", "cut", "source", "method_version", "short_checksum", "frozen_at", "frozen_by"]
    list_filter = ["source", "method_version"]
    fields = ["name", "cut", "source", "method_version", "checksum", "row_counts", "frozen_at", "frozen_by"]
    readonly_fields = fields
    ordering = ["-cut", "-frozen_at"]

    @admin.display(description="checksum")
    def short_checksum(self, release):
        return f"{release.checksum[:12]}…"

    def has_module_permission(self, request):
        return access.is_coordinator(request.user)

    def has_view_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
