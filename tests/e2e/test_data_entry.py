"""A data manager enters a case through the admin in a real browser, and cannot reach another centre's patient.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e -q``
"""

import datetime
import json
import re

import pytest
from playwright.sync_api import expect

from registry.models import Implantation, Patient
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    # live_server needs a transactional database; serialized_rollback puts back
    # the migrations' vocabulary (complication types) after the flush.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
OTHER_PSEUDONYM = "HAI-BBBB2222"
IMPLANTED_ON = datetime.date(2024, 3, 1)
DOESNT_EXIST = re.compile(r"doesn.t exist")  # Django writes "doesn’t exist"


def iso(date):
    """As a data manager types a date: YYYY-MM-DD, the only form the admin takes (registry.dates)."""
    return date.isoformat()


def choose_in_autocomplete(page, field, term, expected):
    """Open the select2 widget of ``field``, type ``term`` and pick the option reading ``expected``."""
    page.locator(f'[aria-labelledby="select2-id_{field}-container"]').click()
    search = page.locator(".select2-container--open .select2-search__field")
    search.fill(term)
    option = page.locator(".select2-container--open .select2-results__option", has_text=expected)
    expect(option).to_have_count(1)
    option.click()
    expect(page.locator(f"#select2-id_{field}-container")).to_have_text(expected)


def test_data_manager_enters_a_case_and_cannot_reach_another_centre(
    live_server, page, centre_a, centre_b, data_manager_a
):
    dm = data_manager_a
    surgeon = factories.SurgeonFactory(centre=centre_a, code="SURG-A1")
    factories.SurgeonFactory(centre=centre_b, code="SURG-B1")
    other = factories.ImplantationFactory(patient__centre=centre_b, patient__pseudonym=OTHER_PSEUDONYM).patient
    complication_type = factories.ComplicationTypeFactory(code="biliary_sclerosis")
    admin = f"{live_server.url}/admin/"

    # --- Log in through the form.
    page.goto(admin)
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(dm.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)
    expect(page.locator("#user-tools")).to_contain_text(dm.username)

    # --- A new patient of centre A; the pseudonym is generated.
    page.goto(f"{admin}registry/patient/add/")
    expect(page.locator("#id_centre option:not([value=''])")).to_have_count(1)  # only the own centre is offered
    page.locator("#id_centre").select_option(str(centre_a.pk))
    page.locator("#id_birth_year").fill("1958")
    page.locator("#id_sex").select_option("male")
    page.locator("#id_primary_tumour").select_option("colorectal")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")
    patient = Patient.objects.get(centre=centre_a, birth_year=1958)
    assert re.fullmatch(r"HAI-[A-Z0-9]{8}", patient.pseudonym)
    expect(page.locator("#result_list")).to_contain_text(patient.pseudonym)

    # --- An implantation for that patient, chosen through the autocompletes, with a complication.
    page.goto(f"{admin}registry/implantation/add/")
    choose_in_autocomplete(page, "patient", patient.pseudonym, patient.pseudonym)
    page.locator('[aria-labelledby="select2-id_surgeon-container"]').click()
    page.locator(".select2-container--open .select2-search__field").fill("SURG")
    options = page.locator(".select2-container--open .select2-results__option")
    expect(options).to_have_text(["SURG-A1"])  # centre B's surgeon is not offered
    options.first.click()
    expect(page.locator("#select2-id_surgeon-container")).to_have_text("SURG-A1")
    page.locator("#id_implanted_on").fill(iso(IMPLANTED_ON))
    page.locator("#id_indication").select_option("unresectable_first_line")
    page.locator("#id_approach").select_option("laparotomy")
    page.locator("#id_device").select_option("constant_flow_pump")

    complications = page.locator("#complications-group")
    complications.locator(".add-row a").click()
    complications.locator("#id_complications-0-type").select_option(str(complication_type.pk))
    # Wrong twice: onset before the implantation, and a grade outside 1-5.
    complications.locator("#id_complications-0-onset_on").fill(iso(IMPLANTED_ON - datetime.timedelta(days=10)))
    complications.locator("#id_complications-0-grade").fill("7")
    page.locator('input[name="_save"]').click()

    expect(page.locator(".errornote")).to_be_visible()
    expect(complications.locator(".field-onset_on .errorlist")).to_have_text(
        f"This date precedes the implantation ({IMPLANTED_ON})."
    )
    expect(complications.locator(".field-grade .errorlist")).to_contain_text("less than or equal to 5")
    assert not Implantation.objects.filter(patient=patient).exists()
    # The choices survive the round trip.
    expect(page.locator("#select2-id_patient-container")).to_have_text(patient.pseudonym)
    expect(page.locator("#select2-id_surgeon-container")).to_have_text("SURG-A1")

    onset_on = IMPLANTED_ON + datetime.timedelta(days=45)
    complications.locator("#id_complications-0-onset_on").fill(iso(onset_on))
    complications.locator("#id_complications-0-grade").fill("3")
    page.locator('input[name="_save"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was added successfully")

    # --- In the database, with the data manager on every history row.
    implantation = Implantation.objects.get(patient=patient)
    assert (implantation.surgeon, implantation.implanted_on) == (surgeon, IMPLANTED_ON)
    complication = implantation.complications.get()
    assert (complication.type, complication.onset_on, complication.grade) == (complication_type, onset_on, 3)
    for record in (patient, implantation, complication):
        rows = list(record.history.all())
        assert [row.history_type for row in rows] == ["+"], record
        assert {row.history_user for row in rows} == {dm}, record

    # --- Another centre's patient: not in the list, not in the autocomplete, not by URL.
    page.goto(f"{admin}registry/patient/")
    page.locator("#searchbar").fill(patient.pseudonym)
    page.locator("#searchbar").press("Enter")
    expect(page.locator("#result_list")).to_contain_text(patient.pseudonym)  # the search works...
    page.locator("#searchbar").fill(OTHER_PSEUDONYM)
    page.locator("#searchbar").press("Enter")
    expect(page).to_have_url(re.compile(rf"\?q={OTHER_PSEUDONYM}"))
    expect(page.locator("#changelist-search")).to_contain_text("0 results")  # ...and finds nothing here
    expect(page.locator("#result_list")).to_have_count(0)
    expect(page.locator("#changelist-form")).to_contain_text("0 patients")
    expect(page.locator("#changelist-form")).not_to_contain_text(OTHER_PSEUDONYM)

    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    page.locator('[aria-labelledby="select2-id_patient-container"]').click()
    page.locator(".select2-container--open .select2-search__field").fill(OTHER_PSEUDONYM)
    expect(page.locator(".select2-container--open .select2-results__message")).to_have_text("No results found")
    page.keyboard.press("Escape")
    answer = page.request.get(
        f"{admin}autocomplete/",
        params={
            "term": OTHER_PSEUDONYM,
            "app_label": "registry",
            "model_name": "implantation",
            "field_name": "patient",
        },
    )
    assert answer.ok and json.loads(answer.text())["results"] == []

    page.goto(f"{admin}registry/patient/{other.pk}/change/")
    expect(page).to_have_url(admin)
    expect(page.locator(".messagelist .warning")).to_contain_text(DOESNT_EXIST)
    assert OTHER_PSEUDONYM not in page.content()
    # The same answer as for an id that does not exist at all: nothing tells the patient is there.
    page.goto(f"{admin}registry/patient/{other.pk + 10_000}/change/")
    expect(page).to_have_url(admin)
    expect(page.locator(".messagelist .warning")).to_contain_text(DOESNT_EXIST)

    assert page.problems == []  # admin CSS/JS (select2 included) all loaded, no script errors
