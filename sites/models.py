import zoneinfo

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .history import audited_history
from .querysets import CentreScopedQuerySet
from .versioning import Versioned

code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,19}$",
    "Use 2-20 capital letters, digits or hyphens (e.g. 'LYON-01').",
)


class BilirubinUnit(models.TextChoices):
    """Total bilirubin: 1 mg/dL = 17.1 µmol/L (registry.units)."""

    MICROMOL_PER_L = "umol/L", "µmol/L"
    MG_PER_DL = "mg/dL", "mg/dL"


def validate_time_zone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone; write it as Region/City, e.g. 'Asia/Tokyo'.")


class Centre(Versioned):
    centre_lookup = "id"

    code = models.CharField(max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    country = models.CharField(
        max_length=2,
        validators=[RegexValidator(r"^[A-Z]{2}$", "Use the two-letter ISO 3166 country code (e.g. 'FR').")],
        help_text="ISO 3166-1 alpha-2 code.",
    )
    active = models.BooleanField(default=True)
    time_zone = models.CharField(
        max_length=64,
        default="Europe/London",
        db_default="Europe/London",
        validators=[validate_time_zone],
        help_text="IANA time zone (e.g. 'Asia/Tokyo'): the centre's 'today' for the no-future-dates rules.",
    )
    bilirubin_unit = models.CharField(
        max_length=10,
        choices=BilirubinUnit.choices,
        default=BilirubinUnit.MICROMOL_PER_L,
        # A database default too, so a row written without the column (an older migration's model) is valid.
        db_default=BilirubinUnit.MICROMOL_PER_L,
        help_text="The unit the centre's laboratory reports bilirubin in: entry and display use it; "
        "the registry stores µmol/L.",
    )

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(country__regex=r"^[A-Z]{2}$"), name="centre_country_iso2"),
            models.CheckConstraint(
                condition=Q(bilirubin_unit__in=BilirubinUnit.values), name="centre_bilirubin_unit_vocabulary"
            ),
        ]

    @property
    def zone(self):
        return zoneinfo.ZoneInfo(self.time_zone)

    def __str__(self):
        return f"{self.code} – {self.name}"


class ReportRecipient(models.Model):
    """Who receives a centre's monthly benchmark report."""

    centre_lookup = "centre"

    centre = models.ForeignKey(Centre, on_delete=models.CASCADE, related_name="report_recipients")
    email = models.EmailField()

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["centre", "email"]
        constraints = [models.UniqueConstraint(fields=["centre", "email"], name="report_recipient_unique")]

    def __str__(self):
        return self.email


class Surgeon(Versioned):
    """A surgeon who implants pumps, known to the registry by code only."""

    centre_lookup = "centre"

    code = models.CharField(max_length=20, unique=True, validators=[code_validator])
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="surgeons")
    prior_pump_count = models.PositiveIntegerField(
        default=0,
        help_text="Pumps this surgeon placed before joining the registry; the learning curve starts here.",
    )
    active = models.BooleanField(default=True)

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(prior_pump_count__lte=5000), name="surgeon_prior_pumps_plausible"),
        ]

    def __str__(self):
        return self.code


class Role(models.TextChoices):
    COORDINATOR = "coordinator", "Registry coordinator"
    INVESTIGATOR = "investigator", "Investigator"
    DATA_MANAGER = "data_manager", "Data manager"
    CENTRE_LEAD = "centre_lead", "Centre lead"


CENTRE_ROLES = (Role.DATA_MANAGER, Role.CENTRE_LEAD)
REGISTRY_ROLES = (Role.COORDINATOR, Role.INVESTIGATOR)


class Membership(models.Model):
    """A user's role: per centre (data manager, centre lead) or registry-wide.

    A user may hold several memberships, e.g. data manager at two centres for
    shared care.
    """

    centre_lookup = "centre"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    centre = models.ForeignKey(
        Centre,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="memberships",
        help_text="Required for data managers and centre leads; empty for registry-wide roles.",
    )

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["user", "role", "centre"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(role__in=CENTRE_ROLES) & Q(centre__isnull=False))
                | (Q(role__in=REGISTRY_ROLES) & Q(centre__isnull=True)),
                name="membership_centre_matches_role",
            ),
            models.UniqueConstraint(fields=["user", "role", "centre"], name="membership_unique_per_centre"),
            models.UniqueConstraint(
                fields=["user", "role"], condition=Q(centre__isnull=True), name="membership_unique_registry_role"
            ),
        ]

    def __str__(self):
        where = self.centre.code if self.centre_id else "registry"
        return f"{self.user} – {self.get_role_display()} ({where})"

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.role in CENTRE_ROLES and not self.centre_id:
            raise ValidationError({"centre": "A data manager or centre lead belongs to a centre."})
        if self.role in REGISTRY_ROLES and self.centre_id:
            raise ValidationError(
                {"centre": "Coordinators and investigators are registry-wide; leave the centre empty."}
            )


class PatientIdsIndex(GinIndex):
    """A GIN index (``jsonb_path_ops``) on a JSON list of ids, for ``ids @> [x]``; a plain index off PostgreSQL.

    The development default is SQLite, which has no GIN: there the migration makes an ordinary index
    (unused, harmless) instead of failing.
    """

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor == "postgresql":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        return models.Index(fields=self.fields, name=self.name).create_sql(model, schema_editor, **kwargs)


class RecordRead(models.Model):
    """One request that read patients' records, in the admin or the API (issue 11). Written by ``sites.reads``.

    Only clinical records count (``sites.reads.PATIENT_PATHS``); the coordinator alone sees this log.
    """

    class Channel(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="record_reads",
        db_index=False,  # recordread_user_time_idx starts with the user
    )
    username = models.CharField(
        max_length=150, blank=True, help_text="The reader's username, kept if the account is deleted."
    )
    role = models.CharField(
        max_length=20,
        choices=Role.choices,
        blank=True,
        help_text="The role the request acted in: an API token's role, or the user's one role; empty if several.",
    )
    read_at = models.DateTimeField(default=timezone.now, help_text="When the request arrived.")
    channel = models.CharField(max_length=5, choices=Channel.choices)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500, help_text="The URL path, without the query string.")
    query_parameters = models.JSONField(
        default=list, blank=True, help_text="The names of the query parameters sent, not their values."
    )
    record_kind = models.CharField(
        max_length=200, help_text="The model label of the records read, e.g. registry.implantation."
    )
    patient_ids = models.JSONField(default=list, help_text="The patients whose records were read: ids, sorted.")
    record_count = models.PositiveIntegerField(help_text="How many records were read.")

    class Meta:
        ordering = ["-read_at", "-id"]
        indexes = [
            # The coordinator's list of who read patient X: patient_ids @> '[X]' (RecordReadAdmin's search).
            PatientIdsIndex(fields=["patient_ids"], opclasses=["jsonb_path_ops"], name="recordread_patients_gin"),
            # A user's reads by time: WHERE user_id = ... ORDER BY read_at DESC (the admin's user filter).
            models.Index(fields=["user", "-read_at"], name="recordread_user_time_idx"),
            # Everyone's reads by time: the admin list (ORDER BY read_at DESC LIMIT ...) and its date filter.
            models.Index(fields=["-read_at"], name="recordread_time_idx"),
        ]

    def __str__(self):
        return f"{self.username or '?'} read {self.record_count} {self.record_kind} ({self.channel})"
