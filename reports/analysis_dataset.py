"""The analysis dataset (issue 15, item 3): one row per implantation, every outcome from the outcome definitions.

Anchors: the ACS NSQIP participant use file (one flat, de-identified row per case, with a data dictionary)
and a trial group's locked analysis dataset. Every time-to-event column is the ``Subject`` the statistics
endpoints fit (``reports.outcomes``), so a Kaplan-Meier fitted on ``os_days``/``os_event`` gives the survival
endpoint's median; the 90-day binaries are the case-mix model's complete cases (``reports.casemix``).

Times are whole days from the outcome's origin; ``entry_day`` is the delayed entry (registry consent after the
origin) in the same days, for a left-truncated fit from half a day before it
(``Surv(entry_day - 0.5, os_days, os_event)`` in R; lifelines' ``entry=``). Patient-level outcomes (overall and hepatic progression-free survival) are on the patient's first
implantation only: a replacement pump's row leaves them empty (``first_of_patient`` 0), so a fit counts each
patient once, as the statistics do.

No calendar date reaches this table: the year of implantation, and days from an origin.

``dataset(release)`` is a release's table (``GET /api/v1/analysis-dataset/``); ``COLUMNS`` its data dictionary.
"""

from registry import vocabulary

from . import casemix, outcomes
from .outcomes import CENSORED, COMPETING, EVENT

STATUS_CODE = {CENSORED: 0, EVENT: 1, COMPETING: 2}


def _by_row(subjects):
    return {subject.row.id: subject for subject in subjects}


def _flag(value):
    """0/1 (or None: not a complete case) as a boolean, like every other yes/no column."""
    return None if value is None else bool(value)


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
                "technical_complication_90d": _flag(
                    casemix.case_outcome("technical_90d", row, cut_date, complication_types)
                ),
                "severe_complication_90d": _flag(casemix.case_outcome("severe", row, cut_date, complication_types)),
                "mortality_90d": _flag(casemix.case_outcome("mortality_90d", row, cut_date, complication_types)),
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


# --- The data dictionary (GET /api/v1/analysis-dataset/dictionary/) ---------------------------------

OPAQUE = "An opaque code drawn for this release (another release gives unrelated codes)."
FROM_RECORD = "The record as entered (data dictionary: GET /api/v1/data-dictionary/)."
CHOICES = {
    "indication": vocabulary.Indication,
    "device": vocabulary.Device,
    "approach": vocabulary.Approach,
    "primary_tumour": vocabulary.PrimaryTumour,
    "ras_status": vocabulary.RasStatus,
    "catheter_vessel": vocabulary.CatheterVessel,
    "braf_status": vocabulary.BrafStatus,
    "msi_status": vocabulary.MsiStatus,
    "extrahepatic_sites": vocabulary.ExtrahepaticDiseaseSite,
    "sex": vocabulary.Sex,
}
STATUS_VALUES = "0 = censored; 1 = event"
TYPES = ("code", "integer", "decimal", "0/1", "0/1/2", "codes")


def _column(name, definition, type_, unit="", source="", allowed=""):
    if not allowed and name in CHOICES:
        allowed = "; ".join(f"{choice.value} = {choice.label}" for choice in CHOICES[name])
    return {
        "column": name,
        "definition": definition,
        "type": type_,
        "unit": unit,
        "allowed_values": allowed,
        "source": source or FROM_RECORD,
    }


def _outcome_source(outcome):
    return f"{outcome.label}: origin {outcome.origin}; {outcome.source}"


def _columns():
    os_, pfs, failure = (
        outcomes.OVERALL_SURVIVAL,
        outcomes.HEPATIC_PROGRESSION_FREE_SURVIVAL,
        outcomes.PUMP_FAILURE_OUTCOME,
    )
    model = casemix.OUTCOMES_BY_CODE
    boolean = "0 = no; 1 = yes"
    case_mix = {
        "liver_metastases_count": ("Number of liver metastases before the implantation.", "integer", "lesions"),
        "bilobar_disease": ("Metastases in both lobes.", "0/1", ""),
        "extrahepatic_disease": ("Extrahepatic disease at the implantation.", "0/1", ""),
        "prior_systemic_lines": ("Lines of systemic therapy before the implantation.", "integer", "lines"),
        "accessory_arteries_ligated": ("Accessory hepatic arteries ligated at the operation.", "0/1", ""),
        "concurrent_colorectal_resection": ("Colorectal resection at the same operation.", "0/1", ""),
        "concurrent_hepatectomy": ("Hepatectomy at the same operation.", "0/1", ""),
        "concurrent_ablation": ("Ablation at the same operation.", "0/1", ""),
        "ecog": ("ECOG performance status before the implantation.", "integer", "", "0 to 4"),
        "cea_ng_per_ml": ("CEA before the implantation.", "decimal", "ng/mL"),
        "clinical_risk_score": ("Fong clinical risk score (0 to 5).", "integer", "", "0 to 5"),
        "primary_tumour": ("The primary tumour.", "code", ""),
        "ras_status": ("RAS mutation status.", "code", ""),
        "catheter_vessel": ("The vessel the catheter was placed in.", "code", ""),
        "braf_status": ("BRAF status.", "code", ""),
        "msi_status": ("Microsatellite instability / mismatch-repair status.", "code", ""),
        "extrahepatic_sites": ("Sites of extrahepatic disease (in CSV: codes separated by ';').", "codes", ""),
        "sex": ("Sex.", "code", ""),
    }
    rows = [
        _column("implantation", "The implantation (one row each). " + OPAQUE, "code", source="The release."),
        _column("patient", "The patient. " + OPAQUE, "code", source="The release."),
        _column("centre", "The implanting centre. " + OPAQUE, "code", source="The release."),
        _column("surgeon", "The implanting surgeon. " + OPAQUE, "code", source="The release."),
        _column(
            "first_of_patient",
            "The patient's first implantation: patient-level outcomes (os_*, hepatic_pfs_*) are on this row only.",
            "0/1",
            allowed=boolean,
            source="Implantation dates within the patient.",
        ),
        _column("implantation_year", "The year of the implantation (no date is given).", "integer", "year"),
        _column("indication", "Why the pump was placed.", "code"),
        _column("device", "The pump's kind.", "code"),
        _column("approach", "The surgical approach.", "code"),
        _column(
            "surgeon_experience",
            f"'experienced' when the surgeon had placed at least "
            f"{outcomes.EXPERIENCE_THRESHOLD} pumps before this one (pre-registry count included), else "
            "'learning'.",
            "code",
            allowed="learning; experienced",
            source="Surgeon experience threshold (BRIEF: fewer complications after 25 pumps).",
        ),
        _column(
            "age_at_implant",
            "Age at the implantation in whole years (implantation year − birth year).",
            "integer",
            "years",
        ),
    ]
    for name in casemix_columns():
        definition, type_, unit, *allowed = case_mix[name]
        rows.append(
            _column(
                name,
                definition,
                type_,
                unit,
                allowed=(allowed[0] if allowed else (boolean if type_ == "0/1" else "")),
                source=FROM_RECORD + " A case-mix variable.",
            )
        )
    rows += [
        _column(
            "treated",
            "At least one HAI dose was given (held cycles excluded).",
            "0/1",
            allowed=boolean,
            source="HAI doses of the implantation.",
        ),
        _column(
            "days_to_first_dose",
            "Days from the implantation to the first HAI dose; empty if never treated.",
            "integer",
            "days",
            source="HAI doses of the implantation.",
        ),
        _column(
            "os_days",
            "Overall survival: days from the patient's first implantation to death or the last "
            "follow-up contact. Empty on a patient's later rows.",
            "integer",
            "days",
            source=_outcome_source(os_),
        ),
        _column("os_event", "Overall survival status.", "0/1", allowed=STATUS_VALUES, source=_outcome_source(os_)),
        _column(
            "hepatic_pfs_days",
            "Hepatic progression-free survival: days from the patient's first implantation "
            "to hepatic progression or death, whichever is first, or the last follow-up contact. Empty on a "
            "patient's later rows.",
            "integer",
            "days",
            source=_outcome_source(pfs),
        ),
        _column(
            "hepatic_pfs_event",
            "Hepatic progression-free survival status.",
            "0/1",
            allowed=STATUS_VALUES,
            source=_outcome_source(pfs),
        ),
        _column(
            "pump_failure_days",
            "Days from the implantation to pump failure, a competing event or censoring.",
            "integer",
            "days",
            source=_outcome_source(failure),
        ),
        _column(
            "pump_failure_event",
            f"Pump failure status. Competing: {failure.competing}.",
            "0/1/2",
            allowed="0 = censored; 1 = pump failure; 2 = competing event",
            source=_outcome_source(failure),
        ),
        _column(
            "technical_complication_90d",
            model["technical_90d"].label + ": 1 or 0 for a complete case (followed"
            " 90 days, or the event earlier); empty otherwise.",
            "0/1",
            allowed=boolean,
            source="The case-mix model's outcome (STATISTICS.md, Case-mix adjustment).",
        ),
        _column(
            "severe_complication_90d",
            model["severe"].label + " (Clavien-Dindo IIIa or more where recorded, "
            "otherwise CTCAE grade 3 or more): 1 or 0 for a complete case; empty otherwise.",
            "0/1",
            allowed=boolean,
            source="The case-mix model's outcome (STATISTICS.md, Case-mix adjustment).",
        ),
        _column(
            "mortality_90d",
            model["mortality_90d"].label + ": 1 or 0 for a complete case; empty otherwise.",
            "0/1",
            allowed=boolean,
            source="The case-mix model's outcome (STATISTICS.md, Case-mix adjustment).",
        ),
        _column(
            "converted_to_resection",
            "A liver resection was recorded after the implantation.",
            "0/1",
            allowed=boolean,
            source="Follow-up contacts (resection date).",
        ),
        _column(
            "entry_day",
            "Registry entry (consent) in days after the implantation, 0 when consent came first: "
            "the delayed entry for a left-truncated fit. A patient is at risk from the start of the entry day, "
            "so fit from half a day before it, as the registry does (R: Surv(entry_day - 0.5, os_days, "
            "os_event); lifelines: entry=entry_day - 0.5).",
            "integer",
            "days",
            source=outcomes.SOURCE_DELAYED_ENTRY,
        ),
    ]
    return rows


COLUMNS = _columns()
COLUMN_NAMES = [column["column"] for column in COLUMNS]
BOOLEAN_COLUMNS = [
    column["column"] for column in COLUMNS if column["type"] == "0/1" and not column["column"].endswith("_event")
]


def dataset(release):
    """The analysis dataset of ``release``: its rows in the order of their implantation codes (not entry order)."""
    from api.deidentify import for_release

    from . import releases

    def build():
        rows = list(releases.release_cohort(release).values())
        codes = for_release(release).encode
        table = analysis_rows(
            rows, releases.release_complication_types(release), releases.release_cut_date(release), codes
        )
        return sorted(table, key=lambda row: row["implantation"])

    return releases.kept(("dataset", release.storage), build)
