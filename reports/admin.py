from django.contrib import admin, messages
from django.utils.html import format_html

from sites import access
from sites.admin_mixins import CentreScopedAdminMixin

from . import services
from .models import CentreReport, ReportRun


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
    """The coordinator starts runs here; adding a run starts it."""

    list_display = ["period", "data_cut", "status", "method_version", "started_at", "finished_at", "triggered_by"]
    list_filter = ["status"]
    fields = ["period", "data_cut", "status", "method_version", "triggered_by", "started_at", "finished_at"]
    inlines = [CentreReportInline]
    actions = ["start_again"]

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

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
            obj.period.replace(day=1), data_cut=form.cleaned_data.get("data_cut"), user=request.user
        )
        obj.pk = run.pk
        obj.refresh_from_db()

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "data_cut" in form.base_fields:
            form.base_fields["data_cut"].required = False
            form.base_fields["data_cut"].help_text = "Leave empty for the end of the month (or now, if sooner)."
        return form

    @admin.action(description="Start a new run for the same month (new data cut)")
    def start_again(self, request, queryset):
        for run in queryset:
            new = services.start_run(run.period, user=request.user)
            self.message_user(request, f"Started run {new.pk} for {new.period:%Y-%m}.", messages.SUCCESS)


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
