"""The history of an implantation's child records, for the implantation's history page (issue 13).

Doses, complications, liver tests, follow-ups and perfusion checks are edited on the implantation's
page, so its history shows theirs too: every history row of a record that hangs off the implantation,
deleted records included (their history rows keep the implantation's id), newest first, each with the
kind of record, what changed (``field: old -> new``, from django-simple-history's ``diff_against``),
who, when and the change reason.
"""

from .models import (
    Complication,
    ComplicationType,
    FollowUp,
    LiverTest,
    PerfusionCheck,
    Readmission,
    SystemicToxicity,
    Treatment,
)

CHILD_MODELS = (Treatment, Complication, LiverTest, FollowUp, PerfusionCheck, SystemicToxicity, Readmission)
NOT_SHOWN = ("version",)  # bumped at every save (sites.versioning): not a change anyone made
LIMIT = 500
ACTIONS = {"+": "Added", "~": "Changed", "-": "Deleted"}
EMPTY = "(empty)"


def _shown(field, value, names):
    if value is None or value == "":
        return EMPTY
    if field.is_relation:
        return names.get((field.related_model, value), str(value))
    if field.flatchoices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _changes(model, current, previous, names):
    if previous is None:
        return []
    delta = current.diff_against(previous, excluded_fields=NOT_SHOWN, foreign_keys_are_objs=False)
    out = []
    for change in delta.changes:
        field = model._meta.get_field(change.field)
        label = str(field.verbose_name)
        out.append(f"{label}: {_shown(field, change.old, names)} -> {_shown(field, change.new, names)}")
    return out


def _describe(model, row, names):
    when = getattr(row, model.date_field, None)
    if model is Complication:
        return f"{names.get((ComplicationType, row.type_id), 'complication')} on {when}"
    return f"{model.event_label} on {when}"


def child_history(implantation_id, *, limit=LIMIT):
    """``(rows, truncated)``: the child records' history rows of one implantation, newest first.

    Each row is a dict: ``kind``, ``record`` (what it is and its date), ``record_id``, ``action``
    (Added/Changed/Deleted), ``changes`` (list of "field: old -> new"), ``user``, ``date``, ``reason``.
    """
    names = {(ComplicationType, pk): name for pk, name in ComplicationType.objects.values_list("pk", "name")}
    rows = []
    for model in CHILD_MODELS:
        history = model.history.filter(implantation_id=implantation_id).select_related("history_user")
        previous_of = {}
        for row in history.order_by("id", "history_date", "history_id"):
            previous = previous_of.get(row.id)
            previous_of[row.id] = row
            user = row.history_user_name or (row.history_user.get_username() if row.history_user else "")
            rows.append(
                {
                    "kind": str(model.event_label),
                    "model": model._meta.model_name,
                    "record": _describe(model, row, names),
                    "record_id": row.id,
                    "action": ACTIONS.get(row.history_type, row.history_type),
                    "changes": _changes(model, row, previous, names) if row.history_type == "~" else [],
                    "user": user,
                    "date": row.history_date,
                    "reason": row.history_change_reason or "",
                    "history_id": row.history_id,
                }
            )
    rows.sort(key=lambda r: (r["date"], r["history_id"]), reverse=True)
    return rows[:limit], len(rows) > limit
