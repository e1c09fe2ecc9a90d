"""POST data for the admin's add/change forms, inline management forms included."""

from registry.admin import ImplantationAdmin, PatientAdmin

PATIENT_INLINE_PREFIXES = ["implantations", "systemic_lines"]
IMPLANTATION_INLINE_PREFIXES = ["perfusion_checks", "treatments", "complications", "liver_tests", "follow_ups"]


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
