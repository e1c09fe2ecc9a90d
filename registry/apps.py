from django.apps import AppConfig


class RegistryConfig(AppConfig):
    default = True
    name = "registry"
    verbose_name = "Clinical record"
