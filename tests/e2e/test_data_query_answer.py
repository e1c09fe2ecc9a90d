"""A data manager answers a data query in the admin, and the coordinator closes it (issue 12), in a real browser.

The query is the coordinator's, on an implantation of centre A. The data manager of A finds it from the
implantation's page, writes the answer and saves; the query is then answered, with their name and the time.
The coordinator then closes it: from the list (its action) in the first test; with the button on the
query's page in the second (whose form once sat inside the answer form and submitted that instead).

Run: ``CI=1 DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_data_query_answer.py -q``
"""

import re

import pytest
from django.utils import formats, timezone, translation
from playwright.sync_api import expect

from registry.models import DataQuery, DataQueryStatus
from tests import factories

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
QUESTION = "Blood loss 2500 mL: is it 250 mL? Please check the operative note."
OTHER_QUESTION = "Centre B: the pump model is missing."
ANSWER = "Operative note says 250 mL; corrected on the implantation."
CLOSE_NOTE = "Checked against the corrected record."
OPEN, ANSWERED, CLOSED = (
    str(s.label) for s in (DataQueryStatus.OPEN, DataQueryStatus.ANSWERED, DataQueryStatus.CLOSED)
)


def log_in(page, admin, user):
    page.context.clear_cookies()
    page.goto(admin)
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(user.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()
    expect(page).to_have_url(admin)
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def readonly(page, field):
    return page.locator(f".field-{field} .readonly")


@pytest.fixture
def world(centre_a, centre_b, coordinator):
    implantation = factories.ImplantationFactory(
        patient__centre=centre_a, patient__pseudonym="HAI-AAAA1111", blood_loss_ml=2500
    )
    query = factories.DataQueryFactory(
        implantation=implantation, field_name="blood_loss_ml", raised_by=coordinator, message=QUESTION
    )
    other = factories.DataQueryFactory(
        implantation__patient__centre=centre_b, implantation__patient__pseudonym="HAI-BBBB2222", message=OTHER_QUESTION
    )
    return implantation, query, other


def test_data_manager_answers_and_coordinator_closes(live_server, page, world, data_manager_a, coordinator):
    implantation, query, other = world
    admin = f"{live_server.url}/admin/"
    query_url = f"{admin}registry/dataquery/{query.pk}/change/"

    # --- The data manager finds the query from the implantation's page.
    log_in(page, admin, data_manager_a)
    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    link = page.locator("#data-queries-link")
    expect(link).to_have_text("Data queries (1 unresolved)")
    expect(page.locator("#raise-data-query-link")).to_have_count(0)  # raising is the coordinator's
    link.click()
    expect(page).to_have_url(
        re.compile(rf"/dataquery/\?record_model=registry.implantation&record_id={implantation.pk}$")
    )
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".field-status")).to_have_text(OPEN)
    expect(rows.first.locator(".field-centre_code")).to_have_text("CENTRE-A")

    # The full list has centre A's query only, and no close action for a data manager.
    page.goto(f"{admin}registry/dataquery/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#changelist-form")).not_to_contain_text(OTHER_QUESTION)
    expect(page.locator('select[name="action"] option[value="close_selected"]')).to_have_count(0)
    page.goto(f"{admin}registry/dataquery/{other.pk}/change/")
    expect(page).to_have_url(admin)
    expect(page.locator(".messagelist .warning")).to_contain_text(re.compile(r"doesn.t exist"))

    page.go_back()
    page.go_back()
    page.locator("#result_list a", has_text=QUESTION).click()
    expect(page).to_have_url(re.compile(rf"/dataquery/{query.pk}/change/"))

    # --- The query's page: the question and its record read-only, the answer to write, no coordinator's buttons.
    expect(readonly(page, "message")).to_have_text(QUESTION)
    expect(readonly(page, "field_name")).to_have_text("blood_loss_ml")
    expect(readonly(page, "status")).to_have_text(OPEN)
    expect(readonly(page, "raised_by")).to_have_text(coordinator.username)
    expect(readonly(page, "answered_by")).to_have_text("-")
    expect(page.locator("#data-query-steps")).to_have_count(0)
    record_link = readonly(page, "record").locator("a")
    expect(record_link).to_have_attribute("href", f"/admin/registry/implantation/{implantation.pk}/change/")

    before = timezone.now()
    page.locator("#id_answer").fill(ANSWER)
    page.locator("#id_change_reason").fill("Answered from the operative note")
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    after = timezone.now()

    # --- Answered, by the data manager, now: in the database and its history...
    query.refresh_from_db()
    assert (query.status, query.answer, query.answered_by) == (DataQueryStatus.ANSWERED, ANSWER, data_manager_a)
    assert before <= query.answered_at <= after
    assert (query.closed_by, query.closed_at) == (None, None)
    last = query.history.order_by("-history_date", "-history_id").first()
    assert (last.status, last.history_user, last.history_change_reason) == (
        DataQueryStatus.ANSWERED,
        data_manager_a,
        "Answered from the operative note",
    )
    # ...and on the page.
    expect(readonly(page, "status")).to_have_text(ANSWERED)
    expect(readonly(page, "answered_by")).to_have_text(data_manager_a.username)
    with translation.override("en-gb"):  # as the admin shows it to this en-GB browser
        answered_at = formats.date_format(timezone.localtime(query.answered_at), "DATETIME_FORMAT")
    expect(readonly(page, "answered_at")).to_have_text(answered_at)
    expect(page.locator("#id_answer")).to_have_value(ANSWER)  # still the data manager's to amend, until closed
    # Wiping the answer out is refused, and changes nothing.
    page.locator("#id_answer").fill("   ")
    page.locator('input[name="_continue"]').click()
    expect(page.locator(".errornote")).to_be_visible()
    expect(page.locator(".field-answer .errorlist")).to_contain_text("Write the answer")
    assert DataQuery.objects.get(pk=query.pk).answer == ANSWER

    page.goto(f"{admin}registry/dataquery/?status=answered")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list .field-status")).to_have_text([ANSWERED])
    expect(page.locator("#result_list .field-answered_at")).not_to_have_text("-")
    # An answered query is still unresolved.
    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    expect(page.locator("#data-queries-link")).to_have_text("Data queries (1 unresolved)")

    # --- The coordinator closes it from the list of answered queries (the list's action).
    log_in(page, admin, coordinator)
    page.goto(query_url)
    expect(page.locator("#id_answer")).to_have_value(ANSWER)  # the data manager's answer, for the coordinator
    expect(readonly(page, "answered_by")).to_have_text(data_manager_a.username)
    page.goto(f"{admin}registry/dataquery/?status=answered")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)  # centre A's answered query; centre B's is still open
    rows.first.locator("input.action-select").check()
    page.locator('select[name="action"]').select_option("close_selected")
    page.locator('button[name="index"]').click()
    expect(page.locator(".messagelist .success")).to_have_text("1 query closed.")

    query.refresh_from_db()
    assert (query.status, query.closed_by, query.closed_automatically) == (DataQueryStatus.CLOSED, coordinator, False)
    assert query.answered_at <= query.closed_at <= timezone.now()
    assert (query.answer, query.answered_by) == (ANSWER, data_manager_a)  # the answer stays
    assert DataQuery.objects.get(pk=other.pk).status == DataQueryStatus.OPEN  # only the selected one
    page.goto(query_url)
    expect(readonly(page, "status")).to_have_text(CLOSED)
    expect(readonly(page, "closed_by")).to_have_text(coordinator.username)
    expect(readonly(page, "answer")).to_have_text(ANSWER)  # a closed query takes no answer, not even the coordinator's
    expect(page.locator('#data-query-steps input[value="Close this query"]')).to_have_count(0)

    # --- The data manager sees it closed, and can no longer answer it.
    log_in(page, admin, data_manager_a)
    page.goto(query_url)
    expect(readonly(page, "status")).to_have_text(CLOSED)
    expect(page.locator("#id_answer")).to_have_count(0)
    page.goto(f"{admin}registry/implantation/{implantation.pk}/change/")
    expect(page.locator("#data-queries-link")).to_have_text("Data queries (0 unresolved)")

    assert page.problems == []


def test_coordinator_closes_an_answered_query_with_the_button_on_its_page(
    live_server, page, world, data_manager_a, coordinator
):
    from registry.data_quality_services import answer_query

    _, query, _ = world
    query = answer_query(query, user=data_manager_a, answer=ANSWER)
    admin = f"{live_server.url}/admin/"
    query_url = f"{admin}registry/dataquery/{query.pk}/change/"

    log_in(page, admin, coordinator)
    page.goto(query_url)
    steps = page.locator("#data-query-steps")
    expect(steps.locator('input[value="Close this query"]')).to_be_visible()
    steps.locator("#close-note").fill(CLOSE_NOTE)
    with page.expect_navigation():
        steps.locator('input[value="Close this query"]').click()

    query.refresh_from_db()
    assert (query.status, query.closed_by, query.close_note) == (DataQueryStatus.CLOSED, coordinator, CLOSE_NOTE)
    expect(page).to_have_url(query_url)
    expect(page.locator(".messagelist .success")).to_have_text(f"Query {query.pk} closed.")
    expect(readonly(page, "status")).to_have_text(CLOSED)
    expect(readonly(page, "close_note")).to_have_text(CLOSE_NOTE)
