"""Writes to the clinical record. Admin, import and API all save through here."""

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from simple_history.utils import update_change_reason

from sites import access


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
def save_record(record, *, user, reason=""):
    """Validate every rule (field, row and cross-row), then save with history.

    Raises ``ValidationError`` with messages per field, or ``PermissionDenied``
    when the record is (or would be moved) outside the user's centres.
    """
    if record.pk:
        stored = type(record).objects.filter(pk=record.pk).first()
        if stored is not None:
            _check_can_edit(stored, user)
    _check_can_edit(record, user)
    _lock_patient_of(record)
    record.full_clean()
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
    return record


@transaction.atomic
def delete_record(record, *, user):
    _check_can_edit(record, user)
    _lock_patient_of(record)
    record._history_user = user
    record.delete()


def restore_complication_types():
    """Put the data dictionary's complication types back (after a flush); leaves added types alone."""
    from .models import ComplicationType
    from .vocabulary import COMPLICATION_TYPES

    for code, name, grading, category, catheter in COMPLICATION_TYPES:
        ComplicationType.objects.update_or_create(
            code=code,
            defaults={"name": name, "grading_system": grading, "category": category, "catheter_related": catheter},
        )
