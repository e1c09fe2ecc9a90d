"""Writes of the data resolution workflow (issue 12): rule runs, and each step of a query by hand.

A module of its own rather than ``registry.services``: the workflow is one unit (a run raises and
closes, people answer, close and re-open) with its own locking, and ``registry.services`` is the
clinical record's save path, which no step here goes through (a query is not a clinical record).

Who may do what is decided in ``sites.access`` (``can_raise_data_query``, ``can_answer_data_query``,
``can_close_data_query``); every step keeps who and when in the query's fields and a history row
(``audited_history``), the rule's steps under the author name ``RULE_AUTHOR``.

Re-running a rule raises no duplicate: the partial unique constraint allows one unresolved query per
rule and record, and a run first reads the rule's unresolved queries. When the problem is fixed, the
next run closes the query itself (``closed_automatically``, with ``AUTOMATIC_CLOSE_NOTE``). When the
problem comes back:

* after a query the rule closed itself (the data had been corrected), a new query is raised: it is a
  new problem, and its message says that an earlier one was resolved;
* after a query the coordinator closed (accepted as it is: e.g. the clinician chose to continue the
  full dose), the rule raises nothing for that record again; the coordinator re-opens the old query to
  pursue it.
"""

import dataclasses

from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from sites import access
from sites.versioning import StaleRecord

from . import data_quality
from .models import DATA_QUERY_RECORD_MODELS, MANUAL_RULE, DataQuery, DataQueryStatus, Implantation, Patient

RULE_AUTHOR = "data-quality rules"
AUTOMATIC_CLOSE_NOTE = "Closed automatically: the rule no longer finds the problem (the record was corrected)."
RAISED_AGAIN_NOTE = " An earlier query about this record was resolved on {date}; the problem is back."

COORDINATOR_ONLY = "Only the registry coordinator raises, closes and re-opens data queries."
ANSWER_NOT_ALLOWED = "Only a data manager of the record's centre, or the coordinator, answers this query."


@dataclasses.dataclass
class RuleCounts:
    raised: int = 0
    closed: int = 0
    still_open: int = 0


# --------------------------------------------------------------------------- rule runs


def _serialise_rule(code):
    """Two runs of one rule (the nightly one and one on demand) take turns: they would raise the same queries."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"registry.data_quality:{code}"])


def run_checks(*, centre=None, rule_codes=None):
    """Run the rules (all, or ``rule_codes``) over every centre, or one ``centre``; returns {code: RuleCounts}.

    Raises a query per offending record that has none unresolved, closes the rule's unresolved queries
    whose record it no longer finds, and counts what is still unresolved. A handful of queries per rule.
    """
    codes = list(data_quality.RULES) if rule_codes is None else list(rule_codes)
    unknown = sorted(set(codes) - set(data_quality.RULES))
    if unknown:
        raise ValueError(f"No data-quality rule {', '.join(unknown)}; the rules are {', '.join(data_quality.RULES)}.")
    implantations = Implantation.objects.all()
    if centre is not None:
        implantations = implantations.filter(patient__centre=centre)
    return {code: _run_rule(data_quality.RULES[code], implantations, centre) for code in codes}


@transaction.atomic
def _run_rule(rule, implantations, centre):
    _serialise_rule(rule.code)
    findings = {}
    for finding in rule.find(implantations):
        findings.setdefault(finding.key, finding)
    unresolved = DataQuery.objects.select_for_update(of=("self",)).filter(rule=rule.code).unresolved()
    if centre is not None:
        unresolved = unresolved.filter(patient__centre=centre)
    unresolved = {(q.record_model, q.record_id): q for q in unresolved}
    new = [f for key, f in findings.items() if key not in unresolved]
    latest_closed = _latest_closed(rule.code, new)
    now = timezone.now()
    to_raise = []
    for finding in new:
        earlier = latest_closed.get(finding.key)
        if earlier is not None and not earlier["closed_automatically"]:
            continue  # the coordinator accepted this record as it is
        message = finding.message
        if earlier is not None:
            message += RAISED_AGAIN_NOTE.format(date=f"{timezone.localtime(earlier['closed_at']):%Y-%m-%d}")
        to_raise.append(
            DataQuery(
                patient_id=finding.patient_id,
                implantation_id=finding.implantation_id,
                record_model=finding.record_model,
                record_id=finding.record_id,
                field_name=finding.field_name,
                rule=rule.code,
                message=message,
                raised_on=now,
            )
        )
    attributed = {"history_user_name": RULE_AUTHOR}
    if to_raise:
        bulk_create_with_history(
            to_raise,
            DataQuery,
            default_change_reason=f"Raised by rule {rule.code}",
            default_date=now,
            custom_historical_attrs=attributed,
        )
    resolved = [q for key, q in unresolved.items() if key not in findings]
    for query in resolved:
        query.status = DataQueryStatus.CLOSED
        query.closed_at = now
        query.closed_by = None
        query.closed_automatically = True
        query.close_note = AUTOMATIC_CLOSE_NOTE
        query.version += 1
    if resolved:
        bulk_update_with_history(
            resolved,
            DataQuery,
            ["status", "closed_at", "closed_by", "closed_automatically", "close_note", "version"],
            default_change_reason=AUTOMATIC_CLOSE_NOTE,
            default_date=now,
            custom_historical_attrs=attributed,
        )
    return RuleCounts(
        raised=len(to_raise), closed=len(resolved), still_open=len(unresolved) - len(resolved) + len(to_raise)
    )


def _latest_closed(code, findings):
    """{(record model, record id): the latest closed query of the rule about it}, for ``findings``."""
    ids_by_model = {}
    for finding in findings:
        ids_by_model.setdefault(finding.record_model, []).append(finding.record_id)
    latest = {}
    for model, ids in ids_by_model.items():
        rows = (
            DataQuery.objects.filter(rule=code, record_model=model, record_id__in=ids, status=DataQueryStatus.CLOSED)
            .order_by("closed_at", "pk")
            .values("record_model", "record_id", "closed_at", "closed_automatically")
        )
        for row in rows:
            latest[(row["record_model"], row["record_id"])] = row
    return latest


# --------------------------------------------------------------------------- the workflow by hand


def _locked(query):
    """The query as it stands, locked; refused if someone changed it since the caller read it."""
    current = DataQuery.objects.select_for_update(of=("self",)).select_related("patient").get(pk=query.pk)
    if query.version != current.version:
        raise StaleRecord(query, query.version)
    return current


def _save_step(query, user, note):
    query._history_user = user
    if note:
        query._change_reason = note
    try:
        with transaction.atomic():
            query.save()
    except IntegrityError:
        raise ValidationError(
            "Another unresolved query of this rule is open on this record; answer or close that one instead."
        ) from None
    return query


def record_of(record_model, record_id):
    """The clinical record a query is about (any centre: callers check access), or ``None``."""
    from django.apps import apps

    if record_model not in DATA_QUERY_RECORD_MODELS:
        return None
    model = apps.get_model(record_model)
    return model._base_manager.filter(pk=record_id).first()


def field_choices(record_model):
    """[(name, label)] of the fields a query may name on a record of ``record_model``."""
    from django.apps import apps

    model = apps.get_model(record_model)
    return [
        (f.name, str(f.verbose_name))
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name != "version"
    ]


def _patient_and_implantation(record):
    if isinstance(record, Patient):
        return record, None
    if isinstance(record, Implantation):
        return record.patient, record
    implantation = getattr(record, "implantation", None)
    if implantation is not None:
        return implantation.patient, implantation
    return record.patient, None


@transaction.atomic
def raise_query(record, *, user, message, field_name=""):
    """The coordinator's query about ``record`` (any clinical record), or one of its fields."""
    if not access.can_raise_data_query(user):
        raise PermissionDenied(COORDINATOR_ONLY)
    label = record._meta.label_lower
    errors = {}
    if label not in DATA_QUERY_RECORD_MODELS or record.pk is None:
        errors["record_model"] = (
            "A query is about a saved clinical record (patient, implantation or one of its records)."
        )
    elif field_name and field_name not in dict(field_choices(label)):
        try:
            record._meta.get_field(field_name)
            errors["field_name"] = f"'{field_name}' is not a field a data manager enters."
        except FieldDoesNotExist:
            errors["field_name"] = f"A {record._meta.verbose_name} has no field '{field_name}'."
    message = (message or "").strip()
    if not message:
        errors["message"] = "Write the question."
    if errors:
        raise ValidationError(errors)
    patient, implantation = _patient_and_implantation(record)
    query = DataQuery(
        patient=patient,
        implantation=implantation,
        record_model=label,
        record_id=record.pk,
        field_name=field_name,
        rule=MANUAL_RULE,
        message=message,
        raised_by=user,
    )
    query._history_user = user
    query.save()
    return query


@transaction.atomic
def answer_query(query, *, user, answer, reason=""):
    """The centre's answer (its data manager's, or the coordinator's); an open or answered query only."""
    query = _locked(query)
    if not access.can_answer_data_query(user, query.patient.centre_id):
        raise PermissionDenied(ANSWER_NOT_ALLOWED)
    answer = (answer or "").strip()
    if not answer:
        raise ValidationError({"answer": "Write the answer: what you corrected, or why the value stands."})
    if query.status == DataQueryStatus.CLOSED:
        raise ValidationError("This query is closed; the coordinator re-opens it if it needs another answer.")
    query.answer, query.answered_by, query.answered_at = answer, user, timezone.now()
    query.status = DataQueryStatus.ANSWERED
    return _save_step(query, user, reason)


@transaction.atomic
def close_query(query, *, user, note=""):
    """The coordinator closes an open or answered query (a rule closes its own in ``run_checks``)."""
    if not access.can_close_data_query(user):
        raise PermissionDenied(COORDINATOR_ONLY)
    query = _locked(query)
    if query.status == DataQueryStatus.CLOSED:
        raise ValidationError("This query is closed already.")
    query.status, query.closed_by, query.closed_at = DataQueryStatus.CLOSED, user, timezone.now()
    query.closed_automatically, query.close_note = False, (note or "").strip()
    return _save_step(query, user, note)


@transaction.atomic
def reopen_query(query, *, user, note=""):
    """The coordinator re-opens a closed query, or sends an answered one back for another answer.

    The earlier answer stays on the query (and in its history) until the centre answers again.
    """
    if not access.can_close_data_query(user):
        raise PermissionDenied(COORDINATOR_ONLY)
    query = _locked(query)
    if query.status == DataQueryStatus.OPEN:
        raise ValidationError("This query is open already.")
    query.status, query.closed_by, query.closed_at = DataQueryStatus.OPEN, None, None
    query.closed_automatically, query.close_note = False, ""
    return _save_step(query, user, note or "Re-opened")
