from django.conf import settings
from django.db import models


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
