"""The case-mix model: each implantation's expected risk of an outcome from its pre-implant case mix.

Indirect standardisation (shared/domain/STATISTICS.md, "Case-mix adjustment"): a logistic
model on pre-implant variables gives every implantation an expected risk; a group's
expected count E is the sum of its risks, set against its observed count O. The same
risks are the baseline p_t of the risk-adjusted CUSUM (Steiner et al., Biostatistics
2000;1:441), fitted there on experienced surgeons without the charted one.

Public functions
----------------
``fit_case_mix(rows, complication_types, cut_date, *, exclude=None, outcomes=None)``
    {outcome code: model dict}, fitted on every complete case of ``rows`` (the whole
    registry's snapshot), less those ``exclude(row)`` is true for.
``fit_for_surgeon(rows, complication_types, cut_date, surgeon_id, *, outcomes=None, threshold=25)``
    Likewise, on complete cases of experienced surgeons (``pumps_before >= threshold``,
    ``reports.outcomes.experienced``) other than ``surgeon_id``.
``fit_for_surgeons(rows, complication_types, cut_date, surgeon_ids=None, *, outcomes=None, threshold=25)``
    {surgeon id: fit_for_surgeon(...)} for many surgeons, reading the rows once.
``predict(model, rows)``
    {row.id: risk}, from the model dict alone (a report is reproduced from its run's stored model).
``case_outcomes(model, rows)``
    {row.id: 0 or 1} for the complete cases among ``rows``, by the model's own outcome and cut.
``observed_expected(model, rows, key)``
    [{"group", "n", "observed", "expected"}] by ``key(row)``, over complete cases only.

A model dict is plain JSON (str, int, float, bool, None, lists and dicts), so a run stores it
as it is; ``predict`` and ``case_outcomes`` need nothing else. Its keys: ``outcome`` (code),
``label``, ``version``, ``cut_date`` (ISO), ``event``, ``window_days``, ``event_codes`` (the technical
type codes, or None), ``fitted_on`` (text), ``exclusion`` (None, or {"surgeon_id",
"experience_threshold"}), ``n`` and ``events`` (complete cases fitted, and their events),
``predictors`` ([{"name", "reference", "levels"}]: the levels with cases), ``intercept``,
``coefficients`` ({term: log odds ratio}), ``standard_errors`` ({"intercept" or term: SE}; for the
ridge fit, from the penalised information), ``constant_risk`` (None, or the observed proportion of a
constant outcome, which has ``intercept`` None), ``c_statistic`` (None without events and
non-events), ``calibration`` ([{"tenth", "n", "observed", "expected"}]), ``method`` (text),
``converged`` (bool) and ``iterations``.

Complete cases
--------------
Only cases whose outcome is known at the cut count, in O and in E alike (a 90-day rate over
cases followed for less than 90 days would understate it). For the three 90-day outcomes an
implantation is a complete case when its window (day 0 to day 90 after implantation) had
ended by the cut date (``implanted_on + 90 days <= cut``), or the outcome came inside the
window. In detail, for ``technical_90d`` and ``severe``:

* the complication inside the window: event (1), whether or not the window has ended;
* a death inside the window before any such complication: left out. A death is not a
  success (the patient was not at risk for the rest of the window) nor a complication,
  and a model of "complication or death" is another outcome (``mortality_90d`` has the
  deaths). A complication on the day of death counts as the complication
  (reports.outcomes' convention). An end of pump use for another reason inside the window
  is not a reason to leave a case out: it counts as 0 when the window is complete;
* otherwise: 0 when the window has ended by the cut, left out while it is open.

For ``mortality_90d`` a death inside the window is the event. For ``never_treated`` the case
is complete when the pump was implanted at least 60 days before the cut, and the event is
that no HAI dose was given by the cut (``first_dose_on`` is None); a death before any dose
is never treated (intention to treat).

Every outcome leaves out a retrospective entry: registry entry (``row.entered_on``, the later
of implantation and consent) more than the window (90 days; 60 for never treated) after
implantation, since the window was never observed in the registry. Implantations after the
cut are left out, and dates after the cut are ignored, so a cohort read later than its cut
gives the model of the cut.

Predictors
----------
``PREDICTORS``: one constant, one entry per predictor, in treatment (dummy) coding against
a reference level: one indicator term ``name[level]`` per other level. A missing value is its
own level ``unknown``, so no case is left out for a missing predictor; a value the level list
does not know is ``unknown`` too. To extend the model as the record grows, add a
``Predictor`` (and bump ``VERSION`` when a change alters how an existing row is coded, so an
older stored model is not read with new coding).

Per fit: a level with no case among the fitted cases gets no term (a case with it at
prediction gets the reference's risk for that predictor); the declared reference is kept
unless it has fewer than ``MIN_REFERENCE_CASES`` cases, when the predictor's most frequent
level (ties: declared order) is the reference. The model dict records the references used.

Fitting
-------
Maximum likelihood by Newton-Raphson (statsmodels ``Logit``). The maximum-likelihood estimate
does not exist when a level has no events or only events, when terms are aliased (e.g. a
device only ever placed by one approach) or under any other separation; then, and when the
Newton fit does not converge, finds perfect prediction, or gives a log odds ratio beyond
±``SEPARATION_LOGIT``, the model is refitted with a small ridge penalty: the log-likelihood
minus λ/2·Σβ² over the log odds ratios, λ = 1/2.5² (a normal prior with standard deviation 2.5
on each log odds ratio), the intercept unpenalised, by Newton-Raphson with step halving.
Its score equation for the unpenalised intercept still holds, so with either method the
fitted risks sum to the observed events over the fitted cases (Σ E = Σ O). A constant
outcome (no events, or only events) has no model: every case gets the observed proportion.
The ``method`` text of each model says which applied and why.

The c-statistic (Mann-Whitney: the proportion of event/non-event pairs in which the event
has the higher predicted risk, ties counting half) and the calibration by tenths of
predicted risk are apparent (on the fitted cases).

Speed, measured on a 2-CPU machine shared with other work, simulated rows, 33 terms: one outcome's
fit takes 20-25 ms at 10,000 rows and 0.2-0.25 s at 100,000 with single-threaded BLAS
(``OPENBLAS_NUM_THREADS=1``), the ridge fallback about the same; with OpenBLAS's default threads on
that busy machine, 25-600 ms at 10,000 rows (1-1.4 s at 100,000), the spread being thread
contention in the p x p Hessian products. Reading the rows (levels and complete cases) takes
0.07 s per 10,000 rows, once per call. ``fit_for_surgeons`` reads them once and starts each
surgeon's fit from the fit on all experienced surgeons (two Newton steps instead of five or
six): 100 surgeons x 1 outcome in about 1 s at 10,000 rows and 12 s at 100,000 (single-threaded
BLAS). Its answers equal ``fit_for_surgeon``'s to the convergence tolerance.
"""

from __future__ import annotations

import datetime
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata
from statsmodels.discrete.discrete_model import Logit
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    HessianInversionWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from registry.vocabulary import Approach, BrafStatus, ComplicationCategory, Device, Indication, MsiStatus, Sex

from .outcomes import EXPERIENCE_THRESHOLD, experienced

# Bump when a predictor's coding of an existing row changes. Not for a new predictor: a stored model lists
# its predictors and predict() reads only those, so an older model gives the same risks as before.
VERSION = 1
UNKNOWN = "unknown"
WINDOW_DAYS = 90
NEVER_TREATED_MIN_DAYS = 60
MIN_REFERENCE_CASES = 20
SEPARATION_LOGIT = 10.0  # |log odds ratio| beyond this (OR > 22,000) is taken as separation
RIDGE_PRIOR_SD = 2.5
RIDGE_LAMBDA = 1 / RIDGE_PRIOR_SD**2
TOLERANCE = 1e-10
MAX_ITERATIONS = 100
CALIBRATION_GROUPS = 10
INTERCEPT = "intercept"


# --- predictors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Predictor:
    """A categorical predictor: its levels (display order, ``unknown`` last), reference, and a row's level."""

    name: str
    label: str
    levels: tuple[str, ...]
    reference: str
    read: Callable[[object], str]

    def level(self, row) -> str:
        value = self.read(row)
        return value if value in self.levels else UNKNOWN

    def term(self, level: str) -> str:
        return f"{self.name}[{level}]"


def _choice(name, label, choices, reference, attribute=None):
    attribute = attribute or name
    # A vocabulary's own "unknown" (BRAF, MSI) is the same level as a missing value, listed once, last.
    levels = (*(value for value in choices.values if value != UNKNOWN), UNKNOWN)
    return Predictor(name, label, levels, reference, lambda row: getattr(row, attribute) or UNKNOWN)


def _yes_no(name, label):
    def read(row):
        value = getattr(row, name)
        return UNKNOWN if value is None else "yes" if value else "no"

    return Predictor(name, label, ("no", "yes", UNKNOWN), "no", read)


def _bands(name, label, attribute, bands, reference):
    """``bands``: (level, lowest value) in ascending order; a value takes the last band whose lowest it reaches."""

    def read(row):
        value = getattr(row, attribute)
        level = UNKNOWN
        if value is not None:
            for band, lowest in bands:
                if value >= lowest:
                    level = band
        return level

    return Predictor(name, label, (*(band for band, _ in bands), UNKNOWN), reference, read)


CEA_NORMAL_BELOW = 5  # ng/mL, the usual upper limit of normal
CEA_FONG_ABOVE = 200  # ng/mL: Fong et al., Ann Surg 1999;230:309, one point for CEA > 200


def _cea_band(row):
    # Not _bands: Fong's criterion is strictly above 200, so 200.0 itself is in the middle band.
    value = row.cea_ng_per_ml
    if value is None:
        return UNKNOWN
    return "<5" if value < CEA_NORMAL_BELOW else "5-200" if value <= CEA_FONG_ABOVE else ">200"


def _lung_only(row):
    """Extrahepatic disease at implant recorded in the lung only: "yes"; anything else: "no".

    Lung-only rather than the number of sites: lung-only extrahepatic disease is the one pattern with a
    distinctly better prognosis than the rest (and the one for which HAI is still considered at experienced
    centres), which a count of sites would mix with peritoneal or nodal disease; and it costs one term, not
    two. It is a contrast *within* extrahepatic disease, so its missing values are not its own ``unknown``
    level (the exception to the module's rule, which the level list still ends with): an unknown extrahepatic
    status is ``extrahepatic_disease``'s own ``unknown``, and extrahepatic disease whose sites are not recorded
    is "no". A "sites unknown" level would be the very column of ``extrahepatic_disease[yes]`` while no sites
    are recorded (every patient entered before the sites existed), and a "0 sites" level that of
    ``extrahepatic_disease[no]``: aliased terms, and every fit would fall back to the ridge penalty. Counting
    an unrecorded lung-only patient with the other extrahepatic disease dilutes the lung-only effect rather
    than inventing one.
    """
    if row.extrahepatic_disease is True and list(row.extrahepatic_sites or []) == ["lung"]:
        return "yes"
    return "no"


PREDICTORS = (
    _choice("indication", "Indication", Indication, Indication.UNRESECTABLE_FIRST_LINE),
    _choice("device", "Device", Device, Device.CONSTANT_FLOW_PUMP),
    _choice("approach", "Approach", Approach, Approach.LAPAROTOMY),
    _yes_no("concurrent_colorectal_resection", "Concurrent colorectal resection"),
    _yes_no("concurrent_hepatectomy", "Concurrent hepatectomy"),
    _yes_no("concurrent_ablation", "Concurrent ablation"),
    _bands(
        "prior_systemic_lines", "Prior systemic lines", "prior_systemic_lines", (("0", 0), ("1", 1), ("2+", 2)), "0"
    ),
    _yes_no("extrahepatic_disease", "Extrahepatic disease at implant"),
    _yes_no("bilobar_disease", "Bilobar disease"),
    _bands(
        "liver_metastases",
        "Number of liver metastases",
        "liver_metastases_count",
        (("0", 0), ("1", 1), ("2-4", 2), ("5-9", 5), ("10+", 10)),
        "1",
    ),
    _bands(
        "age", "Age at implantation", "age_at_implant", (("<50", 0), ("50-59", 50), ("60-69", 60), ("70+", 70)), "60-69"
    ),
    _choice("sex", "Sex", Sex, Sex.FEMALE),
    _bands("ecog", "ECOG performance status", "ecog", (("0", 0), ("1", 1), ("2+", 2)), "0"),
    Predictor("cea", "CEA at implant (ng/mL)", ("<5", "5-200", ">200", UNKNOWN), "<5", _cea_band),
    # Fong 1999's split of the clinical risk score: 0-2 low risk, 3-5 high risk.
    _bands("clinical_risk_score", "Clinical risk score (Fong)", "clinical_risk_score", (("0-2", 0), ("3-5", 3)), "0-2"),
    _choice("braf_status", "BRAF status", BrafStatus, BrafStatus.WILD_TYPE),
    _choice("msi_status", "MSI status", MsiStatus, MsiStatus.MSS),
    Predictor(
        "lung_only_extrahepatic", "Extrahepatic disease in the lung only", ("no", "yes", UNKNOWN), "no", _lung_only
    ),
)
_PREDICTORS_BY_NAME = {p.name: p for p in PREDICTORS}


# --- outcomes ------------------------------------------------------------------------------

TECHNICAL, SEVERE, DEATH, NOT_DOSED = "technical", "severe", "death", "no_dose"

_COMPLETE_90 = (
    "Complete cases only, in observed and expected counts alike: the 90-day window had ended by the data cut "
    "(implanted at least 90 days before it), or the {what} came inside it."
)
_LEFT_OUT = (
    " Left out: a death inside the window before any {what} (neither a success nor a complication; a complication "
    "on the day of death counts), and a registry entry (consent) more than 90 days after implantation, whose "
    "window the registry did not observe."
)


@dataclass(frozen=True)
class CaseMixOutcome:
    code: str
    label: str
    definition: str
    event: str  # TECHNICAL, SEVERE, DEATH or NOT_DOSED
    window_days: int


OUTCOMES = (
    CaseMixOutcome(
        code="technical_90d",
        label="Technical complication within 90 days",
        definition="A complication of a type in the vocabulary's technical category (catheter, pump, pocket and "
        "arterial complications), with onset on day 0 to 90 after implantation. "
        + _COMPLETE_90.format(what="complication")
        + _LEFT_OUT.format(what="technical complication"),
        event=TECHNICAL,
        window_days=WINDOW_DAYS,
    ),
    CaseMixOutcome(
        code="severe",
        label="Severe complication within 90 days",
        definition="A severe complication of any type (Clavien-Dindo grade IIIa or higher where recorded, otherwise "
        "CTCAE grade 3 or higher), with onset on day 0 to 90 after implantation. "
        + _COMPLETE_90.format(what="complication")
        + _LEFT_OUT.format(what="severe complication"),
        event=SEVERE,
        window_days=WINDOW_DAYS,
    ),
    CaseMixOutcome(
        code="mortality_90d",
        label="Death within 90 days",
        definition="Death from any cause on day 0 to 90 after implantation. "
        + _COMPLETE_90.format(what="death")
        + " Left out: a registry entry (consent) more than 90 days after implantation.",
        event=DEATH,
        window_days=WINDOW_DAYS,
    ),
    CaseMixOutcome(
        code="never_treated",
        label="Never treated",
        definition="No HAI dose ever given through the device by the data cut (a held dose is not a dose), among "
        f"implantations at least {NEVER_TREATED_MIN_DAYS} days before the cut; a death before any dose counts as "
        f"never treated. Left out: a registry entry (consent) more than {NEVER_TREATED_MIN_DAYS} days after "
        "implantation.",
        event=NOT_DOSED,
        window_days=NEVER_TREATED_MIN_DAYS,
    ),
)
OUTCOMES_BY_CODE = {o.code: o for o in OUTCOMES}
OUTCOME_CODES = tuple(OUTCOMES_BY_CODE)

METHOD = (
    "Logistic regression of each outcome on the pre-implant case mix ("
    + "; ".join(p.label.lower() for p in PREDICTORS)
    + "), each a categorical predictor in treatment coding, a missing value its own 'unknown' level. Fitted on "
    "every complete case of the snapshot by maximum likelihood (statsmodels Logit, Newton-Raphson); where the "
    "maximum-likelihood estimate does not exist (a level with no events or only events, aliased levels, or "
    f"separation), with a ridge penalty (normal prior, standard deviation {RIDGE_PRIOR_SD:g}, on each log odds "
    "ratio; intercept unpenalised). An implantation's expected risk is the model's prediction; a group's expected "
    "count E is the sum of its cases' risks. The c-statistic (Mann-Whitney, ties counting half) and the "
    "calibration by tenths of predicted risk are on the fitted cases."
)


def methods():
    """The outcomes' definitions and the model, for the report's Methods section."""
    return {
        "model": METHOD,
        "outcomes": [{"code": o.code, "label": o.label, "definition": o.definition} for o in OUTCOMES],
        "predictors": [{"name": p.name, "label": p.label, "levels": list(p.levels)} for p in PREDICTORS],
    }


def technical_codes(complication_types) -> list[str]:
    """The vocabulary's technical complication type codes (a type with no category is 'other')."""
    return sorted(
        t["code"]
        for t in complication_types
        if (t.get("category") or ComplicationCategory.OTHER) == ComplicationCategory.TECHNICAL
    )


def _as_date(cut_date):
    return cut_date.date() if isinstance(cut_date, datetime.datetime) else cut_date


def _case(event, window_days, row, cut, event_codes):
    """0 or 1 for a complete case; None for one left out (see the module docstring)."""
    start = row.implanted_on
    if start > cut:
        return None
    end = start + datetime.timedelta(days=window_days)
    if row.entered_on > end:
        return None  # a retrospective entry: the window was not observed in the registry
    if event == NOT_DOSED:
        if end > cut:
            return None
        return 0 if row.first_dose_on is not None and row.first_dose_on <= cut else 1
    died_on = row.died_on if row.died_on is not None and row.died_on <= cut else None
    if event == DEATH:
        event_on = died_on
    else:
        onsets = row.complications if event == TECHNICAL else row.severe_complications
        codes = event_codes if event == TECHNICAL else onsets
        dates = [onsets[code] for code in codes if code in onsets and start <= onsets[code] <= cut]
        event_on = min(dates) if dates else None
        if event_on is not None and died_on is not None and event_on > died_on:
            event_on = None  # dated after the death: the death came first
    if event_on is not None and event_on <= end:
        return 1
    if died_on is not None and died_on <= end:
        return None  # died inside the window without the event
    return 0 if end <= cut else None


def case_outcome(code, row, cut_date, complication_types):
    """0 or 1 when ``row`` is a complete case of outcome ``code`` at ``cut_date``; None when it is left out."""
    outcome = OUTCOMES_BY_CODE[code]
    return _case(outcome.event, outcome.window_days, row, _as_date(cut_date), technical_codes(complication_types))


def case_outcomes(model, rows) -> dict:
    """{row.id: 0 or 1} for the complete cases among ``rows``, by the model's outcome and cut date."""
    cut = datetime.date.fromisoformat(model["cut_date"])
    codes = model.get("event_codes") or ()
    out = {}
    for row in rows:
        y = _case(model["event"], model["window_days"], row, cut, codes)
        if y is not None:
            out[row.id] = y
    return out


# --- statistics of a fit -------------------------------------------------------------------


def c_statistic(y, risk):
    """AUC by the Mann-Whitney formula, ties counting half; None without both events and non-events."""
    y = np.asarray(y, dtype=bool)
    events, n = int(y.sum()), len(y)
    if events == 0 or events == n:
        return None
    ranks = rankdata(risk)  # average ranks: a tie between an event and a non-event counts half
    return float((ranks[y].sum() - events * (events + 1) / 2) / (events * (n - events)))


def calibration(y, risk, ids, groups=CALIBRATION_GROUPS):
    """Observed and expected counts by tenths of predicted risk (sorted by risk, then id; near-equal sizes)."""
    y, risk = np.asarray(y, dtype=float), np.asarray(risk, dtype=float)
    order = np.lexsort((np.asarray(ids), risk))
    return [
        {"tenth": i + 1, "n": len(part), "observed": int(y[part].sum()), "expected": float(risk[part].sum())}
        for i, part in enumerate(np.array_split(order, groups))
        if len(part)
    ]


# --- fitting -------------------------------------------------------------------------------


class _Cases:
    """The rows read once: predictor level indices, and each outcome's 0/1 (−1 for a case left out)."""

    def __init__(self, rows, complication_types, cut_date, outcomes):
        self.rows = sorted(rows, key=lambda r: r.id)
        self.cut = _as_date(cut_date)
        self.event_codes = technical_codes(complication_types)
        self.outcomes = [OUTCOMES_BY_CODE[code] for code in (outcomes or OUTCOME_CODES)]
        self.ids = np.array([r.id for r in self.rows], dtype=np.int64)
        indices = [{level: i for i, level in enumerate(p.levels)} for p in PREDICTORS]
        self.levels = np.array(
            [[index[p.level(row)] for p, index in zip(PREDICTORS, indices, strict=True)] for row in self.rows],
            dtype=np.int16,
        ).reshape(len(self.rows), len(PREDICTORS))
        self.y = {}
        for o in self.outcomes:
            values = (_case(o.event, o.window_days, row, self.cut, self.event_codes) for row in self.rows)
            self.y[o.code] = np.array([-1 if v is None else v for v in values], dtype=np.int8)

    def mask(self, keep):
        return np.array([bool(keep(row)) for row in self.rows], dtype=bool)


def _design(levels, y):
    """The design matrix (intercept first), its terms, the references used and the levels with no or all events."""
    n = len(y)
    columns, terms, predictors, sparse = [np.ones(n)], [], [], []
    for j, p in enumerate(PREDICTORS):
        counts = np.bincount(levels[:, j], minlength=len(p.levels))
        events = np.bincount(levels[:, j], weights=y, minlength=len(p.levels))
        reference = p.levels.index(p.reference)
        if counts[reference] < MIN_REFERENCE_CASES:
            reference = int(np.argmax(counts))  # the first of the most frequent, in declared order
        present = [k for k in range(len(p.levels)) if counts[k]]
        predictors.append({"name": p.name, "reference": p.levels[reference], "levels": [p.levels[k] for k in present]})
        for k in present:
            if events[k] == 0 or events[k] == counts[k]:
                sparse.append(f"{p.term(p.levels[k])}: {int(events[k])} events in {int(counts[k])}")
            if k != reference:
                columns.append((levels[:, j] == k).astype(float))
                terms.append(p.term(p.levels[k]))
    return np.column_stack(columns), terms, predictors, sparse


def _maximum_likelihood(y, X, start):
    """(params, standard errors, iterations) by statsmodels' Newton-Raphson, or None when the MLE is not found."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = Logit(y, X, check_rank=False).fit(
                start_params=start, method="newton", maxiter=MAX_ITERATIONS, tol=TOLERANCE, disp=False
            )
            params = np.asarray(result.params, dtype=float)
            bse = np.asarray(result.bse, dtype=float)
        except (np.linalg.LinAlgError, PerfectSeparationError, ValueError):
            return None
    problems = (PerfectSeparationWarning, ConvergenceWarning, HessianInversionWarning)
    if any(issubclass(w.category, problems) for w in caught) or not result.mle_retvals.get("converged", False):
        return None
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(bse))):
        return None
    if len(params) > 1 and np.max(np.abs(params[1:])) > SEPARATION_LOGIT:
        return None
    return params, bse, int(result.mle_retvals.get("iterations", 0))


def _penalised_loglike(y, eta, params, penalty):
    # log L = Σ y·η − log(1 + e^η), computed stably
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)) - 0.5 * np.sum(penalty * params**2))


def _ridge(y, X, start):
    """Ridge-penalised logistic regression (intercept unpenalised) by Newton-Raphson with step halving."""
    penalty = np.full(X.shape[1], RIDGE_LAMBDA)
    penalty[0] = 0.0
    params = np.array(start, dtype=float)
    eta = X @ params
    objective = _penalised_loglike(y, eta, params, penalty)
    converged, iterations = False, 0
    while not converged and iterations < MAX_ITERATIONS:
        iterations += 1
        mu = expit(eta)
        gradient = X.T @ (y - mu) - penalty * params
        hessian = (X.T * (mu * (1 - mu))) @ X + np.diag(penalty)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        scale = 1.0
        while True:
            candidate = params + scale * step
            candidate_eta = X @ candidate
            candidate_objective = _penalised_loglike(y, candidate_eta, candidate, penalty)
            if candidate_objective >= objective - 1e-12 * abs(objective) or scale < 1e-8:
                break
            scale /= 2
        params, eta, objective = candidate, candidate_eta, candidate_objective
        converged = bool(np.max(np.abs(scale * step)) < TOLERANCE)
    mu = expit(eta)
    hessian = (X.T * (mu * (1 - mu))) @ X + np.diag(penalty)
    bse = np.sqrt(np.diag(np.linalg.pinv(hessian)))
    return params, bse, iterations, converged


def _fit(cases, outcome, keep, fitted_on, exclusion=None, start=None):
    all_y = cases.y[outcome.code]
    select = (all_y >= 0) & keep
    y = all_y[select].astype(float)
    levels = cases.levels[select]
    ids = cases.ids[select]
    n, events = len(y), int(y.sum())
    model = {
        "outcome": outcome.code,
        "label": outcome.label,
        "version": VERSION,
        "cut_date": cases.cut.isoformat(),
        "event": outcome.event,
        "window_days": outcome.window_days,
        "event_codes": cases.event_codes if outcome.event == TECHNICAL else None,
        "fitted_on": fitted_on,
        "exclusion": exclusion,
        "n": n,
        "events": events,
    }
    X, terms, predictors, sparse = _design(levels, y)
    model["predictors"] = predictors
    if events == 0 or events == n:
        model.update(
            intercept=None,
            constant_risk=(events / n) if n else None,
            coefficients={},
            standard_errors={},
            c_statistic=None,
            calibration=calibration(y, np.full(n, events / n), ids) if n else [],
            method=f"no model: the outcome is constant ({events} events in {n} complete cases); every case gets the "
            "observed proportion",
            converged=False,
            iterations=0,
        )
        return model

    rate = events / n
    initial = np.zeros(X.shape[1])
    initial[0] = math.log(rate / (1 - rate))
    if start is not None:
        initial = np.array([start.get(name, 0.0) for name in [INTERCEPT, *terms]], dtype=float)
    reason = None
    if sparse:
        reason = "levels with no events or only events (" + "; ".join(sparse) + ")"
    elif np.linalg.matrix_rank(X.T @ X, hermitian=True) < X.shape[1]:
        reason = "aliased terms (the design matrix is not of full rank)"
    fitted = _maximum_likelihood(y, X, initial) if reason is None else None
    if fitted is not None:
        params, bse, iterations = fitted
        converged = True
        method = "logistic regression, maximum likelihood (statsmodels Logit, Newton-Raphson)"
    else:
        reason = reason or "the maximum-likelihood fit did not converge or found separation"
        params, bse, iterations, converged = _ridge(y, X, initial)
        method = (
            f"logistic regression with a ridge penalty (lambda = {RIDGE_LAMBDA:g}: a normal prior with standard "
            f"deviation {RIDGE_PRIOR_SD:g} on each log odds ratio; intercept unpenalised), Newton-Raphson, in place "
            f"of maximum likelihood: {reason}"
        )
    risk = expit(X @ params)
    model.update(
        intercept=float(params[0]),
        constant_risk=None,
        coefficients={term: float(value) for term, value in zip(terms, params[1:], strict=True)},
        standard_errors={name: float(value) for name, value in zip([INTERCEPT, *terms], bse, strict=True)},
        c_statistic=c_statistic(y, risk),
        calibration=calibration(y, risk, ids),
        method=method,
        converged=bool(converged),
        iterations=iterations,
    )
    return model


ALL_COMPLETE_CASES = "all complete cases of the snapshot"


def fit_case_mix(rows, complication_types, cut_date, *, exclude=None, outcomes=None) -> dict:
    """{outcome code: model dict} on every complete case of ``rows``, less those ``exclude(row)`` is true for.

    ``complication_types``: the vocabulary as the snapshot stores it (dicts with code and category).
    ``outcomes``: codes to fit (default: all of ``OUTCOME_CODES``).
    """
    cases = _Cases(rows, complication_types, cut_date, outcomes)
    keep = np.ones(len(cases.rows), dtype=bool) if exclude is None else ~cases.mask(exclude)
    fitted_on = ALL_COMPLETE_CASES if exclude is None else f"{ALL_COMPLETE_CASES}, less the excluded rows"
    return {o.code: _fit(cases, o, keep, fitted_on) for o in cases.outcomes}


def _surgeon_fits(cases, surgeon_ids, threshold):
    # Many surgeons: each fit starts from the fit on all experienced surgeons (fewer Newton steps, same answer).
    warm = len(surgeon_ids) > 1
    experienced_cases = cases.mask(lambda row: experienced(row, threshold))
    surgeons = np.array([row.surgeon_id for row in cases.rows])
    overall = {}
    for surgeon_id in surgeon_ids:
        keep = experienced_cases & (surgeons != surgeon_id)
        fitted_on = (
            f"complete cases of experienced surgeons (at least {threshold} pumps placed before), surgeon "
            f"{surgeon_id} excluded"
        )
        exclusion = {"surgeon_id": surgeon_id, "experience_threshold": threshold}
        models = {}
        for o in cases.outcomes:
            start = None
            if warm:
                if o.code not in overall:
                    overall[o.code] = _fit(cases, o, experienced_cases, "")
                if overall[o.code]["intercept"] is not None:
                    start = {INTERCEPT: overall[o.code]["intercept"], **overall[o.code]["coefficients"]}
            models[o.code] = _fit(cases, o, keep, fitted_on, exclusion, start=start)
        yield surgeon_id, models


def fit_for_surgeon(
    rows, complication_types, cut_date, surgeon_id, *, outcomes=None, threshold=EXPERIENCE_THRESHOLD
) -> dict:
    """{outcome code: model dict} on complete cases of experienced surgeons other than ``surgeon_id``.

    The baseline for a risk-adjusted CUSUM of that surgeon: cases with at least ``threshold`` pumps
    placed before (reports.outcomes.experienced), none of them the charted surgeon's.
    """
    cases = _Cases(rows, complication_types, cut_date, outcomes)
    return dict(_surgeon_fits(cases, [surgeon_id], threshold))[surgeon_id]


def fit_for_surgeons(
    rows, complication_types, cut_date, surgeon_ids=None, *, outcomes=None, threshold=EXPERIENCE_THRESHOLD
) -> dict:
    """{surgeon id: fit_for_surgeon(...)} for each of ``surgeon_ids`` (default: every surgeon in ``rows``)."""
    cases = _Cases(rows, complication_types, cut_date, outcomes)
    surgeon_ids = sorted({row.surgeon_id for row in cases.rows}) if surgeon_ids is None else list(surgeon_ids)
    return dict(_surgeon_fits(cases, surgeon_ids, threshold))


# --- using a stored model ------------------------------------------------------------------


def _stored_predictors(model):
    if model.get("version") != VERSION:
        raise ValueError(f"case-mix model version {model.get('version')} cannot be read by version {VERSION}")
    try:
        return [_PREDICTORS_BY_NAME[p["name"]] for p in model["predictors"]]
    except KeyError as error:
        raise ValueError(f"the model uses a predictor this code does not know: {error}") from None


def _risk(linear_predictor):
    if linear_predictor >= 0:
        return 1.0 / (1.0 + math.exp(-linear_predictor))
    z = math.exp(linear_predictor)
    return z / (1.0 + z)


def predict(model, rows) -> dict:
    """{row.id: expected risk} from the stored model alone; a level without a term takes the reference's risk.

    A model without an intercept (a constant outcome) gives every row its ``constant_risk`` (None when it
    was fitted on no case at all).
    """
    predictors = _stored_predictors(model)
    if model["intercept"] is None:
        return {row.id: model["constant_risk"] for row in rows}
    intercept, coefficients = model["intercept"], model["coefficients"]
    return {
        row.id: _risk(intercept + sum(coefficients.get(p.term(p.level(row)), 0.0) for p in predictors)) for row in rows
    }


def _group_order(group):
    # None last; otherwise by type name, then value (groups of one key are usually all str or all int)
    return (group is None, type(group).__name__, group if isinstance(group, int | float | str) else str(group))


def observed_expected(model, rows, key: Callable[[object], object]) -> list[dict]:
    """[{"group", "n", "observed", "expected"}] by ``key(row)`` over the complete cases of ``rows``, sorted by group.

    ``expected`` is the sum of the cases' predicted risks (None for a model fitted on no case).
    """
    outcomes = case_outcomes(model, rows)
    complete = [row for row in rows if row.id in outcomes]
    risks = predict(model, complete)
    groups = {}
    for row in complete:
        name = key(row)
        group = groups.setdefault(name, {"group": name, "n": 0, "observed": 0, "expected": 0.0})
        group["n"] += 1
        group["observed"] += outcomes[row.id]
        risk = risks[row.id]
        group["expected"] = None if risk is None or group["expected"] is None else group["expected"] + risk
    return [groups[g] for g in sorted(groups, key=_group_order)]


def observed_expected_total(groups: Iterable[dict]) -> dict:
    """The sums of observed_expected's groups."""
    groups = list(groups)
    expected = [g["expected"] for g in groups]
    return {
        "n": sum(g["n"] for g in groups),
        "observed": sum(g["observed"] for g in groups),
        "expected": None if any(e is None for e in expected) else float(sum(expected)),
    }
