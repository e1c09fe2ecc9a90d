from django.contrib import admin

from .models import ExportLog


@admin.register(ExportLog)
class ExportLogAdmin(admin.ModelAdmin):
    """Read-only: the coordinator audits exports, nobody edits them."""

    list_display = ["created_at", "user", "endpoint", "format", "row_count", "completed"]
    list_filter = ["format", "completed"]
    search_fields = ["user__username", "endpoint"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
