"""POST data for the admin's add/change forms, inline management forms included."""

from registry.admin import ImplantationAdmin, PatientAdmin

PATIENT_INLINE_PREFIXES = ["implantations", "systemic_lines"]
IMPLANTATION_INLINE_PREFIXES = [
    "perfusion_checks",
    "treatments",
    "complications",
    "liver_tests",
    "follow_ups",
    "systemic_toxicities",
    "readmissions",
]


def empty_inlines(prefixes, initial=None):
    data = {}
    for prefix in prefixes:
        count = (initial or {}).get(prefix, 0)
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": str(count),
                f"{prefix}-INITIAL_FORMS": str(count),
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return data


def patient_form(centre, **overrides):
    data = {
        "pseudonym": "",
        "centre": str(centre.pk),
        "birth_year": "1961",
        "sex": "male",
        "primary_tumour": "colorectal",
        "ras_status": "unknown",
        "braf_status": "unknown",
        "msi_status": "unknown",
        "prior_systemic_lines": "1",
        **empty_inlines(PATIENT_INLINE_PREFIXES),
    }
    data.update(overrides)
    return data


def implantation_form(patient, surgeon, **overrides):
    data = {
        "patient": str(patient.pk),
        "surgeon": str(surgeon.pk),
        "implanted_on": "2024-05-02",
        "indication": "adjuvant",
        "approach": "laparotomy",
        "device": "constant_flow_pump",
        "catheter_vessel": "gastroduodenal",
        "never_treated_reason": "",
        "never_treated_note": "",
        **empty_inlines(IMPLANTATION_INLINE_PREFIXES),
    }
    data.update(overrides)
    return data


def inline_rows(prefix, rows, initial=0):
    """Form data for ``rows`` (list of dicts) in the inline ``prefix``."""
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"{prefix}-{i}-{key}"] = value
    return data


assert PatientAdmin and ImplantationAdmin  # the prefixes above are these admins' inlines


# --- Any record's form, and the one way the tests submit a change or a deletion --------------------------

DELETE_REASON = "Entered in error"
# The inlines of each admin page (their formset prefixes): posted empty, so the page's rows stay as they are.
INLINE_PREFIXES = {
    "patient": PATIENT_INLINE_PREFIXES,
    "implantation": IMPLANTATION_INLINE_PREFIXES,
    "centre": ["report_recipients"],
}


def _form_value(field, value):
    from django.db import models

    if isinstance(field, models.BooleanField):
        if field.null:
            return {True: "true", False: "false"}.get(value, "unknown")
        return "on" if value else None  # an unticked box is not sent
    if value is None:
        return ""
    if isinstance(value, list):
        return value  # a set of codes (registry.fields.CodedSetField): one checkbox per code, [] sends none
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def record_form(record, **overrides):
    """The admin form of ``record`` as it stands (every editable field, inlines empty), with ``overrides``."""
    data = {}
    for field in record._meta.concrete_fields:
        if not field.editable or field.primary_key:
            continue
        value = getattr(record, field.attname)
        shown = _form_value(field, value)
        if shown is not None:
            data[field.name] = shown
    if getattr(record, "pk", None) and hasattr(record, "version"):
        data["opened_version"] = str(record.version)  # the hidden field the page carries
    data.update(empty_inlines(INLINE_PREFIXES.get(record._meta.model_name, [])))
    for name, value in overrides.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def delete(client, url):
    """Confirm the deletion page at ``url`` as a user does: ``post=yes`` and the reason asked for."""
    return client.post(url, {"post": "yes", "reason": DELETE_REASON})
