"""The analysis dataset (issue 15, item 3): one row per implantation, every outcome from the outcome definitions.

Anchors: the ACS NSQIP participant use file (one flat, de-identified row per case, with a data dictionary)
and a trial group's locked analysis dataset. Every time-to-event column is the ``Subject`` the statistics
endpoints fit (``reports.outcomes``), so a Kaplan-Meier fitted on ``os_days``/``os_event`` gives the survival
endpoint's median; the 90-day binaries are the case-mix model's complete cases (``reports.casemix``).

Times are whole days from the outcome's origin; ``entry_day`` is the delayed entry (registry consent after the
origin) in the same days, for a left-truncated fit (``Surv(entry_day, os_days, os_event)`` in R; lifelines'
``entry=``). Patient-level outcomes (overall and hepatic progression-free survival) are on the patient's first
implantation only: a replacement pump's row leaves them empty (``first_of_patient`` 0), so a fit counts each
patient once, as the statistics do.

No calendar date reaches this table: the year of implantation, and days from an origin.

Not yet wired to an endpoint or to data releases (the rest of issue 15).
"""

from . import casemix, outcomes
from .outcomes import CENSORED, COMPETING, EVENT

STATUS_CODE = {CENSORED: 0, EVENT: 1, COMPETING: 2}


def _by_row(subjects):
    return {subject.row.id: subject for subject in subjects}


def _time(subject):
    return None if subject is None else int(subject.exit)


def analysis_rows(rows, complication_types, cut_date, codes):
    """[{column: value}] for cohort ``rows`` at ``cut_date``; ``codes(kind, id)`` gives the opaque code of a
    patient, centre, surgeon or implantation (the release's)."""
    survival = _by_row(outcomes.OVERALL_SURVIVAL.subjects(rows))
    hepatic = _by_row(outcomes.HEPATIC_PROGRESSION_FREE_SURVIVAL.subjects(rows))
    pump_failure = _by_row(outcomes.PUMP_FAILURE_OUTCOME.subjects(rows))
    firsts = {row.id for row in outcomes.first_of_each_patient(rows)}
    table = []
    for row in rows:
        os_subject, pfs_subject, failure = survival.get(row.id), hepatic.get(row.id), pump_failure.get(row.id)
        values = {
            "implantation": codes("implantation", row.id),
            "patient": codes("patient", row.patient_id),
            "centre": codes("centre", row.centre_id),
            "surgeon": codes("surgeon", row.surgeon_id),
            "first_of_patient": row.id in firsts,
            "implantation_year": row.implanted_on.year,
            "indication": row.indication,
            "device": row.device,
            "approach": row.approach,
            "surgeon_experience": "experienced" if outcomes.experienced(row) else "learning",
            "age_at_implant": row.age_at_implant,
        }
        for name in casemix_columns():
            values[name] = getattr(row, name)
        values.update(
            {
                "treated": row.treated,
                "days_to_first_dose": row.days_to_first_dose,
                "os_days": _time(os_subject),
                "os_event": None if os_subject is None else STATUS_CODE[os_subject.status],
                "hepatic_pfs_days": _time(pfs_subject),
                "hepatic_pfs_event": None if pfs_subject is None else STATUS_CODE[pfs_subject.status],
                "pump_failure_days": _time(failure),
                "pump_failure_event": None if failure is None else STATUS_CODE[failure.status],
                "technical_complication_90d": casemix.case_outcome("technical_90d", row, cut_date, complication_types),
                "severe_complication_90d": casemix.case_outcome("severe", row, cut_date, complication_types),
                "mortality_90d": casemix.case_outcome("mortality_90d", row, cut_date, complication_types),
                "converted_to_resection": row.resected,
                # Registry entry (consent) in days after implantation, the origin of every per-implantation
                # outcome and, on a patient's first row, of the patient's.
                "entry_day": (row.entered_on - row.implanted_on).days,
            }
        )
        table.append(values)
    return table


def casemix_columns():
    """The case-mix variables as recorded (the model bands them; an analyst may not want its bands)."""
    from .cohort import CASE_MIX_FIELDS

    return tuple(name for name in CASE_MIX_FIELDS if name not in {"indication", "device", "approach", "sex"}) + ("sex",)
