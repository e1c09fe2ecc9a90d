from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from .history import audited_history
from .querysets import CentreScopedQuerySet

code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,19}$",
    "Use 2-20 capital letters, digits or hyphens (e.g. 'LYON-01').",
)


class Centre(models.Model):
    centre_lookup = "id"

    code = models.CharField(max_length=20, unique=True, validators=[code_validator])
    name = models.CharField(max_length=200)
    country = models.CharField(
        max_length=2,
        validators=[RegexValidator(r"^[A-Z]{2}$", "Use the two-letter ISO 3166 country code (e.g. 'FR').")],
        help_text="ISO 3166-1 alpha-2 code.",
    )
    active = models.BooleanField(default=True)

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(country__regex=r"^[A-Z]{2}$"), name="centre_country_iso2"),
        ]

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


class Surgeon(models.Model):
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
