"""Reads the registry into one row per implantation, for statistics.

Both the API's ``stats`` endpoints and the monthly reports build their
numbers from ``cohort()``. A handful of set-based queries, whatever the size:
no query per patient or per implantation.

``as_of`` is a report's data cut: rows entered after it are left out.
"""

import bisect
import datetime
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, Min, Q

from registry.models import Complication, FollowUp, Implantation, SystemicTherapyLine, Treatment
from registry.routers import primary_reads
from registry.vocabulary import PUMP_FAILURE_END_REASONS, ComplicationCategory, DoseChange, is_severe

from .concordance import overlaps_hai_period

VOLUME_WINDOW_DAYS = 365

# Read into CohortRow in this order: the positional fields first, then the case mix by name.
IDENTITY_COLUMNS = (
    "id",
    "patient_id",
    "patient__centre_id",
    "patient__centre__code",
    "indication",
    "patient__sex",
    "surgeon_id",
    "surgeon__code",
    "implanted_on",
    "device",
    "approach",
    "patient__consent_on",
)
CASE_MIX_COLUMNS = {
    "primary_tumour": "patient__primary_tumour",
    "ras_status": "patient__ras_status",
    "liver_metastases_count": "patient__liver_metastases_count",
    "bilobar_disease": "patient__bilobar_disease",
    "extrahepatic_disease": "patient__extrahepatic_disease",
    "prior_systemic_lines": "patient__prior_systemic_lines",
    "catheter_vessel": "catheter_vessel",
    "accessory_arteries_ligated": "accessory_arteries_ligated",
    "concurrent_colorectal_resection": "concurrent_colorectal_resection",
    "concurrent_hepatectomy": "concurrent_hepatectomy",
    "concurrent_ablation": "concurrent_ablation",
    "ecog": "patient__ecog",
    "cea_ng_per_ml": "patient__cea_ng_per_ml",
    "clinical_risk_score": "patient__clinical_risk_score",
    "braf_status": "patient__braf_status",
    "msi_status": "patient__msi_status",
    "extrahepatic_sites": "patient__extrahepatic_sites",
}
CASE_MIX_FIELDS = tuple(CASE_MIX_COLUMNS)


@dataclass(slots=True)
class CohortRow:
    id: int
    patient_id: int
    centre_id: int
    centre_code: str
    indication: str
    sex: str
    surgeon_id: int
    surgeon_code: str
    implanted_on: datetime.date
    device: str = ""
    approach: str = ""
    consent_on: datetime.date | None = None  # registry consent: a later consent is a delayed entry
    patient_first_implanted_on: datetime.date | None = None  # the origin of overall survival (per patient)
    replaces_id: int | None = None  # the implantation whose pump this one replaces (a replacement pump)
    surgeon_sequence: int = 0  # this pump's number in the surgeon's career (pre-registry pumps + earlier ones + 1)
    surgeon_volume: int = 0  # the surgeon's registry implantations in the 12 months before this one
    centre_volume: int = 0  # the centre's, likewise
    first_dose_on: datetime.date | None = None
    last_contact_on: datetime.date | None = None
    died_on: datetime.date | None = None
    hepatic_progression_on: datetime.date | None = None
    pump_failure_on: datetime.date | None = None  # lost, or use ended, because of a technical complication
    pump_use_ended_on: datetime.date | None = None  # use ended for any other reason (a competing event)
    resected: bool = False
    follow_up_count: int = 0
    # complication type code -> earliest onset date; and the earliest severe onset
    complications: dict = field(default_factory=dict)
    severe_complications: dict = field(default_factory=dict)
    # Pre-implant case mix, for the case-mix model (no identifier: age in whole years from the birth year).
    age_at_implant: int | None = None
    primary_tumour: str = ""
    ras_status: str = ""
    liver_metastases_count: int | None = None
    bilobar_disease: bool | None = None
    extrahepatic_disease: bool | None = None
    prior_systemic_lines: int | None = None
    catheter_vessel: str = ""
    accessory_arteries_ligated: bool = False
    concurrent_colorectal_resection: bool = False
    concurrent_hepatectomy: bool = False
    concurrent_ablation: bool = False
    ecog: int | None = None
    cea_ng_per_ml: float | None = None  # a float, not the model's Decimal: the snapshot is JSON
    clinical_risk_score: int | None = None  # Fong 0-5
    braf_status: str = ""
    msi_status: str = ""
    extrahepatic_sites: list = field(default_factory=list)  # ExtrahepaticDiseaseSite codes
    # For the consensus concordance (reports.concordance): no trial identifier, only whether there is one.
    in_trial: bool = False
    last_dose_on: datetime.date | None = None  # the last HAI dose given (held cycles excluded), as first_dose_on
    systemic_during_hai: bool = False  # a systemic therapy line overlapping first_dose_on..last_dose_on

    @property
    def treated(self):
        return self.first_dose_on is not None

    @property
    def days_to_first_dose(self):
        return (self.first_dose_on - self.implanted_on).days if self.first_dose_on else None

    @property
    def pumps_before(self):
        """Pumps the surgeon had placed before this one (pre-registry count plus earlier registry implantations)."""
        return max(self.surgeon_sequence - 1, 0)

    @property
    def entered_on(self):
        """Registry entry: the later of implantation and consent (the implantation when consent is missing)."""
        return max(self.implanted_on, self.consent_on) if self.consent_on else self.implanted_on


def _entered_by(queryset, as_of):
    return queryset.filter(created_at__lte=as_of) if as_of is not None else queryset


def _count_before(sorted_dates, day, window_days=VOLUME_WINDOW_DAYS):
    """How many dates fall in the ``window_days`` before ``day`` (not counting ``day`` itself)."""
    start = day - datetime.timedelta(days=window_days)
    return bisect.bisect_left(sorted_dates, day) - bisect.bisect_left(sorted_dates, start)


def cohort(implantations=None, *, as_of=None):
    """One ``CohortRow`` per implantation of ``implantations`` (default: all).

    Surgeon sequence and volumes are counted over the whole registry (as of the
    cut), not over the filtered rows, so a filter never changes them.
    """
    everything = _entered_by(Implantation.objects.all(), as_of)
    selected = _entered_by(implantations if implantations is not None else Implantation.objects.all(), as_of)

    # Whole registry: (surgeon, centre, date, id) for sequence numbers and volumes.
    all_rows = list(
        everything.order_by().values_list(
            "id", "surgeon_id", "patient__centre_id", "implanted_on", "surgeon__prior_pump_count"
        )
    )
    sequence = {}
    surgeon_dates = defaultdict(list)
    centre_dates = defaultdict(list)
    for implantation_id, surgeon_id, centre_id, implanted_on, prior in sorted(
        all_rows, key=lambda r: (r[1], r[3], r[0])
    ):
        surgeon_dates[surgeon_id].append(implanted_on)
        sequence[implantation_id] = prior + len(surgeon_dates[surgeon_id])
        centre_dates[centre_id].append(implanted_on)
    for dates in centre_dates.values():
        dates.sort()

    # A patient's first implantation, over the whole registry: the origin of overall survival.
    first_implanted = dict(
        everything.order_by()
        .values("patient_id")
        .annotate(first=Min("implanted_on"))
        .values_list("patient_id", "first")
    )

    rows = {}
    for values in selected.order_by().values_list(
        *IDENTITY_COLUMNS, *CASE_MIX_COLUMNS.values(), "patient__birth_year", "replaces_id", "trial"
    ):
        row = CohortRow(*values[: len(IDENTITY_COLUMNS)])
        *case_mix, birth_year, row.replaces_id, trial = values[len(IDENTITY_COLUMNS) :]
        for name, value in zip(CASE_MIX_FIELDS, case_mix, strict=True):
            setattr(row, name, value)
        row.cea_ng_per_ml = float(row.cea_ng_per_ml) if row.cea_ng_per_ml is not None else None
        row.extrahepatic_sites = sorted(row.extrahepatic_sites or [])
        row.in_trial = bool(trial)
        # The age in whole years, not the birth year: nothing in a snapshot that helps identify a patient.
        row.age_at_implant = row.implanted_on.year - birth_year if birth_year else None
        row.patient_first_implanted_on = first_implanted.get(row.patient_id, row.implanted_on)
        row.surgeon_sequence = sequence.get(row.id, 0)
        row.surgeon_volume = _count_before(surgeon_dates[row.surgeon_id], row.implanted_on)
        row.centre_volume = _count_before(centre_dates[row.centre_id], row.implanted_on)
        rows[row.id] = row
    if not rows:
        return []
    ids_filter = {"implantation__in": selected.values("id")}

    doses = _entered_by(Treatment.objects.exclude(dose_change=DoseChange.HELD), as_of).filter(**ids_filter)
    for implantation_id, first, last in (
        doses.order_by()
        .values("implantation_id")
        .annotate(first=Min("given_on"), last=Max("given_on"))
        .values_list("implantation_id", "first", "last")
    ):
        rows[implantation_id].first_dose_on = first
        rows[implantation_id].last_dose_on = last

    # Systemic therapy during the HAI period (reports.concordance): one query over the patients' lines.
    lines = defaultdict(list)
    for patient_id, started_on, ended_on in (
        _entered_by(SystemicTherapyLine.objects.all(), as_of)
        .filter(patient__in=selected.values("patient_id"))
        .order_by()
        .values_list("patient_id", "started_on", "ended_on")
    ):
        lines[patient_id].append((started_on, ended_on))
    for row in rows.values():
        if row.first_dose_on is not None:
            row.systemic_during_hai = any(
                overlaps_hai_period(row.first_dose_on, row.last_dose_on, started_on, ended_on)
                for started_on, ended_on in lines.get(row.patient_id, ())
            )

    follow_ups = _entered_by(FollowUp.objects.all(), as_of).filter(**ids_filter)
    summary = (
        follow_ups.order_by()
        .values("implantation_id")
        .annotate(
            last_contact=Max("contact_on"),
            died=Min("died_on"),
            hepatic_progression=Min("hepatic_progression_on"),
            pump_failed=Min("pump_ended_on", filter=Q(pump_end_reason__in=PUMP_FAILURE_END_REASONS)),
            # An end of use with no reason given counts as a competing end, never as a failure.
            pump_ended=Min(
                "pump_ended_on",
                filter=Q(pump_ended_on__isnull=False) & ~Q(pump_end_reason__in=PUMP_FAILURE_END_REASONS),
            ),
            resections=Max("resection_on"),
        )
    )
    for item in summary:
        row = rows[item["implantation_id"]]
        row.last_contact_on = item["last_contact"]
        row.hepatic_progression_on = item["hepatic_progression"]
        row.pump_failure_on = item["pump_failed"]
        row.pump_use_ended_on = item["pump_ended"]
        row.resected = item["resections"] is not None
        row.follow_up_count = 1
    # A death is the patient's: it ends every one of their implantations' follow-up,
    # wherever it was recorded.
    deaths = (
        _entered_by(FollowUp.objects.filter(died_on__isnull=False), as_of)
        .filter(implantation__patient__in=selected.values("patient_id"))
        .order_by()
        .values("implantation__patient_id")
        .annotate(died=Min("died_on"))
        .values_list("implantation__patient_id", "died")
    )
    deaths_by_patient = dict(deaths)
    for row in rows.values():
        row.died_on = deaths_by_patient.get(row.patient_id)

    complications = _entered_by(Complication.objects.all(), as_of).filter(**ids_filter)
    for implantation_id, code, category, onset, grade, clavien_dindo, pump_lost in complications.order_by().values_list(
        "implantation_id", "type__code", "type__category", "onset_on", "grade", "clavien_dindo", "pump_lost"
    ):
        row = rows[implantation_id]
        if code not in row.complications or onset < row.complications[code]:
            row.complications[code] = onset
        if is_severe(grade, clavien_dindo) and (
            code not in row.severe_complications or onset < row.severe_complications[code]
        ):
            row.severe_complications[code] = onset
        if pump_lost:
            # A pump lost to a technical complication failed; lost to anything else, its use ended.
            name = "pump_failure_on" if category == ComplicationCategory.TECHNICAL else "pump_use_ended_on"
            if getattr(row, name) is None or onset < getattr(row, name):
                setattr(row, name, onset)
    return list(rows.values())


# --- The live cohort, rebuilt only when the registry changes ------------------------------
#
# Statistics endpoints read the whole registry; building it takes seconds at
# 100,000 implantations. Each process keeps the last build and its data
# version; every committed write to a record the cohort reads bumps the version
# (in the shared cache, Redis in production), and the next request rebuilds.

DATA_VERSION_KEY = "registry:data-version"
_live = {"version": None, "rows": None}
_live_lock = threading.Lock()


def data_version():
    version = cache.get(DATA_VERSION_KEY)
    if version is None:
        cache.add(DATA_VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache.get(DATA_VERSION_KEY)
    return version


def bump_data_version():
    """Call after a write the signals do not see (bulk inserts)."""
    cache.set(DATA_VERSION_KEY, uuid.uuid4().hex, timeout=None)


def _bump_on_commit(**kwargs):
    # After the commit: a rebuild before it would cache the old rows under the new version.
    transaction.on_commit(bump_data_version)


def forget_live_cohort():
    with _live_lock:
        _live.update(version=None, rows=None)


def live_cohort():
    """{implantation id: CohortRow} for the whole registry as it stands now."""
    version = data_version()
    with _live_lock:
        if _live["version"] != version or _live["rows"] is None:
            # From the primary whoever asks: the version is bumped once a write commits there, and a lagging
            # replica's rows kept under it would be served until the next write (registry.routers).
            with primary_reads():
                _live["rows"] = {row.id: row for row in cohort()}
            _live["version"] = version
        return _live["rows"]


def current_cohort():
    """The cohort this connection reads: the data release's (an investigator's request) or the live one."""
    from .releases import current_release, release_cohort

    release = current_release()
    return release_cohort(release) if release is not None else live_cohort()


def cohort_version():
    """What a cached answer read: the release (never changes) or the live data version."""
    from .releases import current_release

    release = current_release()
    return f"release:{release.storage}" if release is not None else data_version()


def connect_signals():
    from django.db.models.signals import post_delete, post_save

    from registry.models import ComplicationType, LiverTest, Patient, PerfusionCheck, Readmission
    from sites.models import Centre, Surgeon

    # Every record the API counts or the statistics read; the version also keys
    # cached page counts and statistics responses (api.pagination, api.stats).
    senders = [
        Implantation,
        Treatment,
        Complication,
        FollowUp,
        Patient,
        Surgeon,
        Centre,
        ComplicationType,
        SystemicTherapyLine,
        LiverTest,
        PerfusionCheck,
        Readmission,  # not in the rows, but api.stats' readmission rates are cached under the version too
    ]
    for sender in senders:
        post_save.connect(_bump_on_commit, sender=sender, dispatch_uid=f"cohort-version-save-{sender.__name__}")
        post_delete.connect(_bump_on_commit, sender=sender, dispatch_uid=f"cohort-version-delete-{sender.__name__}")
