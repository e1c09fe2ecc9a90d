from django.contrib import admin

from . import access
from .admin_mixins import AuditedAdmin, CentreScopedAdminMixin, VisibleCentreListFilter
from .models import Centre, Membership, ReportRecipient, Surgeon


class ReportRecipientInline(admin.TabularInline):
    model = ReportRecipient
    extra = 0


@admin.register(Centre)
class CentreAdmin(CentreScopedAdminMixin, AuditedAdmin):
    list_display = ["code", "name", "country", "active"]
    list_filter = ["active", "country"]
    search_fields = ["code", "name"]
    inlines = [ReportRecipientInline]

    def has_change_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_delete_permission(self, request, obj=None):
        return access.is_coordinator(request.user)


@admin.register(Surgeon)
class SurgeonAdmin(CentreScopedAdminMixin, AuditedAdmin):
    list_display = ["code", "centre", "prior_pump_count", "active"]
    list_filter = [VisibleCentreListFilter, "active"]
    search_fields = ["code"]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "role", "centre"]
    list_filter = ["role", "centre"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        access.forget(obj.user)
