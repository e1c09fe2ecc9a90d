"""Rules that compare a record with other rows of the same patient.

Models call these from ``clean()``; the admin's inline formsets call
``never_treated_errors`` with the rows as they stand in the form, before
anything is saved.
"""

import zoneinfo

from django.conf import settings
from django.utils import timezone


def now():
    """The clock every "today" reads; tests monkeypatch ``registry.rules.now``."""
    return timezone.now()


def today(centre=None):
    """Today's date where the record was entered: the centre's time zone, else the registry's (TIME_ZONE).

    A centre in Tokyo may record a dose given on its today while it is still yesterday in London; every
    "no future dates" rule asks this with the record's centre.
    """
    zone_name = getattr(centre, "time_zone", None) or settings.TIME_ZONE
    return timezone.localtime(now(), zoneinfo.ZoneInfo(zone_name)).date()


def patient_centre(patient):
    """The patient's centre for ``today(centre)``, or None while the form has not chosen it yet."""
    return patient.centre if patient is not None and patient.centre_id else None


def never_treated_errors(*, reason, dose_count, pump_never_used):
    """The never-treated reason goes only with no dose, and is required when a follow-up says the pump was never used.

    Returns ``{field: message}`` with the field on the implantation or follow-up that is wrong.
    """
    errors = {}
    if reason and dose_count:
        errors["never_treated_reason"] = (
            f"This implantation has {dose_count} HAI dose(s) recorded, so it cannot have a never-treated reason."
        )
    if pump_never_used and dose_count:
        errors["pump_never_used"] = "HAI doses are recorded for this implantation, so the pump was used."
    elif pump_never_used and not reason:
        errors["never_treated_reason"] = "Required: a follow-up records that the pump was never used."
    return errors


def _exclude(queryset, record):
    if record is not None and record.pk and queryset.model is type(record):
        return queryset.exclude(pk=record.pk)
    return queryset


def recorded_death_on(patient, exclude=None):
    """The earliest date of death recorded in any follow-up of this patient."""
    from .models import FollowUp

    if patient is None or not patient.pk:
        return None
    rows = FollowUp.objects.filter(implantation__patient=patient, died_on__isnull=False)
    return _exclude(rows, exclude).order_by("died_on").values_list("died_on", flat=True).first()


def _dated_sources():
    """(model, date field, label) of every record dated on or after its implantation."""
    from .models import Complication, FollowUp, LiverTest, PerfusionCheck, Readmission, SystemicToxicity, Treatment

    return [
        (Treatment, "given_on", "HAI dose"),
        (Complication, "onset_on", "complication"),
        (LiverTest, "measured_on", "liver test"),
        (PerfusionCheck, "checked_on", "perfusion check"),
        (SystemicToxicity, "onset_on", "systemic toxicity"),
        (Readmission, "occurred_on", "readmission or reoperation"),
        (FollowUp, "hepatic_progression_on", "hepatic progression"),
        (FollowUp, "progression_on", "progression"),
        (FollowUp, "resection_on", "resection"),
        (FollowUp, "pump_ended_on", "pump explant"),
    ]


def latest_event_for_patient(patient, exclude=None):
    """(date, label) of the patient's latest clinical event, for checking a date of death."""
    from .models import Implantation, SystemicTherapyLine

    latest = None
    candidates = [
        (Implantation.objects.filter(patient=patient), "implanted_on", "implantation"),
        (SystemicTherapyLine.objects.filter(patient=patient), "started_on", "systemic therapy line"),
    ]
    for model, field, label in _dated_sources():
        candidates.append((model.objects.filter(implantation__patient=patient), field, label))
    for queryset, field, label in candidates:
        value = (
            _exclude(queryset, exclude)
            .filter(**{f"{field}__isnull": False})
            .order_by(f"-{field}")
            .values_list(field, flat=True)
            .first()
        )
        if value and (latest is None or value > latest[0]):
            latest = (value, label)
    return latest


def earliest_event_after_implant(implantation):
    """(date, label) of the earliest record that must not precede this implantation."""
    from .models import LiverTest

    earliest = None
    for model, field, label in _dated_sources():
        queryset = model.objects.filter(implantation=implantation, **{f"{field}__isnull": False})
        if model is LiverTest:
            queryset = queryset.filter(is_baseline=False)
        value = queryset.order_by(field).values_list(field, flat=True).first()
        if value and (earliest is None or value < earliest[0]):
            earliest = (value, label)
    return earliest
