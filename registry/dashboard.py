"""The record status dashboard (issue 12, after REDCap's record status dashboard): what each cell says.

One row per implantation, one column per form of the implantation page. Each cell is in one of
``STATES``; the rules are here, and only here (the admin page, ``registry.admin_dashboard``, only
shows and filters what ``record_status_rows`` returns). "Today" is ``registry.rules.today()``.

States
------
``complete``
    The form holds what the registry expects of it (rule per column, below).
``incomplete``
    Not complete, but not late either: something is still to be entered.
``overdue``
    Not complete, and the registry's deadline for it has passed.
``query``
    An unresolved data query (open or answered: ``DataQuery.objects.unresolved()``) is about this
    implantation and this form. It wins over the other three: the cell needs the centre's answer
    first. A query points at a record by ``record_model`` (and ``record_id``); the column is the
    form of that model. The two rules whose queries are raised on the implantation record itself
    but are about another form go to that form: ``no_first_dose_28_days`` to HAI doses and
    ``follow_up_overdue`` to follow-up. Queries about the patient or a systemic therapy line
    have no column here.

Columns
-------
``operation`` (the implantation record itself)
    Complete when the operative fields the model leaves empty until known are all answered:
    operative time, blood loss and length of stay (``OPERATION_REQUIRED_FIELDS``) each hold a
    value or a missing-data code (unknown, not done, not applicable: known to be missing,
    ``registry.missing_data``); incomplete when one is neither. Never overdue.
``perfusion`` (``PerfusionCheck``)
    Complete when at least one perfusion check exists; overdue when none exists
    ``PERFUSION_DUE_DAYS`` (14) days or more after the implantation; incomplete before.
``doses`` (``Treatment``)
    Complete when at least one HAI dose was given (a held cycle is not one) or the implantation
    has a never-treated reason. Overdue by the data-quality rule ``no_first_dose_28_days``
    (``reports.selectors.untreated_without_reason``: neither, 28 days or more after the
    implantation), reused, not re-implemented. Incomplete otherwise.
``complications`` (``Complication``)
    Complications are recorded as they happen, so no complication row is not missing data:
    the form is complete once a follow-up exists (someone has looked at the patient since the
    operation), incomplete before. Never overdue (a missing follow-up is the follow-up column's
    overdue).
``liver_tests`` (``LiverTest``)
    Complete when a baseline liver test (``LiverTest.is_baseline``) exists; incomplete otherwise.
    Never overdue.
``follow_up`` (``FollowUp``)
    Overdue by the data-quality rule ``follow_up_overdue`` (``reports.selectors.overdue_follow_ups``,
    ``OVERDUE_AFTER_MONTHS`` = 6): no death recorded for the patient and the last contact more than
    6 calendar months ago, or no follow-up at all and the implantation more than 6 months old.
    Otherwise complete when a follow-up exists (the last contact is then within 6 months) or a
    death is recorded for the patient; incomplete when there is none yet and the implantation is
    less than 6 months old.

Set-based: ``record_status_rows`` runs four queries whatever the number of implantations (the
annotated rows, the two reused rules, and the unresolved queries).
"""

import datetime
from dataclasses import dataclass

from django.db.models import Exists, OuterRef
from django.utils import timezone

from . import missing_data, rules
from .models import DataQuery, FollowUp, LiverTest, PerfusionCheck, Treatment

COMPLETE = "complete"
INCOMPLETE = "incomplete"
OVERDUE = "overdue"
QUERY = "query"
STATES = {
    COMPLETE: "Complete",
    INCOMPLETE: "Incomplete",
    OVERDUE: "Overdue",
    QUERY: "Open query",
}

OPERATION_REQUIRED_FIELDS = ("operative_minutes", "blood_loss_ml", "length_of_stay_days")
PERFUSION_DUE_DAYS = 14
NO_FIRST_DOSE_RULE = "no_first_dose_28_days"
FOLLOW_UP_OVERDUE_RULE = "follow_up_overdue"


@dataclass(frozen=True)
class Column:
    key: str  # the GET parameter that filters on it, and the cell's key
    label: str
    record_model: str  # the model label a data query names
    anchor: str  # the inline on the implantation page ("" for the record itself)


COLUMNS = (
    Column("operation", "Operation", "registry.implantation", ""),
    Column("perfusion", "Perfusion", "registry.perfusioncheck", "perfusion_checks-group"),
    Column("doses", "HAI doses", "registry.treatment", "treatments-group"),
    Column("complications", "Complications", "registry.complication", "complications-group"),
    Column("liver_tests", "Liver tests", "registry.livertest", "liver_tests-group"),
    Column("follow_up", "Follow-up", "registry.followup", "follow_ups-group"),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)

# Queries raised on the implantation record by a rule that is about another form.
_RULE_COLUMNS = {NO_FIRST_DOSE_RULE: "doses", FOLLOW_UP_OVERDUE_RULE: "follow_up"}
_MODEL_COLUMNS = {c.record_model: c.key for c in COLUMNS}


def query_column(record_model, rule):
    """The column a data query about ``record_model`` raised by ``rule`` shows in (None: no column)."""
    return _RULE_COLUMNS.get(rule) or _MODEL_COLUMNS.get(record_model)


def _data_cut(today):
    """The end of ``today``: the reused rules then count every row entered so far, as of ``today``."""
    return timezone.make_aware(datetime.datetime.combine(today, datetime.time.max))


def _answered(row, name):
    """A value, or a missing-data code (known missing): either answers the field."""
    return missing_data.value_state(row[name], row[missing_data.companion(name)]) != missing_data.MISSING


def record_status_rows(implantations, *, today=None):
    """One dict per implantation of ``implantations`` (a scoped queryset), in its order.

    Each dict: ``implantation_id``, ``pseudonym``, ``centre_code``, ``implanted_on`` and ``cells``,
    ``{column key: state}`` for every column of ``COLUMNS``.
    """
    from reports.selectors import overdue_follow_ups, untreated_without_reason

    today = today or rules.today()
    cut = _data_cut(today)
    implantation = OuterRef("pk")
    rows = list(
        implantations.order_by("-implanted_on", "-id")
        .annotate(
            has_perfusion=Exists(PerfusionCheck.objects.filter(implantation=implantation)),
            has_dose=Exists(Treatment.objects.given().filter(implantation=implantation)),
            has_follow_up=Exists(FollowUp.objects.filter(implantation=implantation)),
            has_baseline=Exists(LiverTest.objects.filter(implantation=implantation, is_baseline=True)),
            died=Exists(FollowUp.objects.filter(implantation__patient=OuterRef("patient"), died_on__isnull=False)),
        )
        .values(
            "id",
            "implanted_on",
            "patient__pseudonym",
            "patient__centre__code",
            "never_treated_reason",
            *OPERATION_REQUIRED_FIELDS,
            *(missing_data.companion(name) for name in OPERATION_REQUIRED_FIELDS),
            "has_perfusion",
            "has_dose",
            "has_follow_up",
            "has_baseline",
            "died",
        )
    )
    dose_overdue = {c["implantation_id"] for c in untreated_without_reason(implantations, data_cut=cut)}
    follow_up_overdue = {c["implantation_id"] for c in overdue_follow_ups(implantations, data_cut=cut)}
    queried = set()
    for implantation_id, record_model, rule in (
        DataQuery.objects.unresolved()
        .filter(implantation__in=implantations.values("pk"))
        .order_by()
        .values_list("implantation_id", "record_model", "rule")
        .distinct()
    ):
        column = query_column(record_model, rule)
        if column:
            queried.add((implantation_id, column))

    perfusion_due = today - datetime.timedelta(days=PERFUSION_DUE_DAYS)
    out = []
    for row in rows:
        pk = row["id"]
        cells = {
            "operation": COMPLETE if all(_answered(row, name) for name in OPERATION_REQUIRED_FIELDS) else INCOMPLETE,
            "perfusion": COMPLETE
            if row["has_perfusion"]
            else (OVERDUE if row["implanted_on"] <= perfusion_due else INCOMPLETE),
            "doses": COMPLETE
            if row["has_dose"] or row["never_treated_reason"]
            else (OVERDUE if pk in dose_overdue else INCOMPLETE),
            "complications": COMPLETE if row["has_follow_up"] else INCOMPLETE,
            "liver_tests": COMPLETE if row["has_baseline"] else INCOMPLETE,
            "follow_up": OVERDUE
            if pk in follow_up_overdue
            else (COMPLETE if row["has_follow_up"] or row["died"] else INCOMPLETE),
        }
        for key in COLUMN_KEYS:
            if (pk, key) in queried:
                cells[key] = QUERY
        out.append(
            {
                "implantation_id": pk,
                "pseudonym": row["patient__pseudonym"],
                "centre_code": row["patient__centre__code"],
                "implanted_on": row["implanted_on"],
                "cells": cells,
            }
        )
    return out


def filter_rows(rows, states):
    """The rows whose cells match ``states`` (``{column key: state}``; unknown keys or states ignored)."""
    wanted = {k: v for k, v in states.items() if k in COLUMN_KEYS and v in STATES}
    return [r for r in rows if all(r["cells"][k] == v for k, v in wanted.items())]
