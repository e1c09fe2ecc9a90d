"""Model permissions derived from registry roles instead of per-user grants.

Object-level checks (which centre) are the scoped querysets' job; this only
says which kinds of record a role may view, add, change or delete at all.
"""

from django.contrib.auth.backends import ModelBackend

from . import access

# Apps whose records carry a centre and are edited by data managers.
CLINICAL_APP_LABELS = {"registry"}
# Registry-wide reference data: data managers and leads may read, only the coordinator writes.
READABLE_REFERENCE_MODELS = {"sites.centre", "sites.surgeon", "registry.complicationtype", "registry.pumpmodel"}
# Registry-wide catalogues in the clinical app: everyone who uses the API reads, only the coordinator writes.
CATALOGUE_MODELS = {"registry.complicationtype", "registry.pumpmodel"}
# Data managers look after their own centres' surgeons.
CENTRE_EDITABLE_REFERENCE_MODELS = {"sites.surgeon"}


class RoleBackend(ModelBackend):
    def has_perm(self, user_obj, perm, obj=None):
        if not user_obj.is_active:
            return False
        if access.is_coordinator(user_obj):
            return True
        try:
            app_label, codename = perm.split(".", 1)
            action, model_name = codename.split("_", 1)
        except ValueError:
            return False
        qualified = f"{app_label}.{model_name}"
        if qualified in CATALOGUE_MODELS:
            return action == "view" and access.can_use_api(user_obj)
        if app_label in CLINICAL_APP_LABELS or qualified in READABLE_REFERENCE_MODELS:
            if action == "view":
                # Investigators read too, but only through the API (the admin site refuses them).
                return access.can_use_api(user_obj)
            if app_label in CLINICAL_APP_LABELS or qualified in CENTRE_EDITABLE_REFERENCE_MODELS:
                return action in {"add", "change", "delete"} and access.can_write_clinical(user_obj)
        return False

    def has_module_perms(self, user_obj, app_label):
        if not user_obj.is_active:
            return False
        if access.is_coordinator(user_obj):
            return True
        return app_label in (CLINICAL_APP_LABELS | {"sites"}) and access.can_read_clinical(user_obj)

    def get_all_permissions(self, user_obj, obj=None):
        return set()
