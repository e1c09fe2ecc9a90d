from django.contrib.admin.apps import AdminConfig


class RegistryAdminConfig(AdminConfig):
    """The Django admin, on a site that asks the registry's roles who may log in."""

    default_site = "registry.admin_site.RegistryAdminSite"
