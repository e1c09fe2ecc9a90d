"""The clinical record. The unit of the registry is the pump implantation.

Rules about one row live in ``clean()`` (and, where the database can enforce
them, in ``Meta.constraints``). Rules that read other rows of the same patient
(dates against the implantation or a recorded death) also live in ``clean()``
through the helpers in ``registry.rules``. Derived values (treated, days to
first dose, surgeon sequence) are computed in ``registry.selectors`` and are
never stored or typed in.
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from sites.history import audited_history
from sites.models import Centre, Surgeon
from sites.querysets import CentreScopedQuerySet
from sites.versioning import Versioned

from . import missing_data, refills, rules
from .fields import CodedSetField
from .vocabulary import (
    DOSE_RANGES,
    MODALITY_OF_METHOD,
    Approach,
    Biologic,
    BrafStatus,
    CatheterTipPosition,
    CatheterVessel,
    ClavienDindo,
    ComplicationCategory,
    Device,
    DoseChange,
    DoseUnit,
    Drug,
    ExtrahepaticDiseaseSite,
    ExtrahepaticPerfusionSite,
    GradingSystem,
    HepaticArteryVariant,
    HoldReason,
    Indication,
    Management,
    MsiStatus,
    NeverTreatedReason,
    PerfusionCorrection,
    PerfusionMethod,
    PerfusionModality,
    PerfusionTiming,
    PrimaryTumour,
    PumpEndReason,
    RasStatus,
    ResectionMargin,
    Response,
    Sex,
    SystemicRegimen,
    VariantHandling,
    VitalStatus,
    is_severe,
)

# A report's data cut excludes rows entered after it; the seeder back-dates entry.
ENTERED_HELP = "When the row was entered in the registry."

PSEUDONYM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud safely


def new_pseudonym():
    return "HAI-" + "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(8))


class ComplicationType(Versioned):
    """Controlled vocabulary of complications; the coordinator extends it."""

    code = models.SlugField(
        max_length=40, unique=True, help_text="Stable code used by the API, e.g. 'biliary_sclerosis'."
    )
    name = models.CharField(max_length=120, unique=True)
    grading_system = models.CharField(max_length=20, choices=GradingSystem.choices)
    category = models.CharField(
        max_length=20,
        choices=ComplicationCategory.choices,
        help_text="Technical complications count from implantation over every implantation; toxicities from the "
        "first dose over treated implantations (reports.outcomes).",
    )
    catheter_related = models.BooleanField(
        default=False, help_text="Counts towards catheter-related complications (occlusion, dislodgement, …)."
    )
    active = models.BooleanField(default=True, help_text="Inactive types stay on old records but cannot be chosen.")

    history = audited_history()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=ComplicationCategory.values), name="complication_type_category_vocabulary"
            ),
            # A catheter problem is a technical complication.
            models.CheckConstraint(
                condition=Q(catheter_related=False) | Q(category=ComplicationCategory.TECHNICAL),
                name="complication_type_catheter_is_technical",
            ),
        ]

    def __str__(self):
        return self.name


class Patient(Versioned):
    """A patient, known by registry pseudonym only: no name, birth date or hospital number."""

    centre_lookup = "centre"

    pseudonym = models.CharField(
        max_length=20,
        unique=True,
        blank=True,
        validators=[RegexValidator(r"^[A-Z0-9-]{4,20}$", "Use 4-20 capital letters, digits or hyphens.")],
        help_text="Registry pseudonym; generated when left empty. Never a name or hospital number.",
    )
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="patients")
    birth_year = models.PositiveSmallIntegerField(validators=[MinValueValidator(1900)])
    sex = models.CharField(max_length=10, choices=Sex.choices)
    primary_tumour = models.CharField(max_length=20, choices=PrimaryTumour.choices)
    ras_status = models.CharField(
        max_length=20, choices=RasStatus.choices, default=RasStatus.UNKNOWN, verbose_name="RAS status"
    )
    liver_metastases_count = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(200)], verbose_name="number of liver metastases"
    )
    bilobar_disease = models.BooleanField(null=True, blank=True)
    extrahepatic_disease = models.BooleanField(null=True, blank=True, verbose_name="extrahepatic disease at implant")
    extrahepatic_sites = CodedSetField(
        vocabulary=ExtrahepaticDiseaseSite,
        verbose_name="extrahepatic disease sites",
        help_text="Where the extrahepatic disease at implant is; only with extrahepatic disease.",
    )
    prior_systemic_lines = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(15)])
    ecog = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(4)],
        verbose_name="ECOG performance status",
        help_text="At implant, 0 (fully active) to 4 (completely disabled).",
    )
    cea_ng_per_ml = models.DecimalField(
        max_digits=8,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100000"))],
        verbose_name="CEA at implant (ng/mL)",
    )
    clinical_risk_score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(5)],
        verbose_name="clinical risk score (Fong)",
        help_text="Fong et al., Ann Surg 1999;230:309: one point each for a node-positive primary, a disease-free "
        "interval under 12 months, more than one liver tumour, CEA over 200 ng/mL and a largest tumour over 5 cm.",
    )
    braf_status = models.CharField(
        max_length=20, choices=BrafStatus.choices, default=BrafStatus.UNKNOWN, verbose_name="BRAF status"
    )
    msi_status = models.CharField(
        max_length=20, choices=MsiStatus.choices, default=MsiStatus.UNKNOWN, verbose_name="MSI / MMR status"
    )
    consent_on = models.DateField(null=True, blank=True, verbose_name="consent date")
    liver_metastases_count_missing = missing_data.code_field("number of liver metastases")
    bilobar_disease_missing = missing_data.code_field("bilobar disease")
    extrahepatic_disease_missing = missing_data.code_field("extrahepatic disease at implant")
    ecog_missing = missing_data.code_field("ECOG performance status")
    cea_ng_per_ml_missing = missing_data.code_field("CEA at implant")
    clinical_risk_score_missing = missing_data.code_field("clinical risk score")
    created_at = models.DateTimeField(default=timezone.now, editable=False, help_text=ENTERED_HELP)

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    # The case-mix fields that may be left empty, each with a missing-data code (registry.missing_data).
    MISSING_DATA_FIELDS = (
        "liver_metastases_count",
        "bilobar_disease",
        "extrahepatic_disease",
        "ecog",
        "cea_ng_per_ml",
        "clinical_risk_score",
    )

    class Meta:
        ordering = ["pseudonym"]
        constraints = [
            models.CheckConstraint(
                condition=Q(birth_year__gte=1900, birth_year__lte=2100), name="patient_birth_year_range"
            ),
            models.CheckConstraint(condition=Q(prior_systemic_lines__lte=15), name="patient_prior_lines_range"),
            models.CheckConstraint(condition=Q(liver_metastases_count__lte=200), name="patient_metastases_range"),
            models.CheckConstraint(condition=Q(ecog__lte=4), name="patient_ecog_range"),
            models.CheckConstraint(
                condition=Q(cea_ng_per_ml__gte=0, cea_ng_per_ml__lte=100000), name="patient_cea_range"
            ),
            models.CheckConstraint(condition=Q(clinical_risk_score__lte=5), name="patient_clinical_risk_score_range"),
            models.CheckConstraint(condition=Q(braf_status__in=BrafStatus.values), name="patient_braf_vocabulary"),
            models.CheckConstraint(condition=Q(msi_status__in=MsiStatus.values), name="patient_msi_vocabulary"),
            *missing_data.constraints(
                "patient",
                (
                    "liver_metastases_count",
                    "bilobar_disease",
                    "extrahepatic_disease",
                    "ecog",
                    "cea_ng_per_ml",
                    "clinical_risk_score",
                ),
            ),
        ]
        indexes = [
            # Admin list and API list of a centre's patients.
            models.Index(fields=["centre", "pseudonym"], name="patient_centre_pseudonym_idx"),
        ]

    def __str__(self):
        return self.pseudonym or "(new patient)"

    def save(self, *args, **kwargs):
        if not self.pseudonym:
            self.pseudonym = new_pseudonym()
        super().save(*args, **kwargs)

    def clean(self):
        errors = missing_data.errors(self)
        today = rules.today(rules.patient_centre(self))
        if self.birth_year and self.birth_year > today.year:
            errors["birth_year"] = "The birth year cannot be in the future."
        elif self.birth_year and today.year - self.birth_year > 110:
            errors["birth_year"] = f"A birth year of {self.birth_year} is implausible (over 110 years old)."
        if self.consent_on and self.consent_on > today:
            errors["consent_on"] = "The consent date cannot be in the future."
        if self.consent_on and self.birth_year and self.consent_on.year < self.birth_year:
            errors["consent_on"] = "Consent cannot precede the birth year."
        if self.pk and self.birth_year:
            first = self.implantations.order_by("implanted_on").values_list("implanted_on", flat=True).first()
            if first and first.year < self.birth_year:
                errors["birth_year"] = f"An implantation on {first} precedes this birth year."
        if self.extrahepatic_sites and self.extrahepatic_disease is not True:
            errors["extrahepatic_sites"] = "Sites of extrahepatic disease need extrahepatic disease at implant: yes."
        if errors:
            raise ValidationError(errors)


class PumpModel(Versioned):
    """A pump in the catalogue the coordinator keeps: its reservoir and its nominal flow rate.

    The flow rate is what the pharmacy divides the reservoir by: a constant-flow pump delivers its
    label's rate (each pump's label may differ a little from the model's nominal rate, which is why
    the registry also derives the measured rate from the volumes at each refill, registry.refills).
    A programmable pump has no fixed rate.
    """

    PUMP_KINDS = [
        (Device.CONSTANT_FLOW_PUMP.value, Device.CONSTANT_FLOW_PUMP.label),
        (Device.PROGRAMMABLE_PUMP.value, Device.PROGRAMMABLE_PUMP.label),
    ]

    name = models.CharField(max_length=80, unique=True, help_text='As the pump\'s label gives it, e.g. "Codman 3000".')
    manufacturer = models.CharField(max_length=80)
    kind = models.CharField(max_length=30, choices=PUMP_KINDS, default=Device.CONSTANT_FLOW_PUMP)
    reservoir_volume_ml = models.DecimalField(
        max_digits=5,
        decimal_places=1,
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("100"))],
        verbose_name="reservoir volume (mL)",
    )
    nominal_flow_ml_per_day = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(Decimal("10"))],
        verbose_name="nominal flow rate (mL/day)",
        help_text="Required for a constant-flow pump; empty for a programmable one.",
    )
    active = models.BooleanField(default=True, help_text="Inactive models stay on old records but cannot be chosen.")

    history = audited_history()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=[Device.CONSTANT_FLOW_PUMP, Device.PROGRAMMABLE_PUMP]), name="pump_model_kind"
            ),
            models.CheckConstraint(
                condition=Q(reservoir_volume_ml__gte=1, reservoir_volume_ml__lte=100), name="pump_model_reservoir_range"
            ),
            models.CheckConstraint(
                condition=Q(nominal_flow_ml_per_day__isnull=True)
                | Q(nominal_flow_ml_per_day__gte=Decimal("0.1"), nominal_flow_ml_per_day__lte=10),
                name="pump_model_flow_range",
            ),
            models.CheckConstraint(
                condition=~Q(kind=Device.CONSTANT_FLOW_PUMP) | Q(nominal_flow_ml_per_day__isnull=False),
                name="pump_model_constant_flow_has_rate",
            ),
        ]

    def __str__(self):
        if self.nominal_flow_ml_per_day is not None:
            return f"{self.name} ({self.reservoir_volume_ml:g} mL, {self.nominal_flow_ml_per_day:g} mL/day)"
        return f"{self.name} ({self.reservoir_volume_ml:g} mL, programmable)"

    def clean(self):
        if self.kind == Device.CONSTANT_FLOW_PUMP and self.nominal_flow_ml_per_day is None:
            raise ValidationError({"nominal_flow_ml_per_day": "A constant-flow pump needs its nominal flow rate."})


# Variant hepatic arteries: one field per variant, holding how it was handled (empty: not present).
VARIANT_FIELDS = {variant: f"{variant.value}_hepatic_artery" for variant in HepaticArteryVariant}


def _variant_field(variant):
    return models.CharField(
        max_length=10,
        choices=VariantHandling.choices,
        blank=True,
        verbose_name=str(variant.label).lower(),
        help_text="How it was handled; empty when this variant is not present.",
    )


class ImplantationQuerySet(CentreScopedQuerySet):
    def with_derived(self):
        from .selectors import annotate_derived

        return annotate_derived(self)


DUPLICATE_IMPLANTATION_MESSAGE = (
    "This patient already has an implantation on this date: it is the same implantation entered twice. "
    "Open the existing one instead."
)
REPLACED_TWICE_MESSAGE = "This pump is already replaced by another implantation; a pump is replaced only once."
REPLACES_ITSELF_MESSAGE = "An implantation cannot replace itself."
TRIAL_ARM_WITHOUT_TRIAL_MESSAGE = "A trial arm only goes with a trial: give the trial's registry identifier."
# Trial registry identifiers: ClinicalTrials.gov, EudraCT, EU CT (CTIS) and ISRCTN.
TRIAL_FORMATS = r"^(NCT\d{8}|\d{4}-\d{6}-\d{2}|\d{4}-5\d{5}-\d{2}-\d{2}|ISRCTN\d{8})$"
TRIAL_FORMAT_MESSAGE = (
    "Give the trial's registry identifier: NCT followed by 8 digits (ClinicalTrials.gov, e.g. NCT01234567), "
    "an EudraCT number (e.g. 2015-001234-56), an EU CT number (e.g. 2023-501234-12-00) "
    "or ISRCTN followed by 8 digits (e.g. ISRCTN12345678)."
)


class Implantation(Versioned):
    """The index event: one pump (or port) placed, whether or not it ever delivered a dose."""

    centre_lookup = "patient__centre"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="implantations")
    surgeon = models.ForeignKey(Surgeon, on_delete=models.PROTECT, related_name="implantations")
    implanted_on = models.DateField(verbose_name="implantation date")
    indication = models.CharField(max_length=40, choices=Indication.choices)
    approach = models.CharField(max_length=20, choices=Approach.choices)
    device = models.CharField(max_length=30, choices=Device.choices)
    pump_model = models.ForeignKey(
        PumpModel,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="implantations",
        help_text="From the pump catalogue; empty for an arterial port.",
    )
    catheter_vessel = models.CharField(
        max_length=20, choices=CatheterVessel.choices, default=CatheterVessel.GASTRODUODENAL
    )
    catheter_tip_position = models.CharField(max_length=30, choices=CatheterTipPosition.choices, blank=True)
    accessory_arteries_ligated = models.BooleanField(default=False)
    replaced_left_hepatic_artery = _variant_field(HepaticArteryVariant.REPLACED_LEFT)
    accessory_left_hepatic_artery = _variant_field(HepaticArteryVariant.ACCESSORY_LEFT)
    replaced_right_hepatic_artery = _variant_field(HepaticArteryVariant.REPLACED_RIGHT)
    accessory_right_hepatic_artery = _variant_field(HepaticArteryVariant.ACCESSORY_RIGHT)
    replaced_common_hepatic_artery = _variant_field(HepaticArteryVariant.REPLACED_COMMON)
    gastroduodenal_branches_ligated = models.BooleanField(
        null=True, blank=True, verbose_name="gastroduodenal artery branches ligated"
    )
    right_gastric_artery_ligated = models.BooleanField(null=True, blank=True)
    cholecystectomy = models.BooleanField(null=True, blank=True)
    concurrent_colorectal_resection = models.BooleanField(default=False)
    concurrent_hepatectomy = models.BooleanField(default=False)
    concurrent_ablation = models.BooleanField(default=False)
    operative_minutes = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(10), MaxValueValidator(1440)],
        verbose_name="operative time (min)",
    )
    blood_loss_ml = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(20000)], verbose_name="blood loss (mL)"
    )
    length_of_stay_days = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(365)], verbose_name="length of stay (days)"
    )
    never_treated_reason = models.CharField(
        max_length=30,
        choices=NeverTreatedReason.choices,
        blank=True,
        help_text="Only when the pump never delivered a dose; required when a follow-up records the pump as never used.",
    )
    never_treated_note = models.CharField(
        max_length=200, blank=True, help_text="Free text for the centre; never shown to investigators."
    )
    trial = models.CharField(
        max_length=20,
        blank=True,
        validators=[RegexValidator(TRIAL_FORMATS, TRIAL_FORMAT_MESSAGE)],
        verbose_name="clinical trial",
        help_text="The trial's registry identifier (e.g. NCT01234567, EudraCT 2015-001234-56, ISRCTN12345678); "
        "empty when the patient is not in a trial.",
    )
    trial_arm = models.CharField(
        max_length=40, blank=True, help_text="The trial arm the patient was allocated to; only with a trial."
    )
    replaces = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        verbose_name="replaces pump",
        help_text="The same patient's earlier implantation whose pump this one replaces; empty for a first pump.",
    )
    operative_minutes_missing = missing_data.code_field("operative time")
    blood_loss_ml_missing = missing_data.code_field("blood loss")
    length_of_stay_days_missing = missing_data.code_field("length of stay")
    created_at = models.DateTimeField(default=timezone.now, editable=False, help_text=ENTERED_HELP)

    history = audited_history()
    objects = ImplantationQuerySet.as_manager()

    # What a data manager enters, structured (no free text), in the order the
    # CSV import's columns and the API's fields use.
    ENTRY_FIELDS = (
        "patient",
        "surgeon",
        "implanted_on",
        "indication",
        "approach",
        "device",
        "pump_model",
        "catheter_vessel",
        "catheter_tip_position",
        "accessory_arteries_ligated",
        *VARIANT_FIELDS.values(),
        "gastroduodenal_branches_ligated",
        "right_gastric_artery_ligated",
        "cholecystectomy",
        "concurrent_colorectal_resection",
        "concurrent_hepatectomy",
        "concurrent_ablation",
        "operative_minutes",
        "blood_loss_ml",
        "length_of_stay_days",
        "never_treated_reason",
        "trial",
        "trial_arm",
    )
    MISSING_DATA_FIELDS = ("operative_minutes", "blood_loss_ml", "length_of_stay_days")
    # Text that is not a centre's free-text note: shown to investigators (registry.data_dictionary).
    SHOWN_TEXT_FIELDS = ("trial", "trial_arm")

    class Meta:
        ordering = ["-implanted_on", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(operative_minutes__isnull=True) | Q(operative_minutes__gte=10, operative_minutes__lte=1440),
                name="implantation_operative_minutes_range",
            ),
            models.CheckConstraint(condition=Q(blood_loss_ml__lte=20000), name="implantation_blood_loss_range"),
            models.CheckConstraint(condition=Q(length_of_stay_days__lte=365), name="implantation_stay_range"),
            *missing_data.constraints("implantation", ("operative_minutes", "blood_loss_ml", "length_of_stay_days")),
            models.CheckConstraint(
                condition=Q(never_treated_reason="") | Q(never_treated_reason__in=NeverTreatedReason.values),
                name="implantation_never_treated_reason_vocabulary",
            ),
            models.CheckConstraint(
                condition=Q(indication__in=Indication.values), name="implantation_indication_vocabulary"
            ),
            models.CheckConstraint(condition=Q(approach__in=Approach.values), name="implantation_approach_vocabulary"),
            models.CheckConstraint(condition=Q(device__in=Device.values), name="implantation_device_vocabulary"),
            # The same implantation entered twice would count twice in every statistic. A same-day
            # replacement pump (one that names the pump it replaces) is the one exception.
            models.UniqueConstraint(
                fields=["patient", "implanted_on"],
                condition=Q(replaces__isnull=True),
                name="implantation_one_per_patient_and_date",
                violation_error_message=DUPLICATE_IMPLANTATION_MESSAGE,
            ),
            models.CheckConstraint(
                condition=~Q(trial="") | Q(trial_arm=""),
                name="implantation_trial_arm_needs_trial",
                violation_error_message=TRIAL_ARM_WITHOUT_TRIAL_MESSAGE,
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{field: ""}) | Q(**{f"{field}__in": VariantHandling.values}),
                    name=f"implantation_{field}_handling",
                )
                for field in VARIANT_FIELDS.values()
            ),
            models.CheckConstraint(
                condition=Q(catheter_tip_position="") | Q(catheter_tip_position__in=CatheterTipPosition.values),
                name="implantation_catheter_tip_vocabulary",
            ),
            # Same patient, no cycle and not earlier than the replaced pump span rows: clean() checks them.
            models.CheckConstraint(
                condition=~Q(replaces=F("id")),
                name="implantation_not_replacing_itself",
                violation_error_message=REPLACES_ITSELF_MESSAGE,
            ),
            models.UniqueConstraint(
                fields=["replaces"],
                name="implantation_replaced_once",
                violation_error_message=REPLACED_TWICE_MESSAGE,
            ),
        ]
        indexes = [
            # Surgeon sequence number: count of the surgeon's earlier implantations.
            models.Index(fields=["surgeon", "implanted_on", "id"], name="implantation_surgeon_seq_idx"),
            # Date-range filters and the default ordering.
            models.Index(fields=["implanted_on", "id"], name="implantation_date_idx"),
        ]

    def __str__(self):
        return f"{self.patient} – {self.implanted_on}"

    @property
    def centre(self):
        return self.patient.centre

    @property
    def patient_or_none(self):
        """The patient, also when it is being created in the same form (no id yet)."""
        try:
            return self.patient
        except ObjectDoesNotExist:
            return None

    # Derived values: read from the selector's annotations when the queryset
    # has them (lists), else computed for this one row.
    @property
    def treated(self):
        from .selectors import implantation_derived

        return implantation_derived(self)["treated"]

    @property
    def days_to_first_dose(self):
        from .selectors import implantation_derived

        return implantation_derived(self)["days_to_first_dose"]

    @property
    def surgeon_sequence(self):
        from .selectors import implantation_derived

        return implantation_derived(self)["surgeon_sequence"]

    def clean(self):
        errors = missing_data.errors(self)
        today = rules.today(rules.patient_centre(self.patient_or_none))
        if self.implanted_on and self.implanted_on > today:
            errors["implanted_on"] = "The implantation date cannot be in the future."
        patient = self.patient_or_none
        if patient and self.implanted_on and patient.birth_year and self.implanted_on.year < patient.birth_year:
            errors["implanted_on"] = f"The implantation precedes the patient's birth year ({patient.birth_year})."
        if patient and patient.centre_id and self.surgeon_id and self.surgeon.centre_id != patient.centre_id:
            errors["surgeon"] = (
                f"Surgeon {self.surgeon.code} belongs to another centre than patient {patient.pseudonym}."
            )
        if self.never_treated_note and not self.never_treated_reason:
            errors["never_treated_note"] = "A note only goes with a never-treated reason."
        if self.trial_arm and not self.trial:
            errors["trial_arm"] = TRIAL_ARM_WITHOUT_TRIAL_MESSAGE
        pump_model_error = self.pump_model_error()
        if pump_model_error:
            errors["pump_model"] = pump_model_error
        replaces_error = self.replaces_error()
        if replaces_error:
            errors["replaces"] = replaces_error
        if self.pk and self.implanted_on:
            earliest = rules.earliest_event_after_implant(self)
            if earliest and earliest[0] < self.implanted_on:
                errors["implanted_on"] = (
                    f"A {earliest[1]} on {earliest[0]} precedes this implantation date; correct that record first."
                )
        if self.pk:
            errors.update(
                rules.never_treated_errors(
                    reason=self.never_treated_reason,
                    dose_count=self.treatments.given().count(),
                    pump_never_used=self.follow_ups.filter(pump_never_used=True).exists(),
                )
            )
        death = rules.recorded_death_on(patient) if patient else None
        if death and self.implanted_on and self.implanted_on > death:
            errors.setdefault("implanted_on", f"The patient's death is recorded on {death}.")
        if errors:
            raise ValidationError(errors)

    def pump_model_error(self):
        """Why ``pump_model`` does not fit the device, or None."""
        if not self.pump_model_id:
            return None
        if self.device == Device.ARTERIAL_PORT:
            return "An arterial port has no pump model; leave it empty."
        if not self.pump_model.active:
            # An inactive model stays on the records that have it, but is not chosen for another one.
            stored = None
            if self.pk:
                stored = Implantation.objects.filter(pk=self.pk).values_list("pump_model_id", flat=True).first()
            if stored != self.pump_model_id:
                return (
                    f"{self.pump_model.name} is no longer in the pump catalogue's active models: choose an active one."
                )
        if self.device and self.pump_model.kind != self.device:
            return (
                f"{self.pump_model.name} is listed as “{self.pump_model.get_kind_display()}”, "
                f"but the device is “{self.get_device_display()}”."
            )
        return None

    @property
    def hepatic_artery_variants(self):
        """[(variant, handling)] for each variant present, in the vocabulary's order."""
        return [(variant, getattr(self, field)) for variant, field in VARIANT_FIELDS.items() if getattr(self, field)]

    def replaces_error(self):
        """Why ``replaces`` cannot be this implantation's replaced pump, or None."""
        if not self.replaces_id:
            return None
        if self.pk and self.replaces_id == self.pk:
            return REPLACES_ITSELF_MESSAGE
        try:
            replaced = self.replaces
        except ObjectDoesNotExist:  # the field's own check says so
            return None
        if replaced.patient_id != self.patient_id:
            return "The replaced pump must be an implantation of the same patient."
        if self.implanted_on and replaced.implanted_on > self.implanted_on:
            return (
                f"The replaced pump was implanted on {replaced.implanted_on}, after this implantation: "
                "a replacement is implanted on or after the pump it replaces."
            )
        # Walk the chain of replaced pumps: reaching this implantation again would be a cycle.
        seen, current = {self.replaces_id}, replaced
        while current.replaces_id is not None:
            if self.pk and current.replaces_id == self.pk:
                return "This would make a cycle: the replaced pump (or one it replaces) replaces this implantation."
            if current.replaces_id in seen:  # a cycle further up the chain (should never be stored)
                return "The replaced pump's chain of replacements is a cycle; correct it first."
            seen.add(current.replaces_id)
            current = Implantation.objects.only("id", "replaces_id").get(pk=current.replaces_id)
        return None


class ImplantationChild(Versioned):
    """A record that hangs off one implantation and is dated on or after it."""

    centre_lookup = "implantation__patient__centre"
    date_field = None  # the field that must fall on/after the implantation
    event_label = "record"
    # A follow-up may be dated after a death (the date the death became known).
    may_follow_death = False

    created_at = models.DateTimeField(default=timezone.now, editable=False, help_text=ENTERED_HELP)

    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def parent(self):
        """The implantation, also when it is being created in the same form (no id yet)."""
        try:
            return self.implantation
        except ObjectDoesNotExist:
            return None

    def date_errors(self):
        """Implantation, future and death checks for this record's date."""
        errors = {}
        when = getattr(self, self.date_field)
        implantation = self.parent
        if not when or implantation is None:
            return errors
        if when > rules.today(rules.patient_centre(implantation.patient_or_none)):
            errors[self.date_field] = "This date cannot be in the future."
        elif implantation.implanted_on and when < implantation.implanted_on:
            errors[self.date_field] = f"This date precedes the implantation ({implantation.implanted_on})."
        death = None if self.may_follow_death else rules.recorded_death_on(implantation.patient_or_none, exclude=self)
        if death and when > death and self.date_field not in errors:
            errors[self.date_field] = f"This date is after the patient's recorded death ({death})."
        return errors

    def clean(self):
        errors = self.date_errors()
        if errors:
            raise ValidationError(errors)


class PerfusionCheck(ImplantationChild):
    date_field = "checked_on"
    event_label = "perfusion check"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="perfusion_checks")
    checked_on = models.DateField()
    timing = models.CharField(max_length=20, choices=PerfusionTiming.choices)
    method = models.CharField(max_length=20, choices=PerfusionMethod.choices)
    modality = models.CharField(
        max_length=20,
        choices=PerfusionModality.choices,
        blank=True,
        help_text="Taken from the method when left empty.",
    )
    extrahepatic_perfusion = models.BooleanField(verbose_name="extrahepatic perfusion found")
    extrahepatic_sites = CodedSetField(
        vocabulary=ExtrahepaticPerfusionSite,
        verbose_name="extrahepatic perfusion sites",
        help_text="Where the extrahepatic perfusion was seen; only with extrahepatic perfusion found.",
    )
    incomplete_hepatic_perfusion = models.BooleanField(
        null=True, blank=True, help_text="Part of the liver not perfused (e.g. an unligated replaced artery)."
    )
    correction = models.CharField(
        max_length=30,
        choices=PerfusionCorrection.choices,
        blank=True,
        help_text="What was done about a misperfusion.",
    )
    repeat_check_normal = models.BooleanField(
        null=True, blank=True, help_text="After a correction: whether the repeat check was normal."
    )

    history = audited_history()

    class Meta:
        ordering = ["checked_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(modality="") | Q(modality__in=PerfusionModality.values),
                name="perfusion_check_modality_vocabulary",
            ),
            models.CheckConstraint(
                condition=Q(correction="") | Q(correction__in=PerfusionCorrection.values),
                name="perfusion_check_correction_vocabulary",
            ),
            models.CheckConstraint(
                condition=Q(repeat_check_normal__isnull=True)
                | (~Q(correction="") & ~Q(correction=PerfusionCorrection.NONE)),
                name="perfusion_check_repeat_after_correction",
            ),
        ]

    def __str__(self):
        return f"{self.get_method_display()} on {self.checked_on}"

    def save(self, *args, **kwargs):
        if not self.modality and self.method:
            self.modality = MODALITY_OF_METHOD.get(self.method, PerfusionModality.OTHER)
        super().save(*args, **kwargs)

    def clean(self):
        errors = self.date_errors()
        if self.method and self.modality:
            expected = MODALITY_OF_METHOD.get(self.method)
            if expected != PerfusionModality.OTHER and self.modality != expected:
                errors["modality"] = (
                    f"A {self.get_method_display().lower()} check is {expected.label.lower()}, "
                    f"not {self.get_modality_display().lower()}."
                )
        if self.extrahepatic_sites and not self.extrahepatic_perfusion:
            errors["extrahepatic_sites"] = "Sites only go with extrahepatic perfusion found."
        if self.repeat_check_normal is not None and self.correction in ("", PerfusionCorrection.NONE):
            errors["repeat_check_normal"] = "A repeat check follows a correction; record the correction made."
        if errors:
            raise ValidationError(errors)


class TreatmentQuerySet(CentreScopedQuerySet):
    def given(self):
        """Cycles that delivered drug; a held cycle is recorded but is not a dose."""
        return self.exclude(dose_change=DoseChange.HELD)


def _dose_range_condition():
    pairs = Q()
    for (drug, unit), (low, high) in DOSE_RANGES.items():
        pairs |= Q(drug=drug, dose_unit=unit, dose__gte=Decimal(str(low)), dose__lte=Decimal(str(high)))
    return pairs


class Treatment(ImplantationChild):
    """One HAI cycle or pump refill."""

    date_field = "given_on"
    event_label = "HAI dose"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="treatments")
    given_on = models.DateField(verbose_name="date given")
    drug = models.CharField(max_length=20, choices=Drug.choices)
    dose = models.DecimalField(max_digits=10, decimal_places=3, validators=[MinValueValidator(Decimal("0.001"))])
    dose_unit = models.CharField(max_length=10, choices=DoseUnit.choices)
    dose_change = models.CharField(max_length=10, choices=DoseChange.choices, default=DoseChange.FULL)
    hold_reason = models.CharField(
        max_length=30,
        choices=HoldReason.choices,
        blank=True,
        verbose_name="reason for reduction or hold",
        help_text="Required when the dose was reduced or held.",
    )
    dose_change_reason = models.CharField(
        max_length=200,
        blank=True,
        verbose_name="note on the reduction or hold",
        help_text="Free text for the centre; never shown to investigators.",
    )
    body_weight_kg = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("20")), MaxValueValidator(Decimal("300"))],
        verbose_name="body weight (kg)",
    )
    returned_volume_ml = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        verbose_name="volume returned (mL)",
        help_text="Emptied from the reservoir before this fill.",
    )
    filled_volume_ml = models.DecimalField(
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        verbose_name="volume filled (mL)",
    )
    drug_concentration_mg_per_ml = models.DecimalField(
        max_digits=7,
        decimal_places=3,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("1000"))],
        verbose_name="drug concentration (mg/mL)",
    )
    dexamethasone_mg = models.DecimalField(
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("200"))],
        verbose_name="dexamethasone in the pump (mg)",
    )
    heparin_units = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(100000)], verbose_name="heparin in the pump (units)"
    )
    liver_test = models.ForeignKey(
        "LiverTest",
        # RESTRICT, not PROTECT: deleting the whole implantation (or patient) still removes both.
        on_delete=models.RESTRICT,
        null=True,
        blank=True,
        related_name="refills",
        verbose_name="liver tests at this refill",
        help_text="The same implantation's liver tests drawn for this refill (up to 7 days before it).",
    )

    history = audited_history()
    objects = TreatmentQuerySet.as_manager()

    class Meta:
        ordering = ["given_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=_dose_range_condition(), name="treatment_dose_plausible_for_drug_and_unit"
            ),
            models.CheckConstraint(
                # Rows from before the coded reason (issue 14) carry the free text only.
                condition=Q(dose_change="full") | ~Q(dose_change_reason="") | ~Q(hold_reason=""),
                name="treatment_change_has_reason",
            ),
            models.CheckConstraint(
                condition=Q(hold_reason="") | (Q(hold_reason__in=HoldReason.values) & ~Q(dose_change="full")),
                name="treatment_hold_reason_with_change",
            ),
            models.CheckConstraint(
                condition=Q(body_weight_kg__gte=20, body_weight_kg__lte=300), name="treatment_weight_range"
            ),
            models.CheckConstraint(
                condition=Q(returned_volume_ml__gte=0, returned_volume_ml__lte=100),
                name="treatment_returned_volume_range",
            ),
            models.CheckConstraint(
                condition=Q(filled_volume_ml__gte=0, filled_volume_ml__lte=100), name="treatment_filled_volume_range"
            ),
            models.CheckConstraint(
                condition=Q(drug_concentration_mg_per_ml__gt=0), name="treatment_concentration_positive"
            ),
            models.CheckConstraint(
                condition=Q(dexamethasone_mg__gte=0, dexamethasone_mg__lte=200), name="treatment_dexamethasone_range"
            ),
            models.CheckConstraint(condition=Q(heparin_units__lte=100000), name="treatment_heparin_range"),
        ]
        indexes = [
            # Treated flag and first dose per implantation.
            models.Index(fields=["implantation", "given_on"], name="treatment_first_dose_idx"),
        ]

    def __str__(self):
        return f"{self.get_drug_display()} {self.dose} {self.dose_unit} on {self.given_on}"

    def clean(self):
        errors = self.date_errors()
        if self.drug and self.dose_unit and self.dose is not None:
            limits = DOSE_RANGES.get((self.drug, self.dose_unit))
            if limits is None:
                allowed = ", ".join(unit for (drug, unit) in DOSE_RANGES if drug == self.drug)
                errors["dose_unit"] = f"{self.get_drug_display()} is dosed in {allowed}."
            elif not (Decimal(str(limits[0])) <= self.dose <= Decimal(str(limits[1]))):
                errors["dose"] = (
                    f"{self.dose} {self.dose_unit} is outside the plausible range for "
                    f"{self.get_drug_display()} ({limits[0]}–{limits[1]} {self.dose_unit})."
                )
        if self.dose_change != DoseChange.FULL and not self.hold_reason:
            errors["hold_reason"] = "Say why the dose was reduced or held."
        if self.dose_change == DoseChange.FULL and self.hold_reason:
            errors["hold_reason"] = "A reason only goes with a reduced or held dose."
        errors.update(refills.errors(self))
        if self.parent is not None and self.dose_change != DoseChange.HELD and self.parent.never_treated_reason:
            errors.setdefault(
                "given_on",
                "This implantation is recorded as never treated; clear its never-treated reason before adding a dose.",
            )
        if errors:
            raise ValidationError(errors)


class Complication(ImplantationChild):
    date_field = "onset_on"
    event_label = "complication"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="complications")
    type = models.ForeignKey(ComplicationType, on_delete=models.PROTECT, related_name="complications")
    onset_on = models.DateField(verbose_name="onset date")
    grade = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)], help_text="Severity 1–5 (CTCAE grade)."
    )
    clavien_dindo = models.CharField(
        max_length=4,
        choices=ClavienDindo.choices,
        blank=True,
        verbose_name="Clavien-Dindo grade",
        help_text="For surgical events graded by Clavien-Dindo.",
    )
    management = models.CharField(max_length=20, choices=Management.choices, default=Management.NONE)
    pump_lost = models.BooleanField(default=False, help_text="Pump lost (not salvaged) because of this complication.")
    # Not ticked by default: whether the pump caused it is the data manager's judgement, never a default.
    related_to_pump = models.BooleanField(default=False)

    history = audited_history()

    class Meta:
        ordering = ["onset_on", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1, grade__lte=5), name="complication_grade_1_to_5"),
            models.CheckConstraint(
                condition=Q(clavien_dindo="") | Q(clavien_dindo__in=ClavienDindo.values),
                name="complication_clavien_dindo_vocabulary",
            ),
        ]
        indexes = [
            # Complication rates by type.
            models.Index(fields=["type", "implantation"], name="complication_type_idx"),
        ]

    def __str__(self):
        return f"{self.type} (grade {self.grade}) on {self.onset_on}"

    @property
    def severe(self):
        return is_severe(self.grade, self.clavien_dindo)

    def clean(self):
        errors = self.date_errors()
        if self.clavien_dindo and self.type_id and self.type.grading_system != GradingSystem.CLAVIEN_DINDO:
            errors["clavien_dindo"] = f"{self.type} is graded by CTCAE, not Clavien-Dindo."
        if self.clavien_dindo == ClavienDindo.V and self.grade != 5:
            errors["grade"] = "Clavien-Dindo V is a death: the grade must be 5."
        if self.grade == 5 and self.clavien_dindo and self.clavien_dindo != ClavienDindo.V:
            errors["clavien_dindo"] = "Grade 5 is a death: Clavien-Dindo must be V."
        if self.type_id and not self.type.active and self._state.adding:
            errors["type"] = f"'{self.type}' is no longer in use; choose another type."
        if errors:
            raise ValidationError(errors)


class LiverTest(ImplantationChild):
    date_field = "measured_on"
    event_label = "liver test"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="liver_tests")
    measured_on = models.DateField()
    is_baseline = models.BooleanField(
        default=False, help_text="Baseline tests are taken up to 90 days before the implantation."
    )
    ast_u_per_l = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(10000)], verbose_name="AST (U/L)"
    )
    alt_u_per_l = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(10000)], verbose_name="ALT (U/L)"
    )
    alp_u_per_l = models.PositiveIntegerField(
        null=True, blank=True, validators=[MaxValueValidator(10000)], verbose_name="ALP (U/L)"
    )
    bilirubin_umol_per_l = models.DecimalField(
        max_digits=6,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1000"))],
        verbose_name="total bilirubin (µmol/L)",
    )
    ast_u_per_l_missing = missing_data.code_field("AST")
    alt_u_per_l_missing = missing_data.code_field("ALT")
    alp_u_per_l_missing = missing_data.code_field("ALP")
    bilirubin_umol_per_l_missing = missing_data.code_field("total bilirubin")
    # The laboratory's upper limits of normal, when given: a result read as a multiple of its own ULN
    # (CTCAE grades liver tests as × ULN) does not depend on the laboratory's reference range.
    ast_upper_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)], verbose_name="AST ULN (U/L)"
    )
    alt_upper_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(1000)], verbose_name="ALT ULN (U/L)"
    )
    alp_upper_limit = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(2000)], verbose_name="ALP ULN (U/L)"
    )
    bilirubin_upper_limit_umol_per_l = models.DecimalField(
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("100"))],
        verbose_name="bilirubin ULN (µmol/L)",
    )

    history = audited_history()

    # A panel may lack one test (not done, say); it still needs at least one value.
    MISSING_DATA_FIELDS = ("ast_u_per_l", "alt_u_per_l", "alp_u_per_l", "bilirubin_umol_per_l")
    UPPER_LIMIT_FIELDS = ("ast_upper_limit", "alt_upper_limit", "alp_upper_limit", "bilirubin_upper_limit_umol_per_l")

    class Meta:
        ordering = ["measured_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ast_u_per_l__isnull=False)
                | Q(alt_u_per_l__isnull=False)
                | Q(alp_u_per_l__isnull=False)
                | Q(bilirubin_umol_per_l__isnull=False),
                name="liver_test_has_a_value",
            ),
            models.CheckConstraint(condition=Q(ast_u_per_l__lte=10000), name="liver_test_ast_range"),
            models.CheckConstraint(condition=Q(alt_u_per_l__lte=10000), name="liver_test_alt_range"),
            models.CheckConstraint(condition=Q(alp_u_per_l__lte=10000), name="liver_test_alp_range"),
            models.CheckConstraint(
                condition=Q(bilirubin_umol_per_l__gte=0, bilirubin_umol_per_l__lte=1000),
                name="liver_test_bilirubin_range",
            ),
            *missing_data.constraints(
                "liver_test", ("ast_u_per_l", "alt_u_per_l", "alp_u_per_l", "bilirubin_umol_per_l")
            ),
        ]

    def __str__(self):
        return f"Liver tests on {self.measured_on}"

    def clean(self):
        errors = missing_data.errors(self)
        implanted_on = self.parent.implanted_on if self.parent is not None else None
        if self.is_baseline and self.measured_on and implanted_on:
            if self.measured_on > implanted_on:
                errors["measured_on"] = f"Baseline tests are taken on or before the implantation ({implanted_on})."
            elif (implanted_on - self.measured_on).days > 90:
                errors["measured_on"] = "Baseline tests are taken within 90 days before the implantation."
        else:
            errors.update(self.date_errors())
        if all(getattr(self, name) is None for name in self.MISSING_DATA_FIELDS):
            errors["__all__"] = "Enter at least one of AST, ALT, ALP or bilirubin."
        if errors:
            raise ValidationError(errors)


class SystemicTherapyLine(Versioned):
    """A line of systemic chemotherapy; earlier lines are baseline data and may precede the implantation."""

    centre_lookup = "patient__centre"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="systemic_lines")
    line_number = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(15)])
    regimen = models.CharField(max_length=20, choices=SystemicRegimen.choices)
    biologic = models.CharField(max_length=20, choices=Biologic.choices, default=Biologic.NONE)
    started_on = models.DateField()
    ended_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, help_text=ENTERED_HELP)

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["patient", "line_number"]
        constraints = [
            models.UniqueConstraint(fields=["patient", "line_number"], name="systemic_line_unique_number"),
            models.CheckConstraint(
                condition=Q(line_number__gte=1, line_number__lte=15), name="systemic_line_number_range"
            ),
            models.CheckConstraint(
                condition=Q(ended_on__isnull=True) | Q(ended_on__gte=F("started_on")),
                name="systemic_line_end_after_start",
            ),
        ]

    def __str__(self):
        return f"Line {self.line_number}: {self.get_regimen_display()}"

    def clean(self):
        errors = {}
        today = rules.today(rules.patient_centre(getattr(self, "patient", None)))
        if self.started_on and self.started_on > today:
            errors["started_on"] = "The start date cannot be in the future."
        if self.ended_on and self.ended_on > today:
            errors["ended_on"] = "The end date cannot be in the future."
        if self.started_on and self.ended_on and self.ended_on < self.started_on:
            errors["ended_on"] = "A line cannot end before it starts."
        try:
            patient = self.patient
        except ObjectDoesNotExist:
            patient = None
        if patient is not None and self.started_on:
            if patient.birth_year and self.started_on.year < patient.birth_year:
                errors["started_on"] = "This date precedes the patient's birth year."
            death = rules.recorded_death_on(patient)
            if death and self.started_on > death:
                errors["started_on"] = f"This date is after the patient's recorded death ({death})."
        if errors:
            raise ValidationError(errors)


class FollowUp(ImplantationChild):
    """A follow-up contact: disease status, resection, pump status and vital status as of ``contact_on``."""

    date_field = "contact_on"
    event_label = "follow-up"
    may_follow_death = True

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="follow_ups")
    contact_on = models.DateField(verbose_name="date of contact", help_text="Last date the patient's status was known.")
    vital_status = models.CharField(max_length=10, choices=VitalStatus.choices)
    died_on = models.DateField(null=True, blank=True, verbose_name="date of death")
    response = models.CharField(
        max_length=2, choices=Response.choices, blank=True, verbose_name="best response (RECIST)"
    )
    resected = models.BooleanField(default=False, verbose_name="converted to resection")
    resection_on = models.DateField(null=True, blank=True)
    resection_margin = models.CharField(max_length=2, choices=ResectionMargin.choices, blank=True)
    hepatic_progression_on = models.DateField(null=True, blank=True)
    progression_on = models.DateField(null=True, blank=True, verbose_name="any progression date")
    pump_ended_on = models.DateField(null=True, blank=True, verbose_name="pump explant or end of use")
    pump_end_reason = models.CharField(max_length=30, choices=PumpEndReason.choices, blank=True)
    pump_explanted = models.BooleanField(default=False)
    pump_never_used = models.BooleanField(
        default=False, help_text="The pump never delivered a dose; the implantation then needs a never-treated reason."
    )
    response_missing = missing_data.code_field("best response")
    resection_margin_missing = missing_data.code_field("resection margin")
    hepatic_progression_on_missing = missing_data.code_field("hepatic progression")
    progression_on_missing = missing_data.code_field("any progression")

    history = audited_history()

    # The outcome fields that may be left empty. A progression date left empty with no code reads as no
    # progression known at this contact; "unknown" says progression was not assessed.
    MISSING_DATA_FIELDS = ("response", "resection_margin", "hepatic_progression_on", "progression_on")
    # The records a field is asked of, where not every record (completeness counts only these).
    MISSING_DATA_APPLIES = {"resection_margin": Q(resected=True)}

    EVENT_DATE_FIELDS = ("resection_on", "hepatic_progression_on", "progression_on", "pump_ended_on")

    class Meta:
        ordering = ["contact_on", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(vital_status="dead") & Q(died_on__isnull=False))
                | (Q(vital_status="alive") & Q(died_on__isnull=True)),
                name="follow_up_death_date_iff_dead",
            ),
            models.CheckConstraint(
                condition=Q(died_on__isnull=True) | Q(died_on__lte=F("contact_on")),
                name="follow_up_death_not_after_contact",
            ),
            models.CheckConstraint(
                condition=(Q(resected=True) & Q(resection_on__isnull=False))
                | (Q(resected=False) & Q(resection_on__isnull=True) & Q(resection_margin="")),
                name="follow_up_resection_fields_together",
            ),
            models.CheckConstraint(
                condition=(Q(pump_ended_on__isnull=True) & Q(pump_end_reason="")) | Q(pump_ended_on__isnull=False),
                name="follow_up_end_reason_needs_date",
            ),
            models.CheckConstraint(
                condition=Q(pump_end_reason="") | Q(pump_end_reason__in=PumpEndReason.values),
                name="follow_up_pump_end_reason_vocabulary",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{name}__isnull": True}) | Q(**{f"{name}__lte": F("contact_on")}),
                    name=f"follow_up_{name}_not_after_contact",
                )
                for name in ("resection_on", "hepatic_progression_on", "progression_on", "pump_ended_on")
            ],
            *[
                models.CheckConstraint(
                    condition=Q(died_on__isnull=True)
                    | Q(**{f"{name}__isnull": True})
                    | Q(**{f"{name}__lte": F("died_on")}),
                    name=f"follow_up_{name}_not_after_death",
                )
                for name in ("resection_on", "hepatic_progression_on", "progression_on", "pump_ended_on")
            ],
            *missing_data.constraints(
                "follow_up",
                ("response", "resection_margin", "hepatic_progression_on", "progression_on"),
                text_fields=("response", "resection_margin"),
            ),
        ]
        indexes = [
            # Last contact and death per implantation (survival).
            models.Index(fields=["implantation", "contact_on"], name="follow_up_contact_idx"),
        ]

    def __str__(self):
        return f"Follow-up on {self.contact_on}"

    def clean(self):
        errors = {**missing_data.errors(self), **self.date_errors()}
        implantation = self.parent
        implanted_on = implantation.implanted_on if implantation is not None else None
        if self.vital_status == VitalStatus.DEAD and not self.died_on:
            errors["died_on"] = "Give the date of death."
        if self.vital_status == VitalStatus.ALIVE and self.died_on:
            errors["died_on"] = "A date of death needs the vital status 'dead'."
        if self.died_on and self.contact_on and self.died_on > self.contact_on:
            errors["died_on"] = "The date of death cannot be after the date of this contact."
        if self.resected and not self.resection_on:
            errors["resection_on"] = "Give the date of the resection."
        if not self.resected and (self.resection_on or self.resection_margin):
            errors["resected"] = "Tick 'converted to resection' to record a resection date or margin."
        if self.pump_end_reason and not self.pump_ended_on:
            errors["pump_ended_on"] = "Give the date the pump was explanted or stopped being used."
        if self.pump_explanted and not self.pump_ended_on:
            errors["pump_ended_on"] = "Give the explant date."
        for name in self.EVENT_DATE_FIELDS:
            when = getattr(self, name)
            if not when or name in errors:
                continue
            if implanted_on and when < implanted_on:
                errors[name] = f"This date precedes the implantation ({implanted_on})."
            elif self.contact_on and when > self.contact_on:
                errors[name] = "This date is after the date of this contact."
            elif self.died_on and when > self.died_on:
                errors[name] = "This date is after the date of death."
        patient = implantation.patient_or_none if implantation is not None else None
        if self.died_on and patient is not None and patient.pk and "died_on" not in errors:
            latest = rules.latest_event_for_patient(patient, exclude=self)
            if latest and latest[0] > self.died_on:
                errors["died_on"] = f"A {latest[1]} on {latest[0]} is recorded after this date of death."
            elif implanted_on and self.died_on < implanted_on:
                errors["died_on"] = f"The date of death precedes the implantation ({implanted_on})."
        if implantation is not None and self.pump_never_used:
            for _field, message in rules.never_treated_errors(
                reason=implantation.never_treated_reason,
                dose_count=implantation.treatments.given().count() if implantation.pk else 0,
                pump_never_used=True,
            ).items():
                errors.setdefault("pump_never_used", message)
        if errors:
            raise ValidationError(errors)


class ConsentWithdrawal(models.Model):
    """A tombstone: the patient withdrew consent and their records were erased (issue 11).

    Written by ``registry.services.withdraw_consent``, never changed or deleted. It says
    which registry record went (the former id and the registry pseudonym, which is not an
    identifier of the person), who recorded the withdrawal, when and why, and how many
    rows of each kind were erased. Nothing clinical: no date of birth, tumour, dates of
    care or values, so its own history holds nothing clinical either.
    """

    centre_lookup = "centre"

    former_patient_id = models.PositiveBigIntegerField(
        help_text="The erased patient's registry id (not a link: the row is gone)."
    )
    pseudonym = models.CharField(max_length=20, help_text="The erased patient's registry pseudonym.")
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="consent_withdrawals")
    withdrawn_on = models.DateField(verbose_name="consent withdrawn on")
    reason = models.TextField(
        help_text="Why, as recorded by the coordinator, e.g. 'patient's written request to the centre, "
        "ref. letter of 3 March'. No names, hospital numbers or clinical details."
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", editable=False
    )
    recorded_by_name = models.CharField(
        max_length=150, editable=False, help_text="The recorder's username, kept if the account is deleted."
    )
    recorded_at = models.DateTimeField(default=timezone.now, editable=False)
    erased_counts = models.JSONField(
        default=dict,
        editable=False,
        help_text='Rows erased per kind, e.g. {"implantations": 2, "treatments": 14, "history_rows": 40}.',
    )

    history = audited_history()
    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-recorded_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["former_patient_id"], name="consent_withdrawal_once_per_patient"),
            models.CheckConstraint(condition=~Q(reason=""), name="consent_withdrawal_has_reason"),
        ]

    def __str__(self):
        return f"{self.pseudonym}: consent withdrawn on {self.withdrawn_on}"


# --- Data quality (issue 12): queries on records, and the MSKCC FUDR dose-modification table -------------


class DataQueryStatus(models.TextChoices):
    """A query's step in the data resolution workflow (REDCap's data resolution workflow, OpenClinica's notes)."""

    OPEN = "open", "Open: awaiting the centre's answer"
    ANSWERED = "answered", "Answered: awaiting the coordinator"
    CLOSED = "closed", "Closed"


# The rule code of a query raised by hand by the coordinator (registry.data_quality names the others).
MANUAL_RULE = "manual"

# The records a query may be about: every kind of clinical record (model label, lower case as Django's).
DATA_QUERY_RECORD_MODELS = (
    "registry.patient",
    "registry.implantation",
    "registry.treatment",
    "registry.complication",
    "registry.livertest",
    "registry.followup",
    "registry.perfusioncheck",
    "registry.systemictherapyline",
    "registry.systemictoxicity",
    "registry.readmission",
)


class DataQueryQuerySet(CentreScopedQuerySet):
    def unresolved(self):
        """Open or answered: not yet closed (what the report counts and the unique constraint covers)."""
        return self.exclude(status=DataQueryStatus.CLOSED)


class DataQuery(Versioned):
    """A question about one record (or one field of it), raised by a rule or by the coordinator.

    The workflow (``registry.data_quality_services``): raised (open) -> answered by the centre's data
    manager (or the coordinator), who may also correct the record -> closed by the coordinator, or
    re-opened. A rule closes its own query when it no longer finds the problem (``closed_automatically``).
    Who and when of each step are fields here and rows of the history.
    """

    centre_lookup = "patient__centre"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="data_queries")
    implantation = models.ForeignKey(
        Implantation,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="data_queries",
        help_text="Empty for a query about the patient or a systemic therapy line.",
    )
    record_model = models.CharField(
        max_length=40,
        choices=[(label, label) for label in DATA_QUERY_RECORD_MODELS],
        help_text="The kind of record the query is about, as a model label (e.g. registry.treatment).",
    )
    record_id = models.PositiveBigIntegerField(help_text="The id of that record.")
    field_name = models.CharField(
        max_length=60, blank=True, help_text="The field the query is about; empty for the record as a whole."
    )
    rule = models.CharField(
        max_length=60,
        default=MANUAL_RULE,
        help_text=f"The rule's stable code (registry.data_quality), or '{MANUAL_RULE}' for a query raised by hand.",
    )
    message = models.TextField(help_text="The question. No patient identifiers (the registry pseudonym is fine).")
    status = models.CharField(max_length=10, choices=DataQueryStatus.choices, default=DataQueryStatus.OPEN)
    raised_on = models.DateTimeField(default=timezone.now, help_text="When the query was raised.")
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The coordinator who raised it by hand; empty for a rule's query.",
    )
    answer = models.TextField(blank=True, help_text="The centre's answer: what was corrected, or why the value stands.")
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_automatically = models.BooleanField(
        default=False, help_text="Closed by its rule, which no longer finds the problem (the data was corrected)."
    )
    close_note = models.TextField(blank=True, help_text="Why it was closed (the rule writes its own note).")

    history = audited_history()
    objects = DataQueryQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_on", "-id"]
        verbose_name = "data query"
        verbose_name_plural = "data queries"
        constraints = [
            # One rule raises at most one unresolved query per record: re-running a rule finds it and raises
            # no duplicate (registry.data_quality_services.run_checks). Its index also serves the run's read
            # of a rule's unresolved queries. Hand-raised queries may be several on one record.
            models.UniqueConstraint(
                fields=["rule", "record_model", "record_id"],
                condition=~Q(status="closed") & ~Q(rule=MANUAL_RULE),
                name="data_query_one_unresolved_per_rule_and_record",
            ),
            models.CheckConstraint(condition=Q(status__in=DataQueryStatus.values), name="data_query_status_vocabulary"),
            models.CheckConstraint(
                condition=Q(record_model__in=DATA_QUERY_RECORD_MODELS), name="data_query_record_model_vocabulary"
            ),
            models.CheckConstraint(condition=~Q(rule=""), name="data_query_has_rule"),
            models.CheckConstraint(condition=~Q(message=""), name="data_query_has_message"),
            # An answer and its time go together; an answered query has both.
            models.CheckConstraint(
                condition=(Q(answer="") & Q(answered_at__isnull=True)) | (~Q(answer="") & Q(answered_at__isnull=False)),
                name="data_query_answer_with_time",
            ),
            models.CheckConstraint(
                condition=~Q(status="answered") | ~Q(answer=""), name="data_query_answered_has_answer"
            ),
            # Closed, and only closed, has a closing time; who closed it is kept unless the rule did.
            models.CheckConstraint(
                condition=(Q(status="closed") & Q(closed_at__isnull=False))
                | (~Q(status="closed") & Q(closed_at__isnull=True) & Q(closed_by__isnull=True)),
                name="data_query_closed_iff_closing_time",
            ),
            models.CheckConstraint(
                condition=Q(closed_automatically=False) | (Q(status="closed") & Q(closed_by__isnull=True)),
                name="data_query_automatic_close_by_no_one",
            ),
            # A rule's query is raised by no one; only a hand-raised query names its author.
            models.CheckConstraint(
                condition=Q(rule=MANUAL_RULE) | Q(raised_by__isnull=True), name="data_query_rule_raised_by_no_one"
            ),
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True) | Q(answered_at__gte=F("raised_on")),
                name="data_query_answered_after_raised",
            ),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(closed_at__gte=F("raised_on")),
                name="data_query_closed_after_raised",
            ),
        ]
        indexes = [
            # A centre's queries by status: the admin list and API list filtered by centre and status, and the
            # report's open-query counts (patient__centre = X AND status <> 'closed').
            models.Index(fields=["patient", "status"], name="data_query_patient_status_idx"),
            # The queries about one record: the links on a record's admin page, and a rule's automatic close.
            models.Index(fields=["record_model", "record_id"], name="data_query_record_idx"),
            # Every centre's queries of one rule or status, newest first: the coordinator's list and the API's
            # ?rule= / ?status= filters with the default ordering.
            models.Index(fields=["status", "rule", "-raised_on"], name="data_query_status_rule_idx"),
        ]

    def __str__(self):
        return f"Query {self.pk or '(new)'} ({self.rule}): {self.record_label}"

    @property
    def record_label(self):
        kind = self.record_model.rsplit(".", 1)[-1]
        where = f".{self.field_name}" if self.field_name else ""
        return f"{kind} {self.record_id}{where}"


class LiverTestAnalyte(models.TextChoices):
    """The three liver tests of the MSKCC FUDR dose-modification table, in the registry's units."""

    AST = "ast", "AST (U/L)"
    ALP = "alp", "Alkaline phosphatase (U/L)"
    BILIRUBIN = "bilirubin", "Total bilirubin (µmol/L)"


class FudrDoseBand(Versioned):
    """One row of the FUDR dose-modification table (``registry.data_quality``, MSKCC, Kemeny et al.).

    For one analyte and one band of its reference value (the value at the last FUDR fill), the ratio
    of the value at the next fill to the reference in [``ratio_from``, ``ratio_below``) calls for
    ``dose_percent`` of the FUDR dose (0 = hold). Values are in the registry's units: U/L for AST and
    ALP, µmol/L for bilirubin. Seeded with the published table by migration 0010; the coordinator may
    adjust the bands in the admin (every change kept in the history).
    """

    analyte = models.CharField(max_length=10, choices=LiverTestAnalyte.choices)
    reference_from = models.DecimalField(
        max_digits=8, decimal_places=2, help_text="This band's reference values start here (inclusive)."
    )
    reference_below = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="... and end below this (exclusive); empty for no upper end.",
    )
    ratio_from = models.DecimalField(
        max_digits=5, decimal_places=2, help_text="Value at the next fill ÷ reference value, from (inclusive)."
    )
    ratio_below = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="... below (exclusive); empty for no end."
    )
    dose_percent = models.PositiveSmallIntegerField(
        validators=[MaxValueValidator(100)], help_text="FUDR dose to give, % of the last dose; 0 means hold."
    )

    history = audited_history()

    class Meta:
        ordering = ["analyte", "reference_from", "ratio_from"]
        verbose_name = "FUDR dose-modification band"
        constraints = [
            models.CheckConstraint(condition=Q(analyte__in=LiverTestAnalyte.values), name="fudr_band_analyte"),
            models.CheckConstraint(condition=Q(dose_percent__lte=100), name="fudr_band_percent_range"),
            models.CheckConstraint(
                condition=Q(reference_from__gte=0) & Q(ratio_from__gte=0), name="fudr_band_bounds_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(reference_below__isnull=True) | Q(reference_below__gt=F("reference_from")),
                name="fudr_band_reference_range_order",
            ),
            models.CheckConstraint(
                condition=Q(ratio_below__isnull=True) | Q(ratio_below__gt=F("ratio_from")),
                name="fudr_band_ratio_range_order",
            ),
            models.UniqueConstraint(fields=["analyte", "reference_from", "ratio_from"], name="fudr_band_one_per_start"),
        ]

    def __str__(self):
        ref = (
            f"{self.reference_from}–{self.reference_below}"
            if self.reference_below is not None
            else f"≥ {self.reference_from}"
        )
        ratio = f"{self.ratio_from}–<{self.ratio_below}" if self.ratio_below is not None else f"≥ {self.ratio_from}"
        action = "hold" if self.dose_percent == 0 else f"{self.dose_percent}%"
        return f"{self.get_analyte_display()}, reference {ref}: × {ratio} → {action}"

    def clean(self):
        errors = {}
        if self.reference_below is not None and self.reference_from is not None:
            if self.reference_below <= self.reference_from:
                errors["reference_below"] = "The band must end above where it starts."
        if self.ratio_below is not None and self.ratio_from is not None and self.ratio_below <= self.ratio_from:
            errors["ratio_below"] = "The ratio range must end above where it starts."
        if errors:
            raise ValidationError(errors)


# --- Soft warnings (issue 12): an unusual value saved on purpose, and who said so -------------------


class SoftWarningConfirmation(models.Model):
    """A user confirmed that a value a soft warning questioned is right (``registry.soft_warnings``).

    One row per warning confirmed per save, never edited: the record's history says what was saved,
    this says which unusual values the user vouched for, with the message as they saw it.
    """

    centre_lookup = "centre"

    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="soft_warning_confirmations")
    record_model = models.CharField(
        max_length=40,
        choices=[(label, label) for label in DATA_QUERY_RECORD_MODELS],
        help_text="The kind of record, as a model label (e.g. registry.treatment).",
    )
    record_id = models.PositiveBigIntegerField()
    code = models.CharField(max_length=60, help_text="The warning's stable code (registry.soft_warnings).")
    message = models.CharField(max_length=300, help_text="The warning as the user saw it.")
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    confirmed_by_name = models.CharField(max_length=150, blank=True, help_text="Kept if the account is removed.")
    confirmed_at = models.DateTimeField(default=timezone.now)

    objects = CentreScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-confirmed_at", "-id"]
        verbose_name = "confirmed soft warning"
        constraints = [
            models.CheckConstraint(
                condition=Q(record_model__in=DATA_QUERY_RECORD_MODELS), name="soft_warning_record_model_vocabulary"
            ),
            models.CheckConstraint(condition=~Q(code=""), name="soft_warning_has_code"),
        ]
        indexes = [
            # The confirmations of one record: its admin page, and the API's "already confirmed" check.
            models.Index(fields=["record_model", "record_id"], name="soft_warning_record_idx"),
        ]

    def __str__(self):
        return f"{self.code} on {self.record_model.rsplit('.', 1)[-1]} {self.record_id}"


# --- Systemic toxicity, readmissions and reoperations (issue 14) -------------------------------------

from .vocabulary import ReadmissionKind, ReadmissionReason, SystemicToxicityTerm  # noqa: E402


class SystemicToxicity(ImplantationChild):
    """A systemic chemotherapy toxicity, graded by CTCAE v5.0 (NCI, 2017): grade 1 mild to 5 death."""

    date_field = "onset_on"
    event_label = "systemic toxicity"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="systemic_toxicities")
    term = models.CharField(max_length=20, choices=SystemicToxicityTerm.choices, help_text="CTCAE v5.0 term.")
    grade = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)], help_text="CTCAE v5.0 grade, 1–5."
    )
    onset_on = models.DateField(verbose_name="onset date")

    history = audited_history()

    class Meta:
        ordering = ["onset_on", "id"]
        verbose_name = "systemic toxicity"
        verbose_name_plural = "systemic toxicities"
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1, grade__lte=5), name="systemic_toxicity_grade_1_to_5"),
            models.CheckConstraint(
                condition=Q(term__in=SystemicToxicityTerm.values), name="systemic_toxicity_term_vocabulary"
            ),
        ]
        indexes = [
            # Toxicity rates by term.
            models.Index(fields=["term", "implantation"], name="systemic_toxicity_term_idx"),
        ]

    def __str__(self):
        return f"{self.get_term_display()} (grade {self.grade}) on {self.onset_on}"


class Readmission(ImplantationChild):
    """A hospital readmission or a reoperation after the implantation (30- and 90-day rates: selectors)."""

    date_field = "occurred_on"
    event_label = "readmission or reoperation"

    implantation = models.ForeignKey(Implantation, on_delete=models.CASCADE, related_name="readmissions")
    kind = models.CharField(max_length=20, choices=ReadmissionKind.choices)
    occurred_on = models.DateField(verbose_name="date", help_text="Admission date, or the date of the operation.")
    reason = models.CharField(max_length=30, choices=ReadmissionReason.choices)

    history = audited_history()

    class Meta:
        ordering = ["occurred_on", "id"]
        verbose_name = "readmission or reoperation"
        verbose_name_plural = "readmissions and reoperations"
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ReadmissionKind.values), name="readmission_kind_vocabulary"),
            models.CheckConstraint(
                condition=Q(reason__in=ReadmissionReason.values), name="readmission_reason_vocabulary"
            ),
        ]
        indexes = [
            # 30- and 90-day rates per implantation (registry.selectors.readmission_rates).
            models.Index(fields=["implantation", "kind", "occurred_on"], name="readmission_window_idx"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_reason_display()}) on {self.occurred_on}"
