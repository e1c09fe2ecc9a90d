"""The data resolution workflow (issue 12): the coordinator raises, the centre's data manager answers (and
corrects the record), the coordinator closes or re-opens; each step kept with who and when, in the fields
and the history. Through the services and through the admin."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from registry.data_quality_services import answer_query, close_query, raise_query, reopen_query, run_checks
from registry.models import DataQuery, DataQueryStatus
from sites.models import Role
from sites.versioning import StaleRecord

from . import factories
from .admin_forms import record_form


@pytest.fixture
def implantation(centre_a):
    return factories.ImplantationFactory(patient__centre=centre_a)


@pytest.fixture
def dose(implantation):
    return factories.TreatmentFactory(implantation=implantation)


@pytest.fixture
def query(dose, coordinator):
    return raise_query(
        dose, user=coordinator, message="Is 0.12 mg/kg/day right? The pump log says 0.10.", field_name="dose"
    )


def steps(query):
    """(type, status, author's name) of each history row, oldest first."""
    return [
        (row.history_type, row.status, row.history_user_name)
        for row in query.history.order_by("history_date", "history_id")
    ]


# --------------------------------------------------------------------------- the services


def test_raise_answer_close_reopen_each_step_with_who_and_when(query, dose, coordinator, data_manager_a):
    assert (query.record_model, query.record_id, query.field_name) == ("registry.treatment", dose.pk, "dose")
    assert (query.patient, query.implantation, query.rule) == (dose.implantation.patient, dose.implantation, "manual")
    assert query.raised_by == coordinator and query.status == DataQueryStatus.OPEN

    query = answer_query(query, user=data_manager_a, answer="Corrected to 0.10 from the pump log.")
    assert (query.status, query.answered_by) == (DataQueryStatus.ANSWERED, data_manager_a)
    assert query.answered_at is not None and query.answered_at <= timezone.now()

    query = close_query(query, user=coordinator, note="Checked against the pump log.")
    assert (query.status, query.closed_by, query.closed_automatically) == (DataQueryStatus.CLOSED, coordinator, False)
    assert query.closed_at >= query.answered_at and query.close_note == "Checked against the pump log."

    query = reopen_query(query, user=coordinator, note="The log was of another pump.")
    assert (query.status, query.closed_by, query.closed_at) == (DataQueryStatus.OPEN, None, None)
    assert query.answer == "Corrected to 0.10 from the pump log."  # kept until the centre answers again

    assert steps(query) == [
        ("+", "open", "coordinator"),
        ("~", "answered", "dm-a"),
        ("~", "closed", "coordinator"),
        ("~", "open", "coordinator"),
    ]
    reopened = query.history.order_by("-history_date", "-history_id").first()
    assert (reopened.history_user, reopened.history_change_reason) == (coordinator, "The log was of another pump.")


def test_the_coordinator_may_answer_and_send_an_answer_back(query, coordinator):
    query = answer_query(query, user=coordinator, answer="Confirmed by phone with the centre.")
    query = reopen_query(query, user=coordinator)
    assert query.status == DataQueryStatus.OPEN


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR])
def test_only_the_coordinator_raises_closes_and_reopens(query, dose, centre_a, role):
    user = factories.user_with_role(role, centre_a)
    with pytest.raises(PermissionDenied):
        raise_query(dose, user=user, message="Check this.")
    with pytest.raises(PermissionDenied):
        close_query(query, user=user)
    query.refresh_from_db()
    assert query.status == DataQueryStatus.OPEN
    with pytest.raises(PermissionDenied):
        reopen_query(query, user=user)


def test_a_data_manager_answers_their_own_centres_queries_only(query, centre_a, centre_b, data_manager_a):
    for user in (
        factories.user_with_role(Role.DATA_MANAGER, centre_b),
        factories.user_with_role(Role.CENTRE_LEAD, centre_a),
        factories.user_with_role(Role.INVESTIGATOR),
    ):
        with pytest.raises(PermissionDenied):
            answer_query(query, user=user, answer="Looks right.")
    query.refresh_from_db()
    assert query.status == DataQueryStatus.OPEN and query.answer == ""
    assert answer_query(query, user=data_manager_a, answer="Looks right.").status == DataQueryStatus.ANSWERED


def test_a_closed_query_takes_no_answer_and_an_empty_answer_is_refused(query, coordinator, data_manager_a):
    with pytest.raises(ValidationError):
        answer_query(query, user=data_manager_a, answer="   ")
    query = close_query(query, user=coordinator)
    with pytest.raises(ValidationError):
        answer_query(query, user=data_manager_a, answer="Corrected.")
    with pytest.raises(ValidationError):
        close_query(query, user=coordinator)


def test_a_step_on_a_query_changed_meanwhile_is_refused(query, coordinator, data_manager_a):
    seen = DataQuery.objects.get(pk=query.pk)
    answer_query(query, user=data_manager_a, answer="Corrected.")
    with pytest.raises(StaleRecord):
        close_query(seen, user=coordinator)


def test_a_query_names_a_field_of_its_record(dose, implantation, coordinator):
    with pytest.raises(ValidationError) as error:
        raise_query(dose, user=coordinator, message="Check.", field_name="implanted_on")
    assert "field_name" in error.value.message_dict
    with pytest.raises(ValidationError):
        raise_query(dose, user=coordinator, message="  ")
    patient_query = raise_query(implantation.patient, user=coordinator, message="Birth year?", field_name="birth_year")
    assert (patient_query.implantation, patient_query.patient) == (None, implantation.patient)


@pytest.mark.parametrize("make", [factories.SystemicToxicityFactory, factories.ReadmissionFactory])
def test_queries_reach_systemic_toxicities_and_readmissions(make, implantation, centre_b, coordinator, data_manager_a):
    record = make(implantation=implantation)
    query = raise_query(record, user=coordinator, message="Check the date.", field_name=record.date_field)
    assert (query.record_model, query.patient, query.implantation) == (
        record._meta.label_lower,
        implantation.patient,
        implantation,
    )
    assert list(DataQuery.objects.editable_by(data_manager_a)) == [query]
    other = factories.user_with_role(Role.DATA_MANAGER, centre_b, username="dm-other")
    assert not DataQuery.objects.visible_to(other).exists()


def test_the_database_keeps_the_statuses_consistent(query, dose):
    def refused(**fields):
        with pytest.raises(IntegrityError), transaction.atomic():
            DataQuery.objects.filter(pk=query.pk).update(**fields)

    refused(status="closed")  # no closing time
    refused(status="answered")  # no answer
    refused(answer="Yes")  # an answer without its time
    refused(closed_at=timezone.now())  # open with a closing time
    refused(status="bogus")
    refused(closed_automatically=True)
    factories.DataQueryFactory(
        implantation=dose.implantation, record_model="registry.treatment", record_id=dose.pk, rule="death_without_date"
    )
    with pytest.raises(IntegrityError), transaction.atomic():  # one unresolved query per rule and record
        factories.DataQueryFactory(
            implantation=dose.implantation,
            record_model="registry.treatment",
            record_id=dose.pk,
            rule="death_without_date",
        )


# --------------------------------------------------------------------------- the admin


def change_url(query):
    return reverse("admin:registry_dataquery_change", args=[query.pk])


def test_admin_data_manager_sees_own_centre_answers_and_cannot_close(
    client, query, centre_b, coordinator, data_manager_a
):
    other = factories.DataQueryFactory(implantation__patient__centre=centre_b)
    client.force_login(data_manager_a)

    listing = client.get(reverse("admin:registry_dataquery_changelist"))
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [query]
    assert "close_selected" not in listing.content.decode()  # no close action for a data manager
    assert client.get(change_url(other)).status_code == 302  # another centre's: "does not exist"

    page = client.get(change_url(query))
    assert page.status_code == 200 and 'name="answer"' in page.content.decode()
    assert 'id="close-query-form"' not in page.content.decode()
    assert reverse("admin:registry_treatment_change", args=[query.record_id]) in page.content.decode()

    blank = client.post(change_url(query), record_form(query, answer="   "))
    assert blank.status_code == 200 and "Write the answer" in blank.content.decode()  # not "changed successfully"
    query.refresh_from_db()
    assert query.status == DataQueryStatus.OPEN

    response = client.post(change_url(query), record_form(query, answer="Corrected from the pump log."))
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    query.refresh_from_db()
    assert (query.status, query.answered_by, query.answer) == (
        "answered",
        data_manager_a,
        "Corrected from the pump log.",
    )

    assert client.post(reverse("admin:registry_dataquery_close", args=[query.pk])).status_code == 403
    client.post(
        reverse("admin:registry_dataquery_changelist"), {"action": "close_selected", "_selected_action": [query.pk]}
    )
    query.refresh_from_db()
    assert query.status == DataQueryStatus.ANSWERED
    assert client.get(reverse("admin:registry_dataquery_add")).status_code == 403


def test_admin_coordinator_raises_from_a_record_page_closes_and_reopens(client, dose, coordinator, data_manager_a):
    client.force_login(coordinator)
    page = client.get(reverse("admin:registry_treatment_change", args=[dose.pk])).content.decode()
    assert 'id="raise-data-query-link"' in page and "Data queries (0 unresolved)" in page

    form = client.get(
        reverse("admin:registry_dataquery_add"), {"record_model": "registry.treatment", "record_id": dose.pk}
    )
    assert form.context["form"].initial == {"record_field": "registry.treatment:", "record_id": dose.pk}
    response = client.post(
        reverse("admin:registry_dataquery_add"),
        {"record_field": "registry.treatment:given_on", "record_id": dose.pk, "message": "The date looks a week late."},
    )
    query = DataQuery.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(query)
    assert (query.field_name, query.raised_by, query.record_id) == ("given_on", coordinator, dose.pk)

    client.force_login(data_manager_a)
    page = client.get(reverse("admin:registry_treatment_change", args=[dose.pk])).content.decode()
    assert "Data queries (1 unresolved)" in page and 'id="raise-data-query-link"' not in page

    client.force_login(coordinator)
    assert 'id="close-query-form"' in client.get(change_url(query)).content.decode()
    client.post(reverse("admin:registry_dataquery_close", args=[query.pk]), {"note": "Raised in error"})
    query.refresh_from_db()
    assert (query.status, query.closed_by, query.close_note) == ("closed", coordinator, "Raised in error")
    client.post(
        reverse("admin:registry_dataquery_changelist"), {"action": "reopen_selected", "_selected_action": [query.pk]}
    )
    query.refresh_from_db()
    assert query.status == DataQueryStatus.OPEN
    assert [s[1:] for s in steps(query)] == [
        ("open", "coordinator"),
        ("closed", "coordinator"),
        ("open", "coordinator"),
    ]


def test_admin_lists_filter_by_status_rule_and_centre(client, coordinator, centre_a, centre_b):
    factories.ImplantationFactory(patient__centre=centre_a)
    factories.ImplantationFactory(patient__centre=centre_b)
    run_checks(rule_codes=["no_first_dose_28_days"])
    manual = factories.DataQueryFactory(implantation__patient__centre=centre_a)
    client.force_login(coordinator)
    url = reverse("admin:registry_dataquery_changelist")

    def listed(**params):
        return {q.pk for q in client.get(url, params).context["cl"].result_list}

    rule_queries = set(DataQuery.objects.filter(rule="no_first_dose_28_days").values_list("pk", flat=True))
    assert listed(rule="no_first_dose_28_days") == rule_queries and listed(rule="manual") == {manual.pk}
    assert listed(centre=str(centre_b.pk)) == set(
        DataQuery.objects.filter(patient__centre=centre_b).values_list("pk", flat=True)
    )
    assert listed(status__exact="open") == rule_queries | {manual.pk} and listed(status__exact="closed") == set()


def test_the_fudr_table_is_the_coordinators_to_change(client, data_manager_a, coordinator):
    from registry.models import FudrDoseBand

    band = FudrDoseBand.objects.get(analyte="ast", reference_from=0, ratio_from=4)
    url = reverse("admin:registry_fudrdoseband_change", args=[band.pk])
    client.force_login(data_manager_a)
    assert client.get(url).status_code == 200  # read
    client.post(url, record_form(band, dose_percent="25"))
    band.refresh_from_db()
    assert band.dose_percent == 0
    client.force_login(coordinator)
    response = client.post(url, record_form(band, dose_percent="25", change_reason="Local protocol"))
    assert response.status_code == 302
    band.refresh_from_db()
    assert band.dose_percent == 25 and band.history.first().history_user_name == "coordinator"
