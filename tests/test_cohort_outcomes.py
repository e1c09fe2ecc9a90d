"""The cohort carries every fact the outcome definitions and the case-mix model read, and a run's
snapshot keeps all of them (a report is reproducible from its run alone)."""

import dataclasses
import datetime

import pytest

from registry.models import ComplicationType
from reports import snapshot
from reports.cohort import CohortRow, cohort

from . import factories
from .factories import days_after


@pytest.fixture
def case(centre_a):
    patient = factories.PatientFactory(
        centre=centre_a,
        consent_on=days_after(40),  # a retrospective entry
        birth_year=1958,
        liver_metastases_count=6,
        bilobar_disease=True,
        extrahepatic_disease=False,
        prior_systemic_lines=2,
    )
    surgeon = factories.SurgeonFactory(centre=centre_a, prior_pump_count=24)
    first = factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(0))
    # The same patient's replacement pump, by the same surgeon: number 26, with 25 placed before.
    replacement = factories.ImplantationFactory(
        patient=patient, surgeon=surgeon, implanted_on=days_after(100), concurrent_hepatectomy=True
    )
    factories.TreatmentFactory(implantation=first, given_on=days_after(15))
    factories.ComplicationFactory(
        implantation=first,
        type=ComplicationType.objects.get(code="catheter_occlusion"),
        onset_on=days_after(30),
        grade=2,
        clavien_dindo="II",
    )
    factories.ComplicationFactory(
        implantation=first,
        type=ComplicationType.objects.get(code="hepatic_artery_thrombosis"),
        onset_on=days_after(80),
        grade=4,
        clavien_dindo="IIIb",
        pump_lost=True,
    )
    factories.ComplicationFactory(
        implantation=replacement,
        type=ComplicationType.objects.get(code="biliary_sclerosis"),
        onset_on=days_after(300),
        grade=3,
        pump_lost=True,  # lost to a toxicity: the pump's use ended, it did not fail
    )
    factories.FollowUpFactory(
        implantation=replacement,
        contact_on=days_after(400),
        vital_status="dead",
        died_on=days_after(400),
    )
    factories.FollowUpFactory(
        implantation=first,
        contact_on=days_after(90),
        pump_ended_on=days_after(85),
        pump_end_reason="technical_complication",
    )
    return first, replacement


def by_id(rows):
    return {row.id: row for row in rows}


def test_cohort_rows_carry_the_outcome_and_case_mix_facts(case):
    first, replacement = case
    rows = by_id(cohort())
    a, b = rows[first.pk], rows[replacement.pk]
    assert a.entered_on == days_after(40) and b.entered_on == days_after(100)
    assert a.patient_first_implanted_on == b.patient_first_implanted_on == days_after(0)
    assert (a.pumps_before, b.pumps_before) == (24, 25)
    assert a.severe_complications == {"hepatic_artery_thrombosis": days_after(80)}
    assert set(a.complications) == {"catheter_occlusion", "hepatic_artery_thrombosis"}
    assert a.pump_failure_on == days_after(80)  # lost to a technical complication, before the end of use was noted
    assert a.pump_use_ended_on is None
    assert b.pump_failure_on is None and b.pump_use_ended_on == days_after(300)
    assert a.died_on == b.died_on == days_after(400)  # a death is the patient's
    assert a.age_at_implant == 2024 - 1958
    assert (a.liver_metastases_count, a.bilobar_disease, a.extrahepatic_disease, a.prior_systemic_lines) == (
        6,
        True,
        False,
        2,
    )
    assert b.concurrent_hepatectomy and not a.concurrent_hepatectomy
    assert a.device and a.approach and a.primary_tumour and a.ras_status


def test_the_snapshot_keeps_every_field_of_every_row(case):
    rows = cohort()
    loaded, types = snapshot.load(snapshot.build(datetime.datetime.now(datetime.UTC)))
    assert sorted(loaded, key=lambda r: r.id) == sorted(rows, key=lambda r: r.id)
    assert {f.name for f in dataclasses.fields(CohortRow)} <= set(dataclasses.asdict(loaded[0]))
    categories = {t["code"]: t["category"] for t in types}
    assert categories["biliary_sclerosis"] == "toxicity" and categories["catheter_occlusion"] == "technical"


def test_an_older_snapshot_without_the_new_fields_still_loads():
    import gzip
    import json

    old = {
        "as_of": "2026-11-01T00:00:00+00:00",
        "complication_types": [{"code": "catheter_occlusion", "name": "Occlusion", "catheter_related": True}],
        "rows": [
            {
                "id": 1,
                "patient_id": 1,
                "centre_id": 1,
                "centre_code": "A",
                "indication": "adjuvant",
                "sex": "female",
                "surgeon_id": 1,
                "surgeon_code": "S1",
                "implanted_on": "2024-01-01",
                "complications": {"catheter_occlusion": "2024-02-01"},
            }
        ],
    }
    [row], types = snapshot.load(gzip.compress(json.dumps(old).encode()))
    assert row.complications == {"catheter_occlusion": datetime.date(2024, 2, 1)}
    assert row.severe_complications == {} and row.consent_on is None
    assert types[0]["category"] == "technical"
