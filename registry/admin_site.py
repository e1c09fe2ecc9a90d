from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

from sites import access, two_factor


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
        # Roles, not the is_staff flag, decide who uses the admin; with REQUIRE_2FA, only once the session
        # has given its second factor (django_otp's OTPMiddleware).
        if not access.can_use_admin(request.user):
            return False
        return two_factor.is_verified(request.user) or not two_factor.required()

    def login(self, request, extra_context=None):
        """The registry's login (sites.authentication): the password, then the code from an authenticator."""
        from sites.authentication import LoginView

        view = LoginView.as_view(admin_site=self, form_class=self.login_form, extra_context=extra_context)
        return view(request)
