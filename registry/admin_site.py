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


# The menu (index, app index and sidebar) in the order of the work: the case, its implantation and what
# follows it, then the data manager's queries, then the vocabularies. (model class name, menu label or None)
REGISTRY_MENU = [
    ("Patient", None),
    ("Implantation", None),
    ("Treatment", "HAI doses"),
    ("Complication", None),
    ("LiverTest", None),
    ("FollowUp", "Follow-ups"),
    ("PerfusionCheck", None),
    ("SystemicToxicity", None),
    ("Readmission", "Readmissions and reoperations"),
    ("SystemicTherapyLine", None),
    ("DataQuery", None),
    ("SoftWarningConfirmation", None),
    ("ConsentWithdrawal", None),
    ("ComplicationType", None),
    ("PumpModel", "Pump models (catalogue)"),
    ("FudrDoseBand", None),
]
# The clinical record first; the other apps keep Django's alphabetical order after it.
FIRST_APPS = ["registry"]


def _menu_order(app):
    if app["app_label"] != "registry":
        return
    place = {name: i for i, (name, _label) in enumerate(REGISTRY_MENU)}
    labels = dict(REGISTRY_MENU)
    app["models"].sort(key=lambda model: (place.get(model["object_name"], len(place)), model["name"]))
    for model in app["models"]:
        model["name"] = labels.get(model["object_name"]) or model["name"]


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

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        for app in apps:
            self._add_data_dictionary(app)
            _menu_order(app)
        first = {label: i for i, label in enumerate(FIRST_APPS)}
        return sorted(apps, key=lambda app: first.get(app["app_label"], len(first)))  # stable: the rest keep order

    def _add_data_dictionary(self, app):
        """The registry's app lists the data dictionary (issue 13) with its models, on the index too."""
        from django.urls import reverse

        from .admin_data_dictionary import URL_NAME

        if app["app_label"] == "registry":
            app["models"].append(
                {
                    "name": "Data dictionary",
                    "object_name": "DataDictionary",
                    "perms": {"view": True},
                    "admin_url": reverse(f"{self.name}:{URL_NAME}"),
                    "add_url": None,
                    "view_only": True,
                }
            )

    def get_urls(self):
        from django.urls import path

        from .admin_data_dictionary import URL_NAME, data_dictionary_view

        view = self.admin_view(lambda request: data_dictionary_view(request, self))
        return [path("registry/data-dictionary/", view, name=URL_NAME), *super().get_urls()]

    def login(self, request, extra_context=None):
        """The registry's login (sites.authentication): the password, then the code from an authenticator."""
        from sites.authentication import LoginView

        view = LoginView.as_view(admin_site=self, form_class=self.login_form, extra_context=extra_context)
        return view(request)
