"""The pump refill: the flow the pump delivered and the daily dose the fill gives (issue 14).

An implanted constant-flow pump is refilled every 14 days or so: the nurse empties the reservoir,
measures the volume returned, and fills it with the drug at a concentration the pharmacy made up for
the patient's weight. Two values follow from what is recorded and are derived here, never typed in:

**Measured flow rate** (mL/day), the flow check of a refill (the volume the pump delivered since the
last refill, divided by the days since it)::

    measured flow = (volume filled at the previous refill − volume returned now) ÷ days since that refill

It needs a previous refill of the same implantation with its filled volume; the first refill after the
operation has no measured flow (the priming fill in theatre is not a recorded refill).

**Computed daily dose** (mg/kg/day), the inverse of how the MSKCC regimen makes up a FUDR fill
(Kemeny et al.: FUDR 0.12 mg/kg/day × 30 mL ÷ pump flow rate, i.e. the drug for as many days as the
flow takes to empty the reservoir, so concentration = dose × weight ÷ flow)::

    computed dose = drug concentration × flow rate ÷ body weight

with the flow rate measured at this refill when it is known (the pump's own rate, which is what the
MSKCC pharmacy re-bases each fill on), else the pump model's nominal rate. The computed dose is set
against the stated mg/kg/day dose; more than ``DOSE_TOLERANCE`` apart is a soft warning
(``registry.soft_warnings``: ``dose_differs_from_computed``).
"""

import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import OuterRef, Q, Subquery

from .vocabulary import Device, DoseUnit

DOSE_TOLERANCE = Decimal("0.10")  # issue 14: "more than 10% apart"
LIVER_TEST_WINDOW_DAYS = 7  # the liver tests of a refill are drawn on the day or in the week before
FLOW_PLACES = Decimal("0.01")
DOSE_PLACES = Decimal("0.001")


def measured_flow(previous_filled_ml, previous_on, returned_ml, on):
    """mL/day delivered since the previous refill, or None when it cannot be derived."""
    if None in (previous_filled_ml, previous_on, returned_ml, on):
        return None
    days = (on - previous_on).days
    if days <= 0:
        return None
    delivered = Decimal(str(previous_filled_ml)) - Decimal(str(returned_ml))
    if delivered < 0:
        return None
    return (delivered / days).quantize(FLOW_PLACES, ROUND_HALF_UP)


def computed_dose(concentration_mg_per_ml, flow_ml_per_day, body_weight_kg):
    """mg/kg/day that this concentration at this flow gives this patient, or None."""
    if None in (concentration_mg_per_ml, flow_ml_per_day, body_weight_kg) or not body_weight_kg:
        return None
    dose = Decimal(str(concentration_mg_per_ml)) * Decimal(str(flow_ml_per_day)) / Decimal(str(body_weight_kg))
    return dose.quantize(DOSE_PLACES, ROUND_HALF_UP)


def dose_difference(stated, computed):
    """|computed − stated| ÷ stated, the relative gap the soft warning tests."""
    if stated in (None, 0) or computed is None:
        return None
    stated = Decimal(str(stated))
    return abs(Decimal(str(computed)) - stated) / stated


# --- for one treatment row ---------------------------------------------------------------------


def previous_refill(treatment):
    """The same implantation's refill before this one (by date, then entry order), or None."""
    if not treatment.implantation_id or treatment.given_on is None:
        return None
    earlier = Q(given_on__lt=treatment.given_on)
    if treatment.pk:
        earlier |= Q(given_on=treatment.given_on, id__lt=treatment.pk)
    model = type(treatment)
    return (
        model.objects.filter(implantation_id=treatment.implantation_id)
        .filter(earlier)
        .exclude(pk=treatment.pk)
        .order_by("-given_on", "-id")
        .only("id", "given_on", "filled_volume_ml")
        .first()
    )


def flow_of(treatment, previous=None):
    """The measured flow rate at this refill (mL/day), or None.

    Reads the previous refill from the annotations of ``with_previous_refill`` when the row has them
    (a list: no query per row), else looks it up.
    """
    if treatment.returned_volume_ml is None:
        return None
    if previous is None and hasattr(treatment, "previous_given_on"):
        return flow_of_row(treatment)
    previous = previous if previous is not None else previous_refill(treatment)
    if previous is None:
        return None
    return measured_flow(previous.filled_volume_ml, previous.given_on, treatment.returned_volume_ml, treatment.given_on)


def _nominal_flow(treatment):
    implantation = treatment.parent
    pump_model = implantation.pump_model if implantation is not None and implantation.pump_model_id else None
    return pump_model.nominal_flow_ml_per_day if pump_model is not None else None


def daily_dose(treatment):
    """(computed mg/kg/day, flow used, "measured" or "nominal") this fill gives, or None without its inputs."""
    if treatment.drug_concentration_mg_per_ml is None or treatment.body_weight_kg is None:
        return None
    flow, basis = flow_of(treatment), "measured"
    if flow is None:
        flow, basis = _nominal_flow(treatment), "nominal"
    if flow is None:
        return None
    return computed_dose(treatment.drug_concentration_mg_per_ml, flow, treatment.body_weight_kg), flow, basis


def dose_check(treatment):
    """``daily_dose`` for a dose stated in mg/kg/day (the one it can be compared with), else None."""
    if treatment.dose_unit != DoseUnit.MG_PER_KG_PER_DAY or treatment.dose is None:
        return None
    return daily_dose(treatment)


def errors(treatment):
    """Hard rules on the refill's volumes and its linked liver tests ({field: message}, for ``clean``)."""
    out = {}
    implantation = treatment.parent
    volumes = ("returned_volume_ml", "filled_volume_ml")
    if implantation is not None and implantation.device == Device.ARTERIAL_PORT:
        for field in volumes:
            if getattr(treatment, field) is not None:
                out[field] = "An arterial port has no reservoir: leave the pump volumes empty."
    if "filled_volume_ml" not in out and treatment.filled_volume_ml is not None and implantation is not None:
        pump_model = implantation.pump_model if implantation.pump_model_id else None
        if pump_model is not None and treatment.filled_volume_ml > pump_model.reservoir_volume_ml:
            out["filled_volume_ml"] = (
                f"{treatment.filled_volume_ml} mL is more than the {pump_model.name}'s reservoir "
                f"({pump_model.reservoir_volume_ml} mL)."
            )
    if "returned_volume_ml" not in out and treatment.returned_volume_ml is not None:
        previous = previous_refill(treatment)
        if previous is not None and previous.filled_volume_ml is not None:
            if treatment.returned_volume_ml > previous.filled_volume_ml:
                out["returned_volume_ml"] = (
                    f"{treatment.returned_volume_ml} mL returned is more than the {previous.filled_volume_ml} mL "
                    f"filled at the previous refill ({previous.given_on})."
                )
    test = treatment.liver_test if treatment.liver_test_id else None
    if test is not None:
        if test.implantation_id != treatment.implantation_id:
            out["liver_test"] = "The linked liver tests belong to another implantation."
        elif treatment.given_on and not (
            treatment.given_on - datetime.timedelta(days=LIVER_TEST_WINDOW_DAYS)
            <= test.measured_on
            <= treatment.given_on
        ):
            out["liver_test"] = (
                f"The linked liver tests ({test.measured_on}) are not from this refill: they must be drawn on "
                f"{treatment.given_on} or in the {LIVER_TEST_WINDOW_DAYS} days before."
            )
    return out


# --- for lists (API, exports): the previous refill as annotations, one query ------------------------------


def with_previous_refill(queryset):
    """Annotate ``previous_given_on`` and ``previous_filled_volume_ml`` for ``flow_of_row``.

    Correlated subqueries rather than a window function, so that a filter on the list (a date range,
    one drug) does not change which refill counts as the previous one.
    """
    model = queryset.model
    previous = (
        model.objects.filter(implantation_id=OuterRef("implantation_id"))
        .filter(Q(given_on__lt=OuterRef("given_on")) | Q(given_on=OuterRef("given_on"), id__lt=OuterRef("id")))
        .order_by("-given_on", "-id")
    )
    return queryset.annotate(
        previous_given_on=Subquery(previous.values("given_on")[:1]),
        previous_filled_volume_ml=Subquery(previous.values("filled_volume_ml")[:1]),
    )


def flow_of_row(row):
    """The measured flow of a treatment annotated by ``with_previous_refill`` (object or dict)."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name, None)
    return measured_flow(
        get("previous_filled_volume_ml"), get("previous_given_on"), get("returned_volume_ml"), get("given_on")
    )
