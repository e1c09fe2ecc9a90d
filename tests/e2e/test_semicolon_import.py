"""A data manager uploads a semicolon-separated follow-up file with one bad row, in a real browser (issue 13).

The errors are written in the page (not only on hover), the tables stay within the page's width, nothing
is written, and the error file names the row and the column.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e -q``
"""

import csv
import datetime
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from registry.imports import FollowUpResource
from registry.models import FollowUp
from tests import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
IMPLANTED_ON = datetime.date(2024, 3, 1)


def semicolon_file(rows):
    """As Excel saves "CSV" in French, Dutch or Italian settings: semicolons, a BOM, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(FollowUpResource.columns)
    for row in rows:
        writer.writerow([row.get(name, "") for name in FollowUpResource.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def test_semicolon_file_with_a_bad_row_shows_the_error_writes_nothing_and_offers_the_error_file(
    live_server, page, centre_a, data_manager_a, tmp_path
):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a, patient__pseudonym="HAI-AAAA1111", implanted_on=IMPLANTED_ON
    )
    patient = implantation.patient.pseudonym
    good = {"patient": patient, "implanted_on": "2024-03-01", "contact_on": "2024-06-01", "vital_status": "alive"}
    bad = {**good, "contact_on": "2024-09-01", "vital_status": "asleep"}
    admin = f"{live_server.url}/admin/"

    page.goto(admin)
    page.locator("#id_username").fill(data_manager_a.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page.locator("#user-tools")).to_contain_text(data_manager_a.username)

    page.goto(f"{admin}registry/followup/import/")
    expect(page.locator("#import-template-download")).to_be_visible()
    page.locator("#id_format").select_option(label="csv")
    page.locator("#id_import_file").set_input_files(
        files=[
            {
                "name": "follow-ups.csv",
                "mimeType": "text/csv",
                "buffer": semicolon_file([good, bad, {**good, "contact_on": "2024-12-01"}]),
            }
        ]
    )
    page.locator('input[type="submit"]').click()

    # The error is text in the page, naming the row and the column.
    errors = page.locator("#import-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Row 2, column vital_status")
    expect(errors).to_contain_text("Unknown code 'asleep'. Use one of: alive, dead.")
    expect(page.locator("td.row-errors").first).to_contain_text("vital_status: Unknown code 'asleep'")
    assert not page.get_by_role("button", name="Confirm import").count()
    # The table scrolls inside the page instead of widening it.
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width
    assert FollowUp.objects.count() == 0 and FollowUp.history.count() == 0

    with page.expect_download() as download_info:
        page.locator("#import-errors-download").click()
    download = download_info.value
    assert re.fullmatch(r"followup_import_errors\.csv", download.suggested_filename)
    saved = tmp_path / "errors.csv"
    download.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(Path(saved).read_text(encoding="utf-8-sig"))))
    assert rows == [
        {
            "row": "2",
            "column": "vital_status",
            "value": "asleep",
            "message": "Unknown code 'asleep'. Use one of: alive, dead.",
        }
    ]
    assert FollowUp.objects.count() == 0
    assert page.problems == []
