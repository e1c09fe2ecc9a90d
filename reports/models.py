from django.conf import settings
from django.db import models
from django.db.models import Q

from sites.history import audited_history
from sites.models import Centre, Surgeon
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
    scheduled = models.BooleanField(
        default=False,
        help_text="Started by the monthly schedule. A period has at most one such run, however often beat fires.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the run's fan-out task was last handed to the broker (reports.tasks.sweep_unfinished_runs).",
    )
    case_mix = models.JSONField(
        null=True,
        blank=True,
        help_text="The case-mix model fitted on the run's snapshot (coefficients, c-statistic, calibration).",
    )

    class Meta:
        ordering = ["-period", "-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(period__day=1), name="report_run_period_is_first_of_month"),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(finished_at__gte=models.F("started_at")),
                name="report_run_finishes_after_start",
            ),
            # A beat delivered twice must not email every centre twice (services.start_scheduled_run).
            models.UniqueConstraint(
                fields=["period"], condition=Q(scheduled=True), name="report_run_one_scheduled_per_period"
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
    email_pdf = models.FileField(
        upload_to="reports/email/",
        blank=True,
        help_text="The emailed copy: the same report without the 'Cases to review' section (no pseudonym).",
    )
    rendered_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a task for this report was last handed to the broker (reports.tasks.sweep_unfinished_runs).",
    )

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


class OutlierReview(models.Model):
    """The outlier process for one alarm or warning of a run (after HQIP / the National Vascular Registry).

    Opened by ``services.open_reviews_for_alarms``; the coordinator may put a query
    to the centre, the centre's data manager or lead answers, the coordinator signs
    off (``services.set_review_query``, ``answer_review``, ``sign_off_review``). Until
    sign-off a surgeon's comparison is shown only to the coordinator and the surgeon's
    own centre (``sites.access.surgeon_comparison_visible``).
    """

    centre_lookup = "centre"

    class Level(models.TextChoices):
        ALARM = "alarm", "Alarm (beyond the 99.8% limit)"
        WARNING = "warning", "Warning (beyond the 95% limit)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ANSWERED = "answered", "Answered by the centre"
        SIGNED_OFF = "signed_off", "Signed off"

    run = models.ForeignKey(ReportRun, on_delete=models.CASCADE, related_name="outlier_reviews")
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="outlier_reviews")
    measure = models.CharField(max_length=60, help_text="The report's measure code, e.g. 'technical_90'.")
    level = models.CharField(max_length=10, choices=Level.choices)
    surgeon = models.ForeignKey(
        Surgeon,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="outlier_reviews",
        help_text="Empty for a centre-level alarm.",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty when opened by the run.",
    )
    query = models.TextField(blank=True, help_text="The coordinator's query to the centre.")
    queried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queried_at = models.DateTimeField(null=True, blank=True)
    answer = models.TextField(blank=True, help_text="The centre's answer.")
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-run__period", "centre__code", "measure", "surgeon__code"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "centre", "measure", "surgeon"], name="outlier_review_once_per_surgeon"
            ),
            # NULLs are distinct in a unique constraint: a centre-level review needs its own.
            models.UniqueConstraint(
                fields=["run", "centre", "measure"],
                condition=Q(surgeon__isnull=True),
                name="outlier_review_once_per_centre",
            ),
            models.CheckConstraint(condition=Q(level__in=["alarm", "warning"]), name="outlier_review_level_vocabulary"),
            models.CheckConstraint(
                condition=Q(status__in=["open", "answered", "signed_off"]), name="outlier_review_status_vocabulary"
            ),
            models.CheckConstraint(
                condition=Q(status="open") | (~Q(answer="") & Q(answered_at__isnull=False)),
                name="outlier_review_answered_has_answer",
            ),
            models.CheckConstraint(
                condition=(Q(status="signed_off") & Q(signed_off_at__isnull=False))
                | (~Q(status="signed_off") & Q(signed_off_at__isnull=True)),
                name="outlier_review_signed_off_iff_time",
            ),
        ]

    def __str__(self):
        who = f" – surgeon {self.surgeon.code}" if self.surgeon_id else ""
        return f"{self.centre.code} – {self.measure}{who} – {self.run}"

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.surgeon_id and self.centre_id and self.surgeon.centre_id != self.centre_id:
            raise ValidationError({"surgeon": f"Surgeon {self.surgeon.code} belongs to another centre."})


class Release(models.Model):
    """A frozen data release (issue 15): what investigators read, never the live rows.

    Anchored on the ACS NSQIP participant use file (released per year, one locked file) and a trial
    group's locked data cut. The rows themselves live in a storage of their own (``reports.releases``:
    one PostgreSQL schema per release), copied once at the freeze and never written again; this row
    says what they are. It is immutable too: ``save`` refuses to change a release once frozen.
    """

    class Source(models.TextChoices):
        LIVE = "live", "The registry as it stood at the freeze"
        HISTORY = "history", "The history tables, as of a past moment"

    name = models.SlugField(max_length=40, unique=True, help_text="How investigators name it: ?release=<name>.")
    cut = models.DateTimeField(help_text="The moment the release shows the registry as of.")
    source = models.CharField(max_length=10, choices=Source.choices)
    method_version = models.CharField(max_length=20, help_text="The statistics' method version at the freeze.")
    checksum = models.CharField(max_length=64, help_text="SHA-256 over the release's rows, table by table.")
    row_counts = models.JSONField(default=dict, help_text='Rows per table, e.g. {"implantations": 1200}.')
    # The key its opaque codes are drawn from (api.deidentify): drawn at the freeze, never shown.
    codes_key = models.CharField(max_length=64, editable=False)
    storage = models.CharField(max_length=63, unique=True, editable=False, help_text="Where its rows are kept.")
    frozen_at = models.DateTimeField()
    frozen_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["-cut", "-frozen_at"]
        constraints = [
            models.CheckConstraint(condition=Q(cut__lte=models.F("frozen_at")), name="release_cut_not_after_freeze"),
            models.CheckConstraint(condition=Q(checksum__regex=r"^[0-9a-f]{64}$"), name="release_checksum_is_sha256"),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError(f"Release {self.name} is frozen: a release is never changed.")
        super().save(*args, **kwargs)
