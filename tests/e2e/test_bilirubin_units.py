"""A data manager of a centre that reports bilirubin in mg/dL enters 1.2 mg/dL on the implantation page in a real
browser; the registry stores 20.5 µmol/L (1 mg/dL = 17.1 µmol/L), the page shows 1.20 mg/dL, and the same record
read in µmol/L shows 20.5 µmol/L. The column headers read the units as written, never upper-cased (issue 13).

Run: ``CI=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_bilirubin_units.py -q``
"""

import datetime
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from registry.models import LiverTest
from sites.models import BilirubinUnit
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    # live_server needs a transactional database; serialized_rollback puts back the migrations' vocabulary.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
IMPLANTED_ON = datetime.date(2024, 3, 1)
MEASURED_ON = IMPLANTED_ON + datetime.timedelta(days=30)


def log_in(page, admin, user):
    page.goto(admin)
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)


def header_as_rendered(page, column):
    """The column header's text as the browser draws it (innerText applies text-transform) and its style."""
    header = page.locator(f"#liver_tests-group th.column-{column}")
    return header.evaluate("th => [th.innerText.trim(), getComputedStyle(th).textTransform]")


def test_bilirubin_in_mg_per_dl_is_stored_in_micromol_and_shown_back(live_server, page, centre_a, data_manager_a):
    centre_a.bilirubin_unit = BilirubinUnit.MG_PER_DL
    centre_a.save()
    implantation = factories.ImplantationFactory(patient__centre=centre_a, implanted_on=IMPLANTED_ON)
    admin = f"{live_server.url}/admin/"
    log_in(page, admin, data_manager_a)

    # --- The row's columns name the centre's unit, as written.
    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    tests = page.locator("#liver_tests-group")
    text, transform = header_as_rendered(page, "bilirubin_umol_per_l")
    assert "Total bilirubin (mg/dL)" in text and transform == "none"
    text, transform = header_as_rendered(page, "bilirubin_upper_limit_umol_per_l")
    assert "(mg/dL)" in text and "MG/DL" not in text and transform == "none"
    caption = tests.locator("h2").first
    assert caption.evaluate("h2 => getComputedStyle(h2).textTransform") == "none"

    # --- 1.2 mg/dL entered on a new row; its unit select starts at the centre's unit.
    tests.locator(".add-row a").click()
    tests.locator("#id_liver_tests-0-measured_on").fill(MEASURED_ON.isoformat())
    tests.locator("#id_liver_tests-0-bilirubin_umol_per_l").fill("1.2")
    expect(tests.locator("#id_liver_tests-0-bilirubin_entry_unit")).to_have_value(BilirubinUnit.MG_PER_DL)
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    expect(page).to_have_url(re.compile(rf"/admin/registry/implantation/{implantation.pk}/change/$"))

    # --- Stored in µmol/L with one decimal; shown in mg/dL.
    test = LiverTest.objects.get(implantation=implantation)
    assert test.bilirubin_umol_per_l == Decimal("20.5")
    expect(page.locator("#id_liver_tests-0-bilirubin_umol_per_l")).to_have_value("1.20")

    # --- ... and back: the centre's laboratory now reports µmol/L (the coordinator changes the centre's unit);
    # the same record reads 20.5 µmol/L, the header "µmol/L", not "ΜMOL/L".
    centre_a.refresh_from_db()
    centre_a.bilirubin_unit = BilirubinUnit.MICROMOL_PER_L
    centre_a.save()
    page.reload()
    expect(page.locator("#id_liver_tests-0-bilirubin_umol_per_l")).to_have_value("20.5")
    text, transform = header_as_rendered(page, "bilirubin_umol_per_l")
    assert "Total bilirubin (µmol/L)" in text and "ΜMOL" not in text and transform == "none"

    page.goto(f"{admin}registry/livertest/")
    expect(page.locator("#result_list td.field-bilirubin_in_centre_unit")).to_have_text("20.5 µmol/L")
    list_header = page.locator("#result_list thead th.column-ast_u_per_l")
    assert list_header.evaluate("th => th.innerText.trim()") == "AST (U/L)"
    assert page.problems == []
