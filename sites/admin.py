from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice
from rangefilter.filters import DateRangeFilterBuilder

from . import access, two_factor
from .admin_mixins import AuditedAdmin, CentreScopedAdminMixin, VisibleCentreListFilter
from .models import Centre, Membership, RecordRead, ReportRecipient, Surgeon


class ReportRecipientInline(admin.TabularInline):
    model = ReportRecipient
    extra = 0


@admin.register(Centre)
class CentreAdmin(CentreScopedAdminMixin, AuditedAdmin):
    list_display = ["code", "name", "country", "time_zone", "bilirubin_unit", "active"]
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


# --- Logins: attempts and logs (django-axes), second factors (django-otp). The coordinator's only
# (RoleBackend grants these apps to nobody else).


class ReadOnlyLogAdmin:
    """An audit log: seen, never added or changed."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LoginAttemptAdmin(ReadOnlyLogAdmin, axes_admin.AccessAttemptAdmin):
    """Failed logins per username and address. Deleting a row unlocks that username and address."""


class LoginLogAdmin(ReadOnlyLogAdmin, axes_admin.AccessLogAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


class LoginFailureLogAdmin(ReadOnlyLogAdmin, axes_admin.AccessFailureLogAdmin):
    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(AccessAttempt, LoginAttemptAdmin)
admin.site.register(AccessLog, LoginLogAdmin)
admin.site.register(AccessFailureLog, LoginFailureLogAdmin)


@admin.register(RecordRead)
class RecordReadAdmin(ReadOnlyLogAdmin, admin.ModelAdmin):
    """Who read which patients' records, in the admin and the API (sites.reads). The coordinator's only."""

    list_display = [
        "read_at",
        "username",
        "role",
        "channel",
        "method",
        "path",
        "record_kind",
        "record_count",
        "patients",
    ]
    # No filter that would read the whole log for its choices (e.g. distinct record kinds) on every page.
    list_filter = ["channel", "user", ("read_at", DateRangeFilterBuilder()), "role"]
    search_fields = ["username"]
    show_full_result_count = False
    search_help_text = "A patient's id (a whole number) lists the reads of that patient's records; else a username."

    def has_view_permission(self, request, obj=None):
        return access.is_coordinator(request.user)

    def has_module_permission(self, request):
        return access.is_coordinator(request.user)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="patient ids")
    def patients(self, obj):
        shown = ", ".join(str(pk) for pk in obj.patient_ids[:10])
        return shown + (f" … ({len(obj.patient_ids)} patients)" if len(obj.patient_ids) > 10 else "")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.isdigit():  # patient_ids @> [id]: the GIN index recordread_patients_gin
            return queryset.filter(patient_ids__contains=[int(term)]), False
        return super().get_search_results(request, queryset, search_term)


class SecondFactorAdmin:
    """The coordinator resets a user's second factor by deleting their devices; nobody adds or edits one here
    (a device made for someone else would let its maker pass their second factor)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AuthenticatorAdmin(SecondFactorAdmin, TOTPDeviceAdmin):
    pass


class RecoveryCodesAdmin(SecondFactorAdmin, StaticDeviceAdmin):
    pass


for _model, _admin in ((TOTPDevice, AuthenticatorAdmin), (StaticDevice, RecoveryCodesAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)


User = get_user_model()
_BaseUserAdmin = type(admin.site.get_model_admin(User)) if admin.site.is_registered(User) else UserAdmin


@admin.action(description="Reset two-factor authentication (they set it up again at their next login)")
def reset_two_factor(modeladmin, request, queryset):
    if not access.is_coordinator(request.user):
        raise PermissionDenied
    for user in queryset:
        two_factor.reset(user)
    modeladmin.message_user(request, f"Two-factor authentication reset for {len(queryset)} user(s).")


class RegistryUserAdmin(_BaseUserAdmin):
    actions = [*(_BaseUserAdmin.actions or []), reset_two_factor]
    list_display = [*_BaseUserAdmin.list_display, "two_factor"]

    def get_queryset(self, request):
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(has_two_factor=Exists(confirmed))

    @admin.display(boolean=True, description="two-factor", ordering="has_two_factor")
    def two_factor(self, obj):
        return obj.has_two_factor


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, RegistryUserAdmin)
