"""Writes to the clinical record. Admin, import and API all save through here."""

import datetime
import logging
import os
import stat
import time
from pathlib import Path, PurePosixPath

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, router, transaction
from django.db.models import FileField, RestrictedError
from django.db.models.deletion import Collector
from simple_history.utils import update_change_reason

from sites import access
from sites.versioning import StaleRecord

from . import soft_warnings
from .soft_warnings import UnconfirmedWarnings  # noqa: F401  (raised by save_record)

logger = logging.getLogger(__name__)


def _check_can_edit(record, user):
    centre_id = access.centre_id_of(record)
    # A record with no centre yet (a new centre) is the coordinator's alone.
    allowed = access.can_edit_centre(user, centre_id) if centre_id is not None else access.is_coordinator(user)
    if not allowed:
        raise PermissionDenied("You may only enter or change records of your own centres.")


def _patient_id_of(record):
    from .models import Implantation, Patient

    if isinstance(record, Patient):
        return record.pk
    if getattr(record, "patient_id", None):
        return record.patient_id
    implantation_id = getattr(record, "implantation_id", None)
    if implantation_id:
        return Implantation.objects.filter(pk=implantation_id).values_list("patient_id", flat=True).first()
    return None


def _lock_patient_of(record):
    """Serialise writes to one patient's records, so that rules across rows hold under concurrent writes.

    A rule such as "no dose on an implantation recorded as never treated" reads one row and writes
    another: two requests could each pass it against the other's uncommitted state (write skew under
    READ COMMITTED). Every write of a patient's records first locks the patient's row (SELECT ... FOR
    UPDATE), so the second one validates against what the first committed. The parent implantation
    is re-read after the lock for the same reason.
    """
    from .models import ImplantationChild, Patient

    patient_id = _patient_id_of(record)
    if patient_id is None:
        return
    list(Patient.objects.select_for_update().filter(pk=patient_id).values_list("pk", flat=True))
    if isinstance(record, ImplantationChild) and record.implantation_id:
        record.implantation = type(record).implantation.field.related_model.objects.get(pk=record.implantation_id)


@transaction.atomic
def save_record(record, *, user, reason="", confirmed_warnings=()):
    """Validate every rule (field, row and cross-row), then save with history.

    Raises ``ValidationError`` with messages per field, or ``PermissionDenied``
    when the record is (or would be moved) outside the user's centres.

    Soft warnings (``registry.soft_warnings``) come after the rules: a warning whose code is not in
    ``confirmed_warnings`` raises ``UnconfirmedWarnings`` (a ``ValidationError``) and nothing is written;
    once all are confirmed the record is saved and one ``SoftWarningConfirmation`` per warning is kept.
    Codes that are not current warnings are ignored.
    """
    if record.pk:
        stored = type(record).objects.filter(pk=record.pk).first()
        if stored is not None:
            _check_can_edit(stored, user)
    _check_can_edit(record, user)
    _lock_patient_of(record)
    record.full_clean()
    warnings = soft_warnings.warnings_for(record)
    missing = soft_warnings.unconfirmed(warnings, confirmed_warnings)
    if missing:
        raise soft_warnings.UnconfirmedWarnings(missing)
    record._history_user = user
    try:
        with transaction.atomic():
            record.save()
    except IntegrityError:
        # A concurrent write committed the same row between full_clean and save: the database's constraint
        # refused this one. Its check now sees the other row and gives the same message as full_clean would.
        record.validate_constraints()
        raise
    if reason:
        update_change_reason(record, reason)
    soft_warnings.record_confirmations(record, warnings, user)
    return record


DELETION_REASON_REQUIRED = "Give a reason for deleting this record; it is kept in the record's history."
PATIENT_WITH_RECORDS_MESSAGE = (
    "Only the registry coordinator may delete a patient who has clinical records (implantations or systemic "
    "therapy lines). Delete those first, each with its reason, or ask the coordinator."
)


def patient_has_clinical_records(patient):
    return patient.implantations.exists() or patient.systemic_lines.exists()


def may_delete(user, record):
    """The deletion rules beyond the centre: the one place the admin's buttons and the service ask."""
    from .models import Patient

    if isinstance(record, Patient) and record.pk and not access.is_coordinator(user):
        return not patient_has_clinical_records(record)
    return True


def restricted_message(error):
    """What the user reads when a deletion is refused because other rows still point to the record (RESTRICT)."""
    from .models import Treatment

    refills = sorted(
        (row for row in error.restricted_objects if isinstance(row, Treatment)), key=lambda row: row.given_on
    )
    if refills:
        dates = ", ".join(dict.fromkeys(row.given_on.isoformat() for row in refills))
        noun = "refill" if len(refills) == 1 else "refills"
        return f"These liver tests are linked to the {noun} of {dates}; unlink them there first."
    return "Other records still refer to this one; change them first."


def deletion_refusal(record):
    """Why ``record`` cannot be deleted because other rows point to it (``restricted_message``), or None."""
    if record is None or not record.pk:
        return None
    collector = Collector(using=router.db_for_write(type(record), instance=record))
    try:
        collector.collect([record])
    except RestrictedError as error:
        return restricted_message(error)
    return None


@transaction.atomic
def delete_record(record, *, user, reason):
    """Delete a record and what hangs off it, each history row naming the user and the reason.

    Raises ``ValidationError`` without a reason or while other rows still point to the record (a refill's
    liver tests: ``restricted_message``), ``PermissionDenied`` outside the user's centres or for a
    patient with clinical records and a user who is not the coordinator, and ``StaleRecord`` when the
    record was changed since the caller read it.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": DELETION_REASON_REQUIRED})
    _check_can_edit(record, user)
    _lock_patient_of(record)
    stored = type(record)._base_manager.select_for_update().filter(pk=record.pk).values_list("version", flat=True)
    stored_version = stored.first()
    if stored_version is not None and stored_version != record.version:
        raise StaleRecord(record, record.version)
    if not may_delete(user, record):
        raise PermissionDenied(PATIENT_WITH_RECORDS_MESSAGE)
    # The rows the deletion cascades to are collected first, so that each one's history row
    # (django-simple-history writes it on post_delete) carries the same author and reason.
    collector = Collector(using=router.db_for_write(type(record), instance=record))
    try:
        collector.collect([record])
    except RestrictedError as error:
        raise ValidationError(restricted_message(error)) from None
    for instances in collector.data.values():
        for instance in instances:
            instance._history_user = user
            instance._change_reason = reason
    collector.delete()


def restore_complication_types():
    """Put the data dictionary's complication types back (after a flush); leaves added types alone."""
    from .models import ComplicationType
    from .vocabulary import COMPLICATION_TYPES

    for code, name, grading, category, catheter in COMPLICATION_TYPES:
        ComplicationType.objects.update_or_create(
            code=code,
            defaults={"name": name, "grading_system": grading, "category": category, "catheter_related": catheter},
        )


WITHDRAWAL_COORDINATOR_ONLY = "Only the registry coordinator records a withdrawal of consent."


def withdraw_consent(patient, *, user, withdrawn_on, reason):
    """Record that ``patient`` withdrew consent, and erase their records (issue 11); returns the tombstone.

    Erasure, as under GDPR art. 17: from the commit on the patient is in no statistic, report or
    export. In one transaction, with the patient's row locked (``_lock_patient_of``):

    * every clinical row of the patient: the patient, implantations with their perfusion checks, HAI
      doses, complications, liver tests and follow-ups, and systemic therapy lines;
    * every history row of those records (also of records deleted earlier, and the "-" rows this
      delete writes) and the admin log's entries naming them;
    * the patient's rows in report runs' frozen cohorts, their cases in stored reports' "Cases to
      review" (the stored copy is then rendered again), the pseudonym in outlier reviews' free text;
    * then a ``ConsentWithdrawal`` tombstone: former id, pseudonym, centre, date, reason, who and
      when, and counts of rows erased per kind, nothing clinical.

    Aggregates already sent stay: rendered reports' figures and emailed PDFs (no patient named), runs'
    case-mix models, export logs (no values). Cached statistics are keyed by the data version, bumped
    on commit. ``registry.consent`` gives the details. Backups keep the data until they age out
    (README, "Consent withdrawal and backups"); ``reapply_consent_withdrawals`` erases again after a
    restore.

    Raises ``PermissionDenied`` for anyone but the coordinator, ``ValidationError`` for a missing
    reason or a date in the future or before the patient's consent date.
    """
    from django.core.exceptions import ValidationError

    from . import consent, rules
    from .models import ConsentWithdrawal, Patient

    if not access.is_coordinator(user):
        raise PermissionDenied(WITHDRAWAL_COORDINATOR_ONLY)
    with transaction.atomic():
        _lock_patient_of(patient)
        patient = Patient.objects.get(pk=patient.pk)  # as it stands now that it is locked
        reason = (reason or "").strip()
        errors = {}
        if not reason:
            errors["reason"] = "Say why (e.g. the patient's letter to the centre); no names or clinical details."
        if withdrawn_on is None:
            errors["withdrawn_on"] = "Give the date consent was withdrawn."
        elif withdrawn_on > rules.today(patient.centre):
            errors["withdrawn_on"] = "The date of the withdrawal cannot be in the future."
        elif patient.consent_on and withdrawn_on < patient.consent_on:
            errors["withdrawn_on"] = f"Consent was given on {patient.consent_on}; it cannot be withdrawn before."
        if ConsentWithdrawal.objects.filter(former_patient_id=patient.pk).exists():
            errors["__all__"] = (
                "A withdrawal is already recorded for this registry id: run reapply_consent_withdrawals."
            )
        if errors:
            raise ValidationError(errors)
        tombstone = ConsentWithdrawal(
            former_patient_id=patient.pk,
            pseudonym=patient.pseudonym,
            centre_id=patient.centre_id,
            withdrawn_on=withdrawn_on,
            reason=reason,
            recorded_by=user,
            recorded_by_name=user.get_username(),
        )
        counts, implantation_ids = consent.erase_patient_records(patient.pk)
        counts.update(
            consent.erase_derived_copies(
                patient_ids=[patient.pk], pseudonyms=[patient.pseudonym], implantation_ids=implantation_ids
            )
        )
        tombstone.erased_counts = counts
        tombstone._history_user = user
        tombstone.save()
        consent.forget_cached_statistics()
    return tombstone


# --- Retention of temporary files (issue 17, item 4): nightly, registry.tasks.prune_temporary_files --------


def _old_regular_files(root, cutoff):
    """Files under ``root`` last written before ``cutoff`` (epoch seconds); symbolic links are not followed."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                continue  # confirmed or deleted meanwhile
            if (stat.S_ISREG(status.st_mode) or stat.S_ISLNK(status.st_mode)) and status.st_mtime < cutoff:
                found.append(path)
    return found


def _file_fields():
    """Every FileField of every model, history models included."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, FileField)
    ]


def referenced_media_names():
    """The name of every file a row refers to, in any table with a FileField."""
    names = set()
    for model, field in _file_fields():
        names.update(
            model._base_manager.exclude(**{field.attname: ""})
            .exclude(**{f"{field.attname}__isnull": True})
            .values_list(field.attname, flat=True)
            .distinct()
        )
    return names


def _media_folders():
    """The folders under MEDIA_ROOT the registry's file fields write into (their ``upload_to``)."""
    folders = set()
    for _, field in _file_fields():
        if isinstance(field.upload_to, str):
            prefix = PurePosixPath(field.upload_to.split("%", 1)[0])
            if prefix.parts:
                folders.add(prefix.as_posix())
    return sorted(folders)


def prune_temporary_files(now=None):
    """Delete import uploads never confirmed and report files no row refers to; {kind: number deleted}.

    * An upload waiting between the preview and the confirmation (``registry.import_storage``) older
      than ``IMPORT_TEMPORARY_HOURS``: its user left the preview, and the file holds a whole form's rows.
    * A file in a folder a file field writes into (``reports/pdf/``, ``reports/snapshots/``...) that no
      row of any table refers to, once older than ``MEDIA_ORPHAN_GRACE_HOURS``: what a render left when it
      died between writing its files and committing. The grace is never shorter than twice the hard task
      time limit, so the files of a render still at work (written, not yet committed) are never hit.

    Never touched: a file any row refers to (a report's HTML, PDF and emailed PDF, a run's snapshot),
    anything else under MEDIA_ROOT, and every table (history, data releases, the export log).
    """
    now = now.timestamp() if now is not None else time.time()
    deleted = {"import_uploads": 0, "unreferenced_media": 0}

    for path in _old_regular_files(settings.IMPORT_TEMPORARY_ROOT, now - settings.IMPORT_TEMPORARY_HOURS * 3600):
        path.unlink(missing_ok=True)
        deleted["import_uploads"] += 1

    grace = max(
        datetime.timedelta(hours=settings.MEDIA_ORPHAN_GRACE_HOURS),
        datetime.timedelta(seconds=2 * settings.CELERY_TASK_TIME_LIMIT),
    )
    media_root = Path(settings.MEDIA_ROOT)
    # The old files first, then the references: a file committed meanwhile is seen as referenced.
    candidates = {
        path
        for folder in _media_folders()
        for path in _old_regular_files(media_root / folder, now - grace.total_seconds())
    }
    if candidates:
        referenced = referenced_media_names()
        for path in candidates:
            if path.relative_to(media_root).as_posix() not in referenced:
                path.unlink(missing_ok=True)
                deleted["unreferenced_media"] += 1

    # Counts only: a file's name says which centre and month it belongs to.
    logger.info(
        "Pruned temporary files: %d import upload(s), %d unreferenced media file(s).",
        deleted["import_uploads"],
        deleted["unreferenced_media"],
    )
    return deleted
