from django.apps import AppConfig


class SitesConfig(AppConfig):
    name = "sites"
    label = "sites"
    verbose_name = "Centres and access"

    def ready(self):
        # Signal receivers: the session clock starts at every login, the test client's included.
        from . import sessions  # noqa: F401
