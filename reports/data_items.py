"""Data items: how many are recorded, known to be missing, or missing, in the report's records (issue 12).

The fields counted are those that may carry a missing-data code, each model's ``MISSING_DATA_FIELDS``
(``registry.missing_data``): the case mix (per patient), the operation (per implantation), the liver tests
(per panel) and the follow-up outcomes (per contact). Each field of each record is in one of three states:

* ``recorded``: it has a value;
* ``known_missing``: no value, and a code says why (unknown, not done, not applicable), split by code;
* ``missing``: neither: not entered.

The report's records are the ones it reads elsewhere (``reports.cohort``): the implantations entered by the
data cut (``created_at``), their liver tests and follow-ups entered by the cut, and the patients with such
an implantation. Values are read as they stand now (a correction made after the cut counts), like the
report's other live figures (late entries, cases to review). Counted for the centre and for the whole
registry, in SQL: one query per model, whatever the number of records.

Disclosure (``reports.rendering``'s rule for pooled figures): the centre can subtract its own counts from
the registry's, so a field's registry counts are shown only when the other centres' share of recorded,
known missing and missing passes ``reports.disclosure`` (no count of 1 to THRESHOLD − 1); otherwise they are
hidden together (``suppressed``). The split by code is given for the centre only.
"""

from django.db.models import Count, Q

from registry import missing_data
from registry.models import FollowUp, Implantation, LiverTest, Patient
from registry.vocabulary import MissingReason

from . import disclosure

STATES = (missing_data.RECORDED, missing_data.KNOWN_MISSING, missing_data.MISSING)


def _forms(data_cut):
    """(key, label, unit, model, the report's records of that model)."""
    implantations = Implantation.objects.filter(created_at__lte=data_cut)
    children = {"created_at__lte": data_cut, "implantation__in": implantations.values("pk")}
    return (
        (
            "patient",
            "Case mix",
            "patients",
            Patient,
            Patient.objects.filter(created_at__lte=data_cut, pk__in=implantations.values("patient_id")),
        ),
        ("implantation", "Operation", "implantations", Implantation, implantations),
        ("liver_test", "Liver tests", "liver test panels", LiverTest, LiverTest.objects.filter(**children)),
        ("follow_up", "Follow-up", "follow-up contacts", FollowUp, FollowUp.objects.filter(**children)),
    )


def _counts(model, records, centre_filter):
    """{"<field>__<state or code>__<centre | registry>": count, "n__<side>": records}, in one query."""
    aggregates = {"n__registry": Count("pk"), "n__centre": Count("pk", filter=centre_filter)}
    for name in model.MISSING_DATA_FIELDS:
        # A field asked only of some records (a resection margin, of a resection) is counted over those only.
        applies = getattr(model, "MISSING_DATA_APPLIES", {}).get(name, Q())
        for wanted in (missing_data.RECORDED, missing_data.MISSING, *MissingReason.values):
            condition = missing_data.state_q(model, name, wanted) & applies
            aggregates[f"{name}__{wanted}__registry"] = Count("pk", filter=condition)
            aggregates[f"{name}__{wanted}__centre"] = Count("pk", filter=condition & centre_filter)
    return records.order_by().aggregate(**aggregates)


def _side(counts, name, side):
    by_code = [
        {"code": code, "label": str(code_label), "n": counts[f"{name}__{code}__{side}"]}
        for code, code_label in MissingReason.choices
    ]
    return {
        "n": counts[f"n__{side}"],
        "recorded": counts[f"{name}__{missing_data.RECORDED}__{side}"],
        "known_missing": sum(b["n"] for b in by_code),
        "missing": counts[f"{name}__{missing_data.MISSING}__{side}"],
        "by_code": by_code,
    }


def _registry_as_shown(centre, registry):
    """The registry's counts, hidden as a unit when the other centres' share has a small count."""
    others = [registry[state] - centre[state] for state in STATES]
    suppressed = any(0 < count < disclosure.THRESHOLD for count in others)
    shown = {key: registry[key] for key in ("n", *STATES)}
    if suppressed:
        shown = dict.fromkeys(shown)
    return {**shown, "suppressed": suppressed}


def data_item_counts(centre, *, data_cut):
    """The data items of ``centre`` and of the registry, as of ``data_cut`` (plain JSON for the report).

    ``{"as_of", "codes": [{"code", "label"}], "forms": [{"key", "label", "unit", "items": [{"field",
    "label", "centre": {"n", "recorded", "known_missing", "missing", "by_code": [{"code", "label", "n"}]},
    "registry": {"n", "recorded", "known_missing", "missing", "suppressed"}}]}]}``. Four queries.
    """
    forms = []
    for key, label, unit, model, records in _forms(data_cut):
        # The path from a record to its centre, as the scoped querysets use it (sites.access).
        counts = _counts(model, records, Q(**{model.centre_lookup: centre}))
        items = []
        for name in model.MISSING_DATA_FIELDS:
            own = _side(counts, name, "centre")
            registry = _side(counts, name, "registry")
            text = missing_data.label(model, name)
            items.append(
                {
                    "field": name,
                    "label": text[:1].upper() + text[1:],
                    "centre": own,
                    "registry": _registry_as_shown(own, registry),
                }
            )
        forms.append({"key": key, "label": label, "unit": unit, "items": items})
    return {
        "as_of": data_cut.isoformat(),
        "codes": [{"code": code, "label": str(text)} for code, text in MissingReason.choices],
        "forms": forms,
    }
