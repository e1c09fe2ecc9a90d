"""A dose edited on the implantation's page shows in the implantation's history, with the reason and who (issue 13).

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e -q``
"""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from registry.models import Treatment
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
REASON = "Corrected from the pump refill sheet"


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def test_a_dose_edited_on_the_implantation_page_shows_in_its_history_with_reason_and_name(
    live_server, page, centre_a, data_manager_a
):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a, surgeon=factories.SurgeonFactory(centre=centre_a)
    )
    dose = factories.TreatmentFactory(implantation=implantation, dose=Decimal("0.120"))
    log_in(page, live_server, data_manager_a)

    # --- Edit the dose in its inline row, give the page's reason, save.
    page.goto(f"{live_server.url}/admin/registry/implantation/{implantation.pk}/change/")
    page.locator("#id_treatments-0-dose").fill("0.100")
    page.locator("#id_change_reason").fill(REASON)
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    assert Treatment.objects.get(pk=dose.pk).dose == Decimal("0.100")

    # --- The implantation's History lists the dose's change, the reason and the data manager.
    page.locator("a.historylink").click()
    expect(page).to_have_url(re.compile(rf"/admin/registry/implantation/{implantation.pk}/history/"))
    row = page.locator("#child-history tr.child-history-row").first
    expect(row).to_contain_text("HAI dose")
    expect(row).to_contain_text("Changed")
    expect(row).to_contain_text("dose: 0.120 -> 0.100")
    expect(row.locator("td.reason")).to_have_text(REASON)
    expect(row).to_contain_text(data_manager_a.username)
    assert not page.problems, page.problems
