"""The MSKCC FUDR dose-modification table (registry.data_quality; Kemeny et al., N Engl J Med 1999, appendix):
every threshold, on and just below it, in the registry's units (bilirubin in µmol/L, 1 mg/dL = 17.1 µmol/L),
as seeded by migration 0010 and as the coordinator adjusts it."""

import datetime
import importlib
from decimal import Decimal

import pytest

from registry import data_quality, rules
from registry.data_quality import current_bands, fudr_dose_percent, published_bands, required_fudr_dose
from registry.data_quality_services import run_checks
from registry.models import DataQuery, FudrDoseBand

from . import factories

HOLD = 0

# (analyte, reference, value at the next fill, % of the FUDR dose)
BOUNDARIES = [
    # AST, reference < 50 U/L: 2 ×, 3 ×, 4 ×
    ("ast", 40, 79, 100),
    ("ast", 40, 80, 80),
    ("ast", 40, 119, 80),
    ("ast", 40, 120, 50),
    ("ast", 40, 159, 50),
    ("ast", 40, 160, HOLD),
    ("ast", 49, 97, 100),  # 49 is still under 50: 1.98 ×
    ("ast", 49, 98, 80),
    # AST, reference >= 50 U/L: 1.5 ×, 2 ×, 3 ×
    ("ast", 50, 74, 100),
    ("ast", 50, 75, 80),
    ("ast", 50, 99, 80),
    ("ast", 50, 100, 50),
    ("ast", 50, 149, 50),
    ("ast", 50, 150, HOLD),
    # ALP, reference < 90 U/L: 1.5 ×, 2 ×
    ("alp", 80, 119, 100),
    ("alp", 80, 120, 50),
    ("alp", 80, 159, 50),
    ("alp", 80, 160, HOLD),
    ("alp", 89, 133, 100),
    ("alp", 89, 134, 50),
    # ALP, reference >= 90 U/L: 1.2 ×, 1.5 ×
    ("alp", 90, 107, 100),
    ("alp", 90, 108, 50),
    ("alp", 90, 134, 50),
    ("alp", 90, 135, HOLD),
    # Bilirubin, reference < 1.2 mg/dL (20.52 µmol/L): 1.5 ×, 2 ×
    ("bilirubin", "20.4", "30.5", 100),
    ("bilirubin", "20.4", "30.6", 50),
    ("bilirubin", "20.4", "40.7", 50),
    ("bilirubin", "20.4", "40.8", HOLD),
    # Bilirubin, reference >= 1.2 mg/dL: 1.2 ×, 1.5 ×
    ("bilirubin", "25.0", "29.9", 100),
    ("bilirubin", "25.0", "30.0", 50),
    ("bilirubin", "25.0", "37.4", 50),
    ("bilirubin", "25.0", "37.5", HOLD),
    # The 1.2 mg/dL cut of the reference, in µmol/L: 20.5 is 1.199 mg/dL, 20.6 is 1.205 mg/dL.
    ("bilirubin", "20.5", "24.8", 100),  # 1.21 × a reference under the cut: full dose
    ("bilirubin", "20.6", "24.8", 50),  # 1.20 × a reference over it: 50%
]


@pytest.mark.parametrize("analyte,reference,value,percent", BOUNDARIES, ids=lambda v: str(v))
def test_each_threshold_of_the_published_table(analyte, reference, value, percent):
    assert fudr_dose_percent(analyte, Decimal(str(reference)), Decimal(str(value)), published_bands()) == percent


@pytest.mark.django_db
@pytest.mark.parametrize("analyte,reference,value,percent", BOUNDARIES, ids=lambda v: str(v))
def test_the_seeded_table_gives_the_same_answers(analyte, reference, value, percent):
    assert fudr_dose_percent(analyte, Decimal(str(reference)), Decimal(str(value)), current_bands()) == percent


def test_the_bilirubin_cut_is_1_2_mg_per_dl_in_umol_per_l():
    cuts = {b.reference_from for b in published_bands() if b.analyte == "bilirubin"} - {Decimal("0")}
    assert cuts == {Decimal("1.2") * data_quality.MG_PER_DL_BILIRUBIN_IN_UMOL_PER_L}


def test_the_most_restrictive_analyte_decides_and_a_missing_or_zero_reference_is_left_out():
    bands = published_bands()
    percent, reasons = required_fudr_dose(
        {"ast": 40, "alp": 80, "bilirubin": Decimal("10")}, {"ast": 85, "alp": 125, "bilirubin": Decimal("10")}, bands
    )
    assert percent == 50 and [(a, p) for a, _, _, p in reasons] == [("ast", 80), ("alp", 50)]
    assert required_fudr_dose({"ast": None, "alp": 0}, {"ast": 500, "alp": 500}, bands) == (100, [])


@pytest.mark.django_db
def test_migration_seeds_the_published_table():
    migration = importlib.import_module("registry.migrations.0010_fudr_dose_bands_and_nightly_checks")
    assert migration.BANDS == data_quality.PUBLISHED_FUDR_TABLE
    key = lambda b: (b.analyte, b.reference_from, b.ratio_from)  # noqa: E731
    assert sorted(current_bands(), key=key) == sorted(published_bands(), key=key)


@pytest.mark.django_db
def test_the_coordinators_adjusted_threshold_is_the_one_the_rule_applies(centre_a):
    today = rules.today()
    implantation = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=today - datetime.timedelta(80))
    factories.FollowUpFactory(implantation=implantation, contact_on=today)
    for days, ast in ((62, 40), (47, 110)):  # 2.75 × the reference: 80% in the published table
        factories.LiverTestFactory(
            implantation=implantation, measured_on=today - datetime.timedelta(days), ast_u_per_l=ast
        )
    for days in (60, 46):
        factories.TreatmentFactory(implantation=implantation, given_on=today - datetime.timedelta(days))

    run_checks(rule_codes=["liver_tests_rising_without_hold"])
    assert "calls for 80% of the dose" in DataQuery.objects.get().message
    DataQuery.objects.all().delete()

    # The coordinator halves the dose from 2.5 × (AST under 50): the 80% band ends there, the 50% band starts there.
    FudrDoseBand.objects.filter(analyte="ast", reference_from=0, ratio_from=2).update(ratio_below=Decimal("2.5"))
    FudrDoseBand.objects.filter(analyte="ast", reference_from=0, ratio_from=3).update(ratio_from=Decimal("2.5"))
    run_checks(rule_codes=["liver_tests_rising_without_hold"])

    assert "calls for 50% of the dose" in DataQuery.objects.get().message
