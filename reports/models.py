from django.conf import settings
from django.db import models
from django.db.models import Q

from sites.models import Centre
from sites.querysets import CentreScopedQuerySet


class ReportRun(models.Model):
    """One month's benchmark reports for every centre, from one frozen data cut."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Completed with failures"

    period = models.DateField(help_text="First day of the month reported on.")
    data_cut = models.DateTimeField(help_text="Rows entered after this moment are not in the run.")
    method_version = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    snapshot = models.FileField(
        upload_to="reports/snapshots/", blank=True, help_text="The cohort as of the cut (gzipped JSON)."
    )
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="Empty when started by the schedule.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period", "-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(period__day=1), name="report_run_period_is_first_of_month"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=models.F("started_at")),
                name="report_run_finishes_after_start",
            ),
        ]

    def __str__(self):
        return f"{self.period:%Y-%m} (cut {self.data_cut:%Y-%m-%d %H:%M})"

    @property
    def duration_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class CentreReport(models.Model):
    """One centre's report in a run: its files, checksum and delivery state."""

    centre_lookup = "centre"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RENDERED = "rendered", "Rendered"
        FAILED = "failed", "Failed"

    class Delivery(models.TextChoices):
        PENDING = "pending", "Not sent"
        SENT = "sent", "Sent"
        NO_RECIPIENTS = "no_recipients", "No recipients"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ReportRun, on_delete=models.CASCADE, related_name="centre_reports")
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="benchmark_reports")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    delivery_state = models.CharField(max_length=15, choices=Delivery.choices, default=Delivery.PENDING)
    html = models.FileField(upload_to="reports/html/", blank=True)
    pdf = models.FileField(upload_to="reports/pdf/", blank=True)
    checksum = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the PDF.")
    numbers = models.JSONField(null=True, blank=True, help_text="Every figure in the report, as rendered.")
    recipients = models.JSONField(default=list, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    render_seconds = models.FloatField(null=True, blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["run", "centre__code"]
        constraints = [
            models.UniqueConstraint(fields=["run", "centre"], name="centre_report_once_per_run"),
            models.CheckConstraint(
                condition=~Q(delivery_state="sent") | Q(sent_at__isnull=False), name="centre_report_sent_has_time"
            ),
        ]
        indexes = [
            # /api/v1/reports/ for one centre's users, newest first.
            models.Index(fields=["centre", "run"], name="centre_report_centre_idx"),
        ]

    def __str__(self):
        return f"{self.centre.code} – {self.run}"
