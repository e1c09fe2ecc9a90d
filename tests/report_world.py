"""A small multi-centre registry for report-run tests."""

from . import factories
from .factories import days_after


def build(centres=3, per_centre=6, recipients=True):
    made = []
    for index in range(centres):
        centre = factories.CentreFactory(code=f"RPT-{index + 1}")
        if recipients:
            factories.ReportRecipientFactory(centre=centre, email=f"lead@rpt-{index + 1}.example.org")
        surgeon = factories.SurgeonFactory(centre=centre, prior_pump_count=20)
        for number in range(per_centre):
            implantation = factories.ImplantationFactory(
                patient__centre=centre, surgeon=surgeon, implanted_on=days_after(number * 7)
            )
            if number % 3:
                factories.TreatmentFactory(implantation=implantation)
            if number % 4 == 0:
                factories.ComplicationFactory(implantation=implantation)
            factories.FollowUpFactory(implantation=implantation)
        made.append(centre)
    return made
