"""The case-mix model (reports.casemix): complete cases, coding, fitting, stored predictions, O and E.

Pure tests on cohort rows built directly, except the last, which reads a real cohort. The model's
recovery of known coefficients is checked on data simulated from a known logistic model, and its
coding against an independent patsy/statsmodels formula fit of the same data.
"""

import datetime
import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy.special import expit

from registry.models import ComplicationType, Implantation
from registry.vocabulary import COMPLICATION_TYPES
from reports import casemix
from reports.cohort import CohortRow, cohort

from . import factories
from .factories import days_after

DAY0 = datetime.date(2022, 1, 1)
CUT = DAY0 + datetime.timedelta(days=800)
VOCABULARY = [
    {"code": c, "name": n, "category": cat, "catheter_related": cr} for c, n, _, cat, cr in COMPLICATION_TYPES
]
TECHNICAL_CODE = "catheter_occlusion"
OTHER_CODE = "other"  # category 'other': not technical


def day(n, base=DAY0):
    return base + datetime.timedelta(days=n)


_ids = iter(range(1, 10**7))


def row(**kwargs):
    """An implantation on ``implanted`` (days after DAY0; default 0), with the registry's default case mix."""
    implanted = day(kwargs.pop("implanted", 0))
    values = {
        "id": next(_ids),
        "patient_id": None,
        "centre_id": 1,
        "centre_code": "A",
        "indication": "unresectable_first_line",
        "sex": "female",
        "surgeon_id": 1,
        "surgeon_code": "S1",
        "implanted_on": implanted,
        "device": "constant_flow_pump",
        "approach": "laparotomy",
        "patient_first_implanted_on": implanted,
        "last_contact_on": implanted + datetime.timedelta(days=400),
        "follow_up_count": 1,
    }
    values.update(kwargs)
    values["patient_id"] = values["patient_id"] or values["id"]
    return CohortRow(**values)


def outcome(code, r, cut=CUT):
    return casemix.case_outcome(code, r, cut, VOCABULARY)


# --- complete-window rules ---------------------------------------------------------------


def test_a_window_still_open_at_the_cut_is_left_out_and_one_ended_on_the_cut_is_complete():
    assert outcome("technical_90d", row(), cut=day(89)) is None
    assert outcome("technical_90d", row(), cut=day(90)) == 0
    assert outcome("severe", row(), cut=day(89)) is None
    assert outcome("mortality_90d", row(), cut=day(89)) is None
    assert outcome("mortality_90d", row(), cut=day(90)) == 0


def test_an_event_inside_an_open_window_is_a_complete_case():
    r = row(complications={TECHNICAL_CODE: day(10)}, severe_complications={OTHER_CODE: day(20)}, died_on=day(30))
    assert outcome("technical_90d", r, cut=day(40)) == 1
    assert outcome("severe", r, cut=day(40)) == 1
    assert outcome("mortality_90d", r, cut=day(40)) == 1


def test_the_window_is_day_0_to_day_90():
    assert outcome("technical_90d", row(complications={TECHNICAL_CODE: day(0)})) == 1
    assert outcome("technical_90d", row(complications={TECHNICAL_CODE: day(90)})) == 1
    assert outcome("technical_90d", row(complications={TECHNICAL_CODE: day(91)})) == 0
    assert outcome("mortality_90d", row(died_on=day(90))) == 1
    assert outcome("mortality_90d", row(died_on=day(91))) == 0


def test_only_technical_types_count_for_technical_and_any_severe_type_for_severe():
    r = row(complications={OTHER_CODE: day(5)}, severe_complications={OTHER_CODE: day(5)})
    assert outcome("technical_90d", r) == 0
    assert outcome("severe", r) == 1
    # A technical complication that was not severe.
    r = row(complications={TECHNICAL_CODE: day(5)})
    assert outcome("technical_90d", r) == 1
    assert outcome("severe", r) == 0


def test_a_death_inside_the_window_without_the_complication_is_left_out_but_is_a_death():
    r = row(died_on=day(40))
    assert outcome("technical_90d", r) is None
    assert outcome("severe", r) is None
    assert outcome("mortality_90d", r) == 1
    # Open window too.
    assert outcome("technical_90d", r, cut=day(50)) is None
    # A complication on the day of death counts; one dated after it does not.
    assert outcome("technical_90d", row(died_on=day(40), complications={TECHNICAL_CODE: day(40)})) == 1
    assert outcome("technical_90d", row(died_on=day(40), complications={TECHNICAL_CODE: day(41)})) is None
    # A death after the window: the window was complete and free of the event.
    assert outcome("technical_90d", row(died_on=day(120))) == 0
    assert outcome("mortality_90d", row(died_on=day(120))) == 0


def test_a_retrospective_entry_is_left_out():
    late = row(consent_on=day(91), complications={TECHNICAL_CODE: day(100)})
    assert late.entered_on == day(91)
    for code in ("technical_90d", "severe", "mortality_90d", "never_treated"):
        assert outcome(code, late) is None
    on_time = row(consent_on=day(90))
    assert outcome("technical_90d", on_time) == 0
    assert outcome("mortality_90d", on_time) == 0
    assert outcome("never_treated", row(consent_on=day(61))) is None
    assert outcome("never_treated", row(consent_on=day(60))) == 1


def test_never_treated_counts_pumps_implanted_at_least_60_days_before_the_cut():
    assert outcome("never_treated", row(), cut=day(59)) is None
    assert outcome("never_treated", row(), cut=day(60)) == 1
    assert outcome("never_treated", row(first_dose_on=day(17)), cut=day(60)) == 0
    # A death before any dose is never treated (intention to treat).
    assert outcome("never_treated", row(died_on=day(5))) == 1
    # A dose after the cut has not happened yet at the cut.
    assert outcome("never_treated", row(first_dose_on=day(70)), cut=day(65)) == 1


def test_implantations_and_dates_after_the_cut_are_not_counted():
    assert outcome("technical_90d", row(implanted=100), cut=day(99)) is None
    assert outcome("never_treated", row(implanted=100), cut=day(99)) is None
    # An onset or a death dated after the cut: the window is still open at the cut.
    assert outcome("technical_90d", row(complications={TECHNICAL_CODE: day(50)}), cut=day(40)) is None
    assert outcome("mortality_90d", row(died_on=day(50)), cut=day(40)) is None


def test_a_complication_before_the_implantation_is_not_this_implantation_s_event():
    assert outcome("technical_90d", row(complications={TECHNICAL_CODE: day(-3)})) == 0


def test_the_outcomes_constant_carries_codes_labels_and_definitions():
    assert casemix.OUTCOME_CODES == ("technical_90d", "severe", "mortality_90d", "never_treated")
    for o in casemix.OUTCOMES:
        assert o.label and len(o.definition) > 80
    methods = casemix.methods()
    assert [o["code"] for o in methods["outcomes"]] == list(casemix.OUTCOME_CODES)
    assert "ridge" in methods["model"]
    json.dumps(methods)


# --- predictor coding --------------------------------------------------------------------


def levels(r):
    return {p.name: p.level(r) for p in casemix.PREDICTORS}


def test_predictor_bands_and_unknown_levels():
    r = row(
        prior_systemic_lines=3,
        liver_metastases_count=4,
        age_at_implant=59,
        extrahepatic_disease=True,
        bilobar_disease=False,
        concurrent_hepatectomy=True,
    )
    assert levels(r) == {
        "indication": "unresectable_first_line",
        "device": "constant_flow_pump",
        "approach": "laparotomy",
        "concurrent_colorectal_resection": "no",
        "concurrent_hepatectomy": "yes",
        "concurrent_ablation": "no",
        "prior_systemic_lines": "2+",
        "extrahepatic_disease": "yes",
        "bilobar_disease": "no",
        "liver_metastases": "2-4",
        "age": "50-59",
        "sex": "female",
        "ecog": "unknown",
        "cea": "unknown",
        "clinical_risk_score": "unknown",
        "braf_status": "unknown",
        "msi_status": "unknown",
        "lung_only_extrahepatic": "no",  # extrahepatic disease, its sites not recorded
    }
    bands = casemix._PREDICTORS_BY_NAME
    for count, band in [(0, "0"), (1, "1"), (2, "2-4"), (5, "5-9"), (9, "5-9"), (10, "10+"), (None, "unknown")]:
        assert bands["liver_metastases"].level(row(liver_metastases_count=count)) == band
    for age, band in [(49, "<50"), (50, "50-59"), (60, "60-69"), (69, "60-69"), (70, "70+"), (None, "unknown")]:
        assert bands["age"].level(row(age_at_implant=age)) == band
    for lines, band in [(0, "0"), (1, "1"), (2, "2+"), (None, "unknown")]:
        assert bands["prior_systemic_lines"].level(row(prior_systemic_lines=lines)) == band
    blank = row(indication="", sex="", device="", approach="", extrahepatic_disease=None, bilobar_disease=None)
    assert {levels(blank)[name] for name in ("indication", "sex", "device", "approach")} == {"unknown"}
    assert levels(blank)["extrahepatic_disease"] == levels(blank)["bilobar_disease"] == "unknown"
    # A value the vocabulary does not know is unknown too.
    assert levels(row(indication="something_new"))["indication"] == "unknown"


def test_the_richer_case_mix_predictors_code_rows_as_intended():
    p = casemix._PREDICTORS_BY_NAME
    for ecog, level in [(0, "0"), (1, "1"), (2, "2+"), (4, "2+"), (None, "unknown")]:
        assert p["ecog"].level(row(ecog=ecog)) == level
    # Normal below 5 ng/mL; Fong's point is for CEA strictly above 200, so 200 itself is in the middle band.
    for cea, level in [(0.0, "<5"), (4.9, "<5"), (5.0, "5-200"), (200.0, "5-200"), (200.1, ">200"), (None, "unknown")]:
        assert p["cea"].level(row(cea_ng_per_ml=cea)) == level
    for score, level in [(0, "0-2"), (2, "0-2"), (3, "3-5"), (5, "3-5"), (None, "unknown")]:
        assert p["clinical_risk_score"].level(row(clinical_risk_score=score)) == level
    for status, level in [("wild_type", "wild_type"), ("v600e", "v600e"), ("unknown", "unknown"), ("", "unknown")]:
        assert p["braf_status"].level(row(braf_status=status)) == level
    for status, level in [("mss", "mss"), ("msi_high", "msi_high"), ("unknown", "unknown"), ("", "unknown")]:
        assert p["msi_status"].level(row(msi_status=status)) == level
    assert p["braf_status"].levels == ("wild_type", "v600e", "unknown")  # the vocabulary's unknown listed once
    assert [
        (q.reference) for q in (p["ecog"], p["cea"], p["clinical_risk_score"], p["braf_status"], p["msi_status"])
    ] == [
        "0",
        "<5",
        "0-2",
        "wild_type",
        "mss",
    ]
    lung = p["lung_only_extrahepatic"]
    assert lung.level(row(extrahepatic_disease=True, extrahepatic_sites=["lung"])) == "yes"
    assert lung.level(row(extrahepatic_disease=True, extrahepatic_sites=["lung", "peritoneum"])) == "no"
    assert lung.level(row(extrahepatic_disease=True, extrahepatic_sites=["bone"])) == "no"
    assert lung.level(row(extrahepatic_disease=False)) == "no"
    # Unrecorded sites, and an unknown status (extrahepatic_disease's own unknown), are not repeated here:
    # either would alias a term of extrahepatic_disease.
    assert lung.level(row(extrahepatic_disease=True, extrahepatic_sites=[])) == "no"
    assert lung.level(row(extrahepatic_disease=None)) == "no"
    assert p["extrahepatic_disease"].level(row(extrahepatic_disease=None)) == "unknown"


def test_the_richer_case_mix_is_read_from_the_patient_in_the_cohort(centre_a):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a,
        patient__ecog=1,
        patient__cea_ng_per_ml="250.0",
        patient__clinical_risk_score=3,
        patient__braf_status="v600e",
        patient__msi_status="msi_high",
        patient__extrahepatic_disease=True,
        patient__extrahepatic_sites=["lung"],
    )
    [r] = cohort(Implantation.objects.filter(pk=implantation.pk))
    assert {name: levels(r)[name] for name in ("ecog", "cea", "clinical_risk_score", "braf_status", "msi_status")} == {
        "ecog": "1",
        "cea": ">200",
        "clinical_risk_score": "3-5",
        "braf_status": "v600e",
        "msi_status": "msi_high",
    }
    assert levels(r)["lung_only_extrahepatic"] == "yes"
    assert r.cea_ng_per_ml == 250.0 and isinstance(r.cea_ng_per_ml, float)  # the snapshot is JSON


def test_every_predictor_declares_its_reference_among_its_levels_and_unknown_last():
    names = [p.name for p in casemix.PREDICTORS]
    assert len(names) == len(set(names))
    for p in casemix.PREDICTORS:
        assert p.reference in p.levels
        assert p.levels[-1] == "unknown"


# --- simulation from a known model -------------------------------------------------------

# Raw values and their probabilities; "" or None is a missing value (the unknown level).
DISTRIBUTIONS = {
    "indication": (
        ["unresectable_first_line", "unresectable_after_progression", "adjuvant", "unresectable_icca", "other", ""],
        [0.35, 0.22, 0.25, 0.1, 0.05, 0.03],
    ),
    "device": (["constant_flow_pump", "programmable_pump", "arterial_port", ""], [0.6, 0.2, 0.17, 0.03]),
    "approach": (["laparotomy", "laparoscopic", "robotic", "percutaneous"], [0.6, 0.2, 0.1, 0.1]),
    "sex": (["female", "male", "other", ""], [0.45, 0.47, 0.04, 0.04]),
}
# The true log odds ratios, by the test's own reading of the bands (not the module's).
TRUE_INTERCEPT = -2.0
TRUE = {
    "indication[unresectable_after_progression]": 0.3,
    "indication[adjuvant]": -0.4,
    "indication[unresectable_icca]": 0.5,
    "indication[other]": 0.2,
    "indication[unknown]": 0.1,
    "device[programmable_pump]": 0.3,
    "device[arterial_port]": 0.6,
    "device[unknown]": 0.0,
    "approach[laparoscopic]": 0.4,
    "approach[robotic]": 0.5,
    "approach[percutaneous]": 0.8,
    "concurrent_colorectal_resection[yes]": 0.5,
    "concurrent_hepatectomy[yes]": 0.3,
    "concurrent_ablation[yes]": -0.2,
    "prior_systemic_lines[1]": 0.1,
    "prior_systemic_lines[2+]": 0.3,
    "prior_systemic_lines[unknown]": 0.2,
    "extrahepatic_disease[yes]": 0.4,
    "extrahepatic_disease[unknown]": 0.1,
    "bilobar_disease[yes]": 0.2,
    "bilobar_disease[unknown]": -0.1,
    "liver_metastases[0]": -0.3,
    "liver_metastases[2-4]": 0.1,
    "liver_metastases[5-9]": 0.3,
    "liver_metastases[10+]": 0.5,
    "liver_metastases[unknown]": 0.0,
    "age[<50]": -0.2,
    "age[50-59]": -0.1,
    "age[70+]": 0.3,
    "age[unknown]": 0.1,
    "sex[male]": 0.15,
    "sex[other]": 0.2,
    "sex[unknown]": 0.0,
}
REFERENCES = {
    "indication": "unresectable_first_line",
    "device": "constant_flow_pump",
    "approach": "laparotomy",
    "concurrent_colorectal_resection": "no",
    "concurrent_hepatectomy": "no",
    "concurrent_ablation": "no",
    "prior_systemic_lines": "0",
    "extrahepatic_disease": "no",
    "bilobar_disease": "no",
    "liver_metastases": "1",
    "age": "60-69",
    "sex": "female",
    # Not simulated (every case unknown): fewer than MIN_REFERENCE_CASES at the declared reference, so the
    # most frequent level is the reference.
    "ecog": "unknown",
    "cea": "unknown",
    "clinical_risk_score": "unknown",
    "braf_status": "unknown",
    "msi_status": "unknown",
    "lung_only_extrahepatic": "no",
}


def _yes_no(value):
    return "unknown" if value is None else "yes" if value else "no"


def _band(value, cuts):
    """cuts: (upper bound inclusive, label) ascending; the last label for anything above."""
    if value is None:
        return "unknown"
    for upper, label in cuts[:-1]:
        if value <= upper:
            return label
    return cuts[-1][1]


def true_levels(values):
    """The test's own coding of a simulated case (independent of reports.casemix)."""
    return {
        "indication": values["indication"] or "unknown",
        "device": values["device"] or "unknown",
        "approach": values["approach"] or "unknown",
        "concurrent_colorectal_resection": _yes_no(values["concurrent_colorectal_resection"]),
        "concurrent_hepatectomy": _yes_no(values["concurrent_hepatectomy"]),
        "concurrent_ablation": _yes_no(values["concurrent_ablation"]),
        "prior_systemic_lines": _band(values["prior_systemic_lines"], [(0, "0"), (1, "1"), (None, "2+")]),
        "extrahepatic_disease": _yes_no(values["extrahepatic_disease"]),
        "bilobar_disease": _yes_no(values["bilobar_disease"]),
        "liver_metastases": _band(
            values["liver_metastases_count"], [(0, "0"), (1, "1"), (4, "2-4"), (9, "5-9"), (None, "10+")]
        ),
        "age": _band(values["age_at_implant"], [(49, "<50"), (59, "50-59"), (69, "60-69"), (None, "70+")]),
        "sex": values["sex"] or "unknown",
        # Not simulated: the same level for every case, so no term in the fit.
        "ecog": "unknown",
        "cea": "unknown",
        "clinical_risk_score": "unknown",
        "braf_status": "unknown",
        "msi_status": "unknown",
        "lung_only_extrahepatic": "no",
    }


def simulate(n, seed, *, intercept=TRUE_INTERCEPT, truth=TRUE, centres=8, surgeons=40):
    """n implantations with a technical complication drawn from the known model; every window complete."""
    rng = np.random.default_rng(seed)

    def draw(name):
        choices, p = DISTRIBUTIONS[name]
        return choices[rng.choice(len(choices), p=p)]

    def maybe(p_missing, value):
        return None if rng.random() < p_missing else value

    rows, y, risk, coded = [], [], [], []
    for _ in range(n):
        values = {name: draw(name) for name in DISTRIBUTIONS}
        values.update(
            concurrent_colorectal_resection=bool(rng.random() < 0.15),
            concurrent_hepatectomy=bool(rng.random() < 0.3),
            concurrent_ablation=bool(rng.random() < 0.2),
            prior_systemic_lines=maybe(0.08, int(rng.choice(5, p=[0.35, 0.3, 0.2, 0.1, 0.05]))),
            extrahepatic_disease=maybe(0.1, bool(rng.random() < 0.25)),
            bilobar_disease=maybe(0.1, bool(rng.random() < 0.6)),
            liver_metastases_count=maybe(0.08, int(rng.choice([0, 1, 2, 3, 4, 6, 8, 12, 20]))),
            age_at_implant=maybe(0.05, int(rng.integers(30, 86))),
        )
        level = true_levels(values)
        linear = intercept + sum(truth.get(f"{name}[{lv}]", 0.0) for name, lv in level.items())
        p = float(expit(linear))
        event = bool(rng.random() < p)
        implanted = int(rng.integers(0, 700))
        surgeon = int(rng.integers(1, surgeons + 1))
        complications = {TECHNICAL_CODE: day(implanted + int(rng.integers(0, 91)))} if event else {}
        rows.append(
            row(
                implanted=implanted,
                centre_id=surgeon % centres,
                centre_code=f"C{surgeon % centres}",
                surgeon_id=surgeon,
                surgeon_code=f"S{surgeon}",
                surgeon_sequence=int(rng.integers(1, 60)),
                complications=complications,
                first_dose_on=day(implanted + 17) if rng.random() < 0.85 else None,
                **values,
            )
        )
        y.append(int(event))
        risk.append(p)
        coded.append(level)
    return rows, np.array(y), np.array(risk), coded


@pytest.fixture(scope="module")
def simulated():
    rows, y, risk, coded = simulate(20_000, seed=20260101)
    [model] = casemix.fit_case_mix(rows, VOCABULARY, CUT, outcomes=["technical_90d"]).values()
    return rows, y, risk, coded, model


def test_the_model_recovers_known_coefficients_within_four_standard_errors(simulated):
    rows, y, _, _, model = simulated
    assert model["n"] == len(rows) and model["events"] == int(y.sum())
    assert model["method"].startswith("logistic regression, maximum likelihood")
    assert model["converged"] is True
    assert set(model["coefficients"]) == set(TRUE)
    assert {p["name"]: p["reference"] for p in model["predictors"]} == REFERENCES
    se = model["standard_errors"]
    assert abs(model["intercept"] - TRUE_INTERCEPT) <= 4 * se["intercept"]
    for term, true_value in TRUE.items():
        assert 0 < se[term] < 0.5, term
        assert abs(model["coefficients"][term] - true_value) <= 4 * se[term], term


def test_the_c_statistic_is_close_to_the_true_model_s_and_calibration_holds(simulated):
    _, y, risk, _, model = simulated
    true_auc = casemix.c_statistic(y, risk)
    assert 0.6 < true_auc < 0.8
    assert abs(model["c_statistic"] - true_auc) < 0.01
    tenths = model["calibration"]
    assert [t["tenth"] for t in tenths] == list(range(1, 11))
    assert sum(t["n"] for t in tenths) == model["n"]
    assert {t["n"] for t in tenths} == {2000}
    assert sum(t["observed"] for t in tenths) == model["events"]
    for t in tenths:
        # A Poisson bound on the observed count given the expected: 4 standard deviations.
        assert abs(t["observed"] - t["expected"]) <= 4 * math.sqrt(t["expected"]), t
    expected = [t["expected"] for t in tenths]
    assert expected == sorted(expected)


def test_coding_and_predictions_agree_with_an_independent_formula_fit(simulated):
    rows, y, _, coded, model = simulated
    frame = pd.DataFrame(coded)
    frame["y"] = y
    formula = "y ~ " + " + ".join(f"C({name}, Treatment({reference!r}))" for name, reference in REFERENCES.items())
    reference_fit = smf.logit(formula, frame).fit(disp=0, method="newton", tol=1e-10, maxiter=100)
    predicted = casemix.predict(model, rows)
    assert np.max(np.abs(np.array([predicted[r.id] for r in rows]) - reference_fit.predict(frame).to_numpy())) < 1e-8
    assert model["intercept"] == pytest.approx(reference_fit.params["Intercept"], abs=1e-8)
    assert model["c_statistic"] == pytest.approx(casemix.c_statistic(y, reference_fit.predict(frame)), abs=1e-12)


def test_predict_from_the_stored_dict_equals_the_fitted_values(simulated):
    rows, _, _, _, model = simulated
    stored = json.loads(json.dumps(model, allow_nan=False))
    assert stored == model
    predicted = casemix.predict(stored, rows)
    assert predicted == casemix.predict(model, rows)
    # The calibration tenths hold the fit's own fitted values, summed: the stored model gives the same sums.
    risks = np.array([predicted[r.id] for r in sorted(rows, key=lambda r: r.id)])
    ids = [r.id for r in sorted(rows, key=lambda r: r.id)]
    y = [casemix.case_outcome("technical_90d", r, CUT, VOCABULARY) for r in sorted(rows, key=lambda r: r.id)]
    for ours, fitted in zip(casemix.calibration(y, risks, ids), model["calibration"], strict=True):
        assert ours["n"] == fitted["n"] and ours["observed"] == fitted["observed"]
        assert ours["expected"] == pytest.approx(fitted["expected"], abs=1e-9)


def test_observed_and_expected_sum_to_the_same_total_over_all_groups(simulated):
    rows, _, _, _, model = simulated
    for key in (lambda r: r.centre_code, lambda r: r.surgeon_code):
        groups = casemix.observed_expected(model, rows, key)
        assert sum(g["n"] for g in groups) == model["n"]
        assert sum(g["observed"] for g in groups) == model["events"]
        assert abs(sum(g["expected"] for g in groups) - model["events"]) < 1e-6
        assert [g["group"] for g in groups] == sorted(g["group"] for g in groups)
    total = casemix.observed_expected_total(casemix.observed_expected(model, rows, lambda r: r.centre_code))
    assert total["observed"] == model["events"]


def test_the_fit_is_deterministic_whatever_the_order_of_the_rows(simulated):
    rows, _, _, _, model = simulated
    shuffled = list(rows[:3000])
    first = casemix.fit_case_mix(shuffled, VOCABULARY, CUT)
    random.Random(7).shuffle(shuffled)
    assert casemix.fit_case_mix(shuffled, VOCABULARY, CUT) == first


# --- the four outcomes together, and awkward data ----------------------------------------


def mixed_rows(n=3000, seed=5):
    """Rows for every outcome: some deaths, open windows, retrospective entries, missing case mix."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        implanted = rng.randrange(0, 800)
        kwargs = {}
        if rng.random() < 0.15:
            kwargs["complications"] = {TECHNICAL_CODE: day(implanted + rng.randrange(0, 120))}
        if rng.random() < 0.1:
            kwargs["severe_complications"] = {OTHER_CODE: day(implanted + rng.randrange(0, 120))}
        if rng.random() < 0.08:
            kwargs["died_on"] = day(implanted + rng.randrange(0, 200))
        if rng.random() < 0.8:
            kwargs["first_dose_on"] = day(implanted + rng.randrange(10, 40))
        if rng.random() < 0.05:
            kwargs["consent_on"] = day(implanted + rng.randrange(0, 200))
        rows.append(
            row(
                implanted=implanted,
                indication=rng.choice(["adjuvant", "unresectable_first_line", ""]),
                sex=rng.choice(["female", "male", ""]),
                age_at_implant=rng.choice([None, 45, 55, 65, 75]),
                liver_metastases_count=rng.choice([None, 1, 3, 7, 12]),
                prior_systemic_lines=rng.choice([None, 0, 1, 2]),
                extrahepatic_disease=rng.choice([None, True, False]),
                bilobar_disease=rng.choice([None, True, False]),
                centre_code=rng.choice("ABCD"),
                surgeon_id=rng.randrange(1, 12),
                surgeon_sequence=rng.randrange(1, 60),
                **kwargs,
            )
        )
    return rows


def test_every_outcome_fits_on_its_complete_cases_with_unknown_levels_kept():
    rows = mixed_rows()
    models = casemix.fit_case_mix(rows, VOCABULARY, CUT)
    assert list(models) == list(casemix.OUTCOME_CODES)
    for code, model in models.items():
        complete = {r.id: outcome(code, r) for r in rows if outcome(code, r) is not None}
        assert model["n"] == len(complete), code
        assert model["events"] == sum(complete.values()), code
        assert casemix.case_outcomes(model, rows) == complete
        assert model["converged"] is True, code
        for name in ("indication", "sex", "age", "liver_metastases", "extrahepatic_disease"):
            assert f"{name}[unknown]" in model["coefficients"], (code, name)
        groups = casemix.observed_expected(model, rows, lambda r: r.centre_code)
        assert abs(sum(g["expected"] for g in groups) - model["events"]) < 1e-6, code
    # Cases missing every predictor are kept, not dropped.
    blanks = [
        row(implanted=i % 300, indication="", sex="", device="", approach="", complications={}) for i in range(50)
    ]
    model = casemix.fit_case_mix(rows + blanks, VOCABULARY, CUT, outcomes=["technical_90d"])["technical_90d"]
    assert model["n"] == models["technical_90d"]["n"] + 50


def test_a_level_with_no_events_falls_back_to_the_ridge_fit_and_keeps_sum_e_equal_to_sum_o():
    rows, _, _, _ = simulate(3000, seed=11)
    # Every case of sex 'other' free of complications: the maximum-likelihood estimate does not exist.
    for r in rows:
        if r.sex == "other":
            r.complications = {}
    assert sum(r.sex == "other" for r in rows) > 50
    model = casemix.fit_case_mix(rows, VOCABULARY, CUT, outcomes=["technical_90d"])["technical_90d"]
    assert "ridge" in model["method"] and "sex[other]: 0 events" in model["method"]
    assert model["converged"] is True
    assert all(math.isfinite(v) for v in model["coefficients"].values())
    assert -casemix.SEPARATION_LOGIT < model["coefficients"]["sex[other]"] < -0.5
    groups = casemix.observed_expected(model, rows, lambda r: r.sex)
    assert abs(sum(g["expected"] for g in groups) - model["events"]) < 1e-6
    assert next(g for g in groups if g["group"] == "other")["observed"] == 0
    json.dumps(model, allow_nan=False)


def test_aliased_levels_fall_back_to_the_ridge_fit():
    rows, _, _, _ = simulate(3000, seed=12)
    for r in rows:  # ports only ever placed percutaneously, and percutaneous only for ports
        r.approach = "percutaneous" if r.device == "arterial_port" else "laparotomy"
    model = casemix.fit_case_mix(rows, VOCABULARY, CUT, outcomes=["technical_90d"])["technical_90d"]
    assert "aliased" in model["method"]
    assert model["converged"] is True
    predicted = casemix.predict(model, rows)
    assert abs(sum(predicted.values()) - model["events"]) < 1e-6


def test_a_constant_outcome_or_no_complete_case_does_not_crash():
    rows = [row(implanted=i) for i in range(40)]  # no complication, no death, no dose
    models = casemix.fit_case_mix(rows, VOCABULARY, CUT)
    for code in ("technical_90d", "severe", "mortality_90d"):
        model = models[code]
        assert (model["n"], model["events"], model["intercept"], model["constant_risk"]) == (40, 0, None, 0.0)
        assert model["c_statistic"] is None and "constant" in model["method"]
        assert set(casemix.predict(model, rows).values()) == {0.0}
        assert casemix.observed_expected(model, rows, lambda r: r.centre_code) == [
            {"group": "A", "n": 40, "observed": 0, "expected": 0.0}
        ]
    assert models["never_treated"]["constant_risk"] == 1.0  # every one never dosed
    json.dumps(models, allow_nan=False)
    empty = casemix.fit_case_mix(rows, VOCABULARY, day(10))  # every window open
    for model in empty.values():
        assert model["n"] == 0 and model["calibration"] == []
        assert set(casemix.predict(model, rows).values()) == {None}
        assert casemix.observed_expected(model, rows, lambda r: r.centre_code) == []
    assert casemix.fit_case_mix([], VOCABULARY, CUT)["severe"]["n"] == 0


def test_a_level_seen_only_at_prediction_takes_the_reference_risk():
    rows = mixed_rows(800)
    model = casemix.fit_case_mix(rows, VOCABULARY, CUT, outcomes=["technical_90d"])["technical_90d"]
    assert not any(term.startswith("device[") for term in model["coefficients"])
    port, pump = row(device="arterial_port"), row(device="constant_flow_pump")
    predicted = casemix.predict(model, [port, pump])
    assert predicted[port.id] == predicted[pump.id]


def test_a_stored_model_of_another_version_is_refused():
    model = casemix.fit_case_mix(mixed_rows(300), VOCABULARY, CUT, outcomes=["severe"])["severe"]
    with pytest.raises(ValueError, match="version"):
        casemix.predict({**model, "version": casemix.VERSION + 1}, [row()])


def test_c_statistic_by_the_mann_whitney_formula_with_ties_counting_half():
    # Pairs (event, non-event): (0.35 v 0.1) win, (0.35 v 0.4) loss, (0.8 v both) win: 3/4.
    assert casemix.c_statistic([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    # One tie between an event and a non-event counts half: (1 + 0.5 + 1 + 1) / 4.
    assert casemix.c_statistic([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]) == 0.875
    assert casemix.c_statistic([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert casemix.c_statistic([1, 1], [0.2, 0.3]) is None


def test_calibration_tenths_split_by_sorted_risk():
    tenths = casemix.calibration([1, 0] * 10 + [1], [i / 100 for i in range(21)], list(range(21)))
    assert [t["n"] for t in tenths] == [3, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    assert tenths[0]["expected"] == pytest.approx(0.03)
    assert tenths[0]["observed"] == 2
    assert len(casemix.calibration([1, 0, 1], [0.1, 0.2, 0.3], [1, 2, 3])) == 3


# --- fits for the risk-adjusted CUSUM -----------------------------------------------------


def test_the_fit_for_a_surgeon_uses_experienced_surgeons_other_than_that_surgeon():
    rows = simulate(4000, seed=13, surgeons=10)[0]
    models = casemix.fit_for_surgeon(rows, VOCABULARY, CUT, 3, outcomes=["technical_90d", "never_treated"])
    assert list(models) == ["technical_90d", "never_treated"]
    for code, model in models.items():
        fitted = [r for r in rows if r.pumps_before >= 25 and r.surgeon_id != 3 and outcome(code, r) is not None]
        assert model["n"] == len(fitted)
        assert model["events"] == sum(outcome(code, r) for r in fitted)
        assert model["exclusion"] == {"surgeon_id": 3, "experience_threshold": 25}
        assert "surgeon 3 excluded" in model["fitted_on"]
    by_exclude = casemix.fit_case_mix(
        rows, VOCABULARY, CUT, outcomes=["technical_90d"], exclude=lambda r: r.pumps_before < 25 or r.surgeon_id == 3
    )["technical_90d"]
    assert by_exclude["coefficients"] == models["technical_90d"]["coefficients"]
    assert by_exclude["n"] == models["technical_90d"]["n"]


def test_fits_for_many_surgeons_agree_with_one_at_a_time():
    rows = simulate(4000, seed=14, surgeons=6)[0]
    many = casemix.fit_for_surgeons(rows, VOCABULARY, CUT, outcomes=["technical_90d"])
    assert sorted(many) == sorted({r.surgeon_id for r in rows})
    for surgeon_id in (1, 4):
        one = casemix.fit_for_surgeon(rows, VOCABULARY, CUT, surgeon_id, outcomes=["technical_90d"])["technical_90d"]
        warm = many[surgeon_id]["technical_90d"]
        assert (warm["n"], warm["events"], warm["method"]) == (one["n"], one["events"], one["method"])
        assert warm["intercept"] == pytest.approx(one["intercept"], abs=1e-7)
        for term, value in one["coefficients"].items():
            assert warm["coefficients"][term] == pytest.approx(value, abs=1e-7)


# --- on a real cohort ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_model_fits_on_a_cohort_read_from_the_database(centre_a):
    surgeon = factories.SurgeonFactory(centre=centre_a, prior_pump_count=30)
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    implantations = []
    for i in range(6):
        patient = factories.PatientFactory(
            centre=centre_a, birth_year=1950 + 5 * i, liver_metastases_count=i or None, bilobar_disease=i % 2 == 0
        )
        implantations.append(
            factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(i))
        )
    factories.ComplicationFactory(implantation=implantations[0], type=occlusion, onset_on=days_after(20), grade=2)
    factories.ComplicationFactory(implantation=implantations[1], type=occlusion, onset_on=days_after(30), grade=3)
    factories.TreatmentFactory(implantation=implantations[2])
    recent = factories.ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(150))
    rows = cohort()
    types = list(ComplicationType.objects.values("code", "name", "category", "catheter_related"))
    models = casemix.fit_case_mix(rows, types, days_after(120))
    technical = models["technical_90d"]
    assert (technical["n"], technical["events"]) == (6, 2)
    predicted = casemix.predict(technical, rows)
    assert recent.pk in predicted
    assert sum(predicted[i.pk] for i in implantations) == pytest.approx(2, abs=1e-6)
    assert models["never_treated"]["events"] == 5
    json.dumps(models, allow_nan=False)
