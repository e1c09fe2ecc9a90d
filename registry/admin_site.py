from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

from sites import access


class RegistryAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user):
        if not user.is_active or not access.can_use_admin(user):
            raise forms.ValidationError(
                "This account has no data-entry role. Investigators use the REST API.",
                code="invalid_login",
            )


class RegistryAdminSite(admin.AdminSite):
    site_header = "HAI Registry"
    site_title = "HAI Registry"
    index_title = "Data entry"
    login_form = RegistryAuthenticationForm

    def has_permission(self, request):
        # Roles, not the is_staff flag, decide who uses the admin.
        return access.can_use_admin(request.user)
