"""A data manager enters an unusual FUDR dose in a real browser, is asked to confirm it, confirms, and it is saved.

Run: ``CI=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_soft_warning_admin.py -q``
"""

import datetime
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from registry.models import SoftWarningConfirmation, Treatment
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    # live_server needs a transactional database; serialized_rollback puts back the migrations' vocabulary.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
IMPLANTED_ON = datetime.date(2024, 3, 1)
GIVEN_ON = IMPLANTED_ON + datetime.timedelta(days=14)
CODE = "fudr_dose_outside_usual"


def iso(date):
    """YYYY-MM-DD, the only form the admin takes (registry.dates)."""
    return date.isoformat()


def test_data_manager_confirms_an_unusual_fudr_dose(live_server, page, centre_a, data_manager_a):
    dm = data_manager_a
    surgeon = factories.SurgeonFactory(centre=centre_a, code="SURG-A1")
    implantation = factories.ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=IMPLANTED_ON)
    admin = f"{live_server.url}/admin/"

    page.goto(admin)
    page.locator("#id_username").fill(dm.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)

    # --- A FUDR dose of 0.5 mg/kg/day: within the hard range (0.01-0.6), outside the usual 0.1-0.3.
    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    doses = page.locator("#treatments-group")
    doses.locator(".add-row a").click()
    doses.locator("#id_treatments-0-given_on").fill(iso(GIVEN_ON))
    doses.locator("#id_treatments-0-drug").select_option("fudr")
    doses.locator("#id_treatments-0-dose").fill("0.5")
    doses.locator("#id_treatments-0-dose_unit").select_option("mg/kg/day")
    page.locator('input[name="_continue"]').click()

    # --- Asked, not saved: the warning with its value, and a box to confirm it.
    expect(page.locator(".errornote")).to_be_visible()
    warning = doses.locator(f'.soft-warning[data-code="{CODE}"]')
    expect(warning).to_contain_text("0.5 mg/kg/day is outside the usual 0.1–0.3 mg/kg/day")
    expect(warning).to_contain_text("I confirm this value is correct")
    expect(doses.locator(".field-dose .errorlist")).to_contain_text("0.5 mg/kg/day")
    assert not Treatment.objects.exists()
    box = doses.locator(f'input[type="checkbox"][name="treatments-0-confirmed_warnings"][value="{CODE}"]')
    expect(box).not_to_be_checked()

    # --- Confirmed and saved.
    box.check()
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    expect(page).to_have_url(re.compile(rf"/admin/registry/implantation/{implantation.pk}/change/$"))
    expect(page.locator(".soft-warning")).to_have_count(0)
    expect(page.locator("#id_treatments-0-dose")).to_have_value("0.500")

    treatment = Treatment.objects.get(implantation=implantation)
    assert (treatment.drug, treatment.dose, treatment.dose_unit, treatment.given_on) == (
        "fudr",
        Decimal("0.500"),
        "mg/kg/day",
        GIVEN_ON,
    )
    (confirmation,) = SoftWarningConfirmation.objects.filter(record_model="registry.treatment", record_id=treatment.pk)
    assert (confirmation.code, confirmation.confirmed_by, confirmation.confirmed_by_name, confirmation.centre) == (
        CODE,
        dm,
        dm.username,
        centre_a,
    )
    assert "0.5 mg/kg/day" in confirmation.message
    assert page.problems == []
