"""Missing-data codes: a value may be recorded as *unknown*, *not done* or *not applicable* (issue 12).

After REDCap's missing data codes, but stored apart: each field that may carry a code has a companion
``<field>_missing`` (``MissingReason``), so the field itself keeps its type in the API and the import
(an integer stays an integer, never the text "unknown"). A field is then in one of three states:

* ``recorded``: it has a value (and no code: the database refuses both);
* ``known_missing``: it has no value and a code says why;
* ``missing``: neither, which is what the completeness figures and the record status dashboard chase.

Each model lists its fields in ``MISSING_DATA_FIELDS``; everything else here reads that list.
"""

from django.db import models
from django.db.models import Q

from .vocabulary import MissingReason

SUFFIX = "_missing"
RECORDED = "recorded"
KNOWN_MISSING = "known_missing"
MISSING = "missing"
BOTH_MESSAGE = "Enter a value or a missing-data code, not both."
WHY = ": why missing"


def companion(field_name):
    return field_name + SUFFIX


def code_field(label):
    return models.CharField(
        max_length=15,
        choices=MissingReason.choices,
        blank=True,
        default="",
        verbose_name=f"{label}{WHY}",
        help_text="Only when there is no value: unknown, not done or not applicable.",
    )


def label(model, field_name):
    """The field's name for people, as its code field gives it (e.g. "operative time")."""
    return str(model._meta.get_field(companion(field_name)).verbose_name).removesuffix(WHY)


def _empty(value):
    return value is None or value == ""


def _value_is_empty(field_name, *, text):
    return Q(**{field_name: ""}) if text else Q(**{f"{field_name}__isnull": True})


def constraints(table, fields, *, text_fields=()):
    """Per field: the code is one of the vocabulary, and a value and a code never go together."""
    out = []
    for name in fields:
        code = companion(name)
        out.append(
            models.CheckConstraint(
                condition=Q(**{code: ""}) | Q(**{f"{code}__in": MissingReason.values}),
                name=f"{table}_{name}_missing_vocabulary",
            )
        )
        out.append(
            models.CheckConstraint(
                condition=Q(**{code: ""}) | _value_is_empty(name, text=name in text_fields),
                name=f"{table}_{name}_value_or_missing_code",
            )
        )
    return out


def errors(record):
    """{companion field: message} for each field given both a value and a code (for ``clean``)."""
    return {
        companion(name): BOTH_MESSAGE
        for name in record.MISSING_DATA_FIELDS
        if not _empty(getattr(record, name)) and getattr(record, companion(name))
    }


def value_state(value, code):
    """The state of a field from its value and its companion's code (e.g. a row of ``.values()``)."""
    if not _empty(value):
        return RECORDED
    return KNOWN_MISSING if code else MISSING


def state(record, field_name):
    return value_state(getattr(record, field_name), getattr(record, companion(field_name)))


def states(record):
    """{field: state} for every field of the record that may carry a code."""
    return {name: state(record, name) for name in record.MISSING_DATA_FIELDS}


def state_q(model, field_name, wanted, *, prefix=""):
    """A ``Q`` for the rows of ``model`` whose ``field_name`` is in state ``wanted``, for set-based counts.

    ``prefix`` reaches the model through a relation (``"patient__"``). ``wanted`` is ``RECORDED``,
    ``MISSING``, ``KNOWN_MISSING`` or one ``MissingReason`` code (known missing for that reason).
    """
    text = not model._meta.get_field(field_name).null
    empty = _value_is_empty(prefix + field_name, text=text)
    code = prefix + companion(field_name)
    if wanted == RECORDED:
        return ~empty
    if wanted == MISSING:
        return empty & Q(**{code: ""})
    if wanted == KNOWN_MISSING:
        return empty & ~Q(**{code: ""})
    if wanted in MissingReason.values:
        return empty & Q(**{code: wanted})
    raise ValueError(f"Unknown missing-data state {wanted!r}.")
