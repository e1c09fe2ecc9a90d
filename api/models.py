from django.conf import settings
from django.db import models

from sites.models import Role


class ExportLog(models.Model):
    """Who took which rows out of the registry through the API."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_exports")
    endpoint = models.CharField(max_length=200)
    filters = models.JSONField(default=dict, help_text="The query parameters of the request.")
    format = models.CharField(max_length=10)
    row_count = models.PositiveIntegerField(default=0)
    completed = models.BooleanField(
        default=False, help_text="False while a CSV stream is still being sent, or if it broke off."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="exportlog_user_date_idx")]

    def __str__(self):
        return f"{self.user} {self.endpoint} ({self.row_count} rows)"


class TokenRole(models.Model):
    """The one role an API token acts in (``api.authentication.RoleTokenAuthentication``).

    A user with several roles (say investigator and data manager) asks for a token per role; the token
    sees and does only what that role may. A token without a row here is refused.
    """

    token = models.OneToOneField(
        "knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="registry_role"
    )
    role = models.CharField(max_length=20, choices=Role.choices)

    def __str__(self):
        return f"{self.token.user} as {self.get_role_display()}"
