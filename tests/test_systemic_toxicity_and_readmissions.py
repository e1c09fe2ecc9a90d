"""Systemic toxicities (CTCAE v5.0), readmissions and reoperations (issue 14, items 4 and 7).

The records' rules (grade 1-5 in the database, dates against the implantation, today and a death), their
API endpoints (create, list, centre scope, the investigators' de-identified shape) and the 30/90-day
readmission and reoperation rates over complete cases (``registry.selectors.readmission_rates``).
"""

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.models import Implantation, Readmission, SystemicToxicity
from registry.selectors import readmission_rates
from registry.services import save_record
from sites.models import Role

from . import factories
from .clients import client_for
from .factories import days_after

OPAQUE_PREFIX = {"systemic-toxicities": "TO-", "readmissions": "RA-"}


@pytest.fixture
def implantation(centre_a):
    return factories.ImplantationFactory(patient__centre=centre_a, surgeon__centre=centre_a)


# --- Model rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("grade", [0, 6])
def test_the_database_refuses_a_grade_outside_1_to_5(implantation, grade):
    toxicity = factories.SystemicToxicityFactory(implantation=implantation, grade=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemicToxicity.objects.filter(pk=toxicity.pk).update(grade=grade)


def test_the_database_refuses_a_term_or_reason_outside_the_vocabulary(implantation):
    toxicity = factories.SystemicToxicityFactory(implantation=implantation)
    readmission = factories.ReadmissionFactory(implantation=implantation)
    with pytest.raises(IntegrityError), transaction.atomic():
        SystemicToxicity.objects.filter(pk=toxicity.pk).update(term="nausea")
    with pytest.raises(IntegrityError), transaction.atomic():
        Readmission.objects.filter(pk=readmission.pk).update(kind="transfer")
    with pytest.raises(IntegrityError), transaction.atomic():
        Readmission.objects.filter(pk=readmission.pk).update(reason="pain")


def test_full_clean_refuses_a_grade_outside_1_to_5(implantation):
    with pytest.raises(ValidationError) as error:
        factories.SystemicToxicityFactory.build(implantation=implantation, grade=6).full_clean()
    assert "grade" in error.value.message_dict


@pytest.mark.parametrize(
    "factory,field",
    [(factories.SystemicToxicityFactory, "onset_on"), (factories.ReadmissionFactory, "occurred_on")],
)
def test_dates_fall_between_the_implantation_and_today_or_the_death(implantation, factory, field):
    before = factory.build(implantation=implantation, **{field: days_after(-1, implantation.implanted_on)})
    with pytest.raises(ValidationError) as error:
        before.full_clean()
    assert "precedes the implantation" in error.value.message_dict[field][0]

    future = factory.build(implantation=implantation, **{field: timezone.localdate() + datetime.timedelta(days=2)})
    with pytest.raises(ValidationError) as error:
        future.full_clean()
    assert "future" in error.value.message_dict[field][0]

    factories.FollowUpFactory(
        implantation=implantation,
        contact_on=days_after(100, implantation.implanted_on),
        vital_status="dead",
        died_on=days_after(100, implantation.implanted_on),
    )
    after_death = factory.build(implantation=implantation, **{field: days_after(101, implantation.implanted_on)})
    with pytest.raises(ValidationError) as error:
        after_death.full_clean()
    assert "death" in error.value.message_dict[field][0]

    on_the_day = factory.build(implantation=implantation, **{field: implantation.implanted_on})
    on_the_day.full_clean()


def test_a_death_cannot_be_dated_before_a_recorded_readmission(implantation, data_manager_a):
    factories.ReadmissionFactory(implantation=implantation, occurred_on=days_after(50, implantation.implanted_on))
    follow_up = factories.FollowUpFactory.build(
        implantation=implantation,
        contact_on=days_after(40, implantation.implanted_on),
        vital_status="dead",
        died_on=days_after(40, implantation.implanted_on),
    )
    with pytest.raises(ValidationError):
        save_record(follow_up, user=data_manager_a)


# --- API -----------------------------------------------------------------------------------------------


PAYLOADS = {
    "systemic-toxicities": lambda imp: {
        "implantation": imp.pk,
        "term": "neuropathy",
        "grade": 3,
        "onset_on": days_after(40, imp.implanted_on).isoformat(),
    },
    "readmissions": lambda imp: {
        "implantation": imp.pk,
        "kind": "reoperation",
        "occurred_on": days_after(12, imp.implanted_on).isoformat(),
        "reason": "catheter",
    },
}
MODELS = {"systemic-toxicities": SystemicToxicity, "readmissions": Readmission}
FIELDS = {
    "systemic-toxicities": {"id", "implantation", "term", "grade", "onset_on"},
    "readmissions": {"id", "implantation", "kind", "occurred_on", "reason"},
}


@pytest.mark.parametrize("endpoint", sorted(PAYLOADS))
def test_a_data_manager_creates_and_lists_their_centres_records(implantation, data_manager_a, endpoint):
    client = client_for(data_manager_a)
    response = client.post(f"/api/v1/{endpoint}/", PAYLOADS[endpoint](implantation), format="json")
    assert response.status_code == 201, response.content
    assert response.headers.get("ETag")
    record = MODELS[endpoint].objects.get()
    assert record.history.count() == 1  # audited like every record

    listed = client.get(f"/api/v1/{endpoint}/").json()["results"]
    assert [row["id"] for row in listed] == [record.pk]
    assert set(listed[0]) == FIELDS[endpoint]


@pytest.mark.parametrize("endpoint", sorted(PAYLOADS))
def test_a_date_before_the_implantation_is_a_400_naming_the_field(implantation, data_manager_a, endpoint):
    payload = PAYLOADS[endpoint](implantation)
    field = "onset_on" if endpoint == "systemic-toxicities" else "occurred_on"
    payload[field] = days_after(-5, implantation.implanted_on).isoformat()
    response = client_for(data_manager_a).post(f"/api/v1/{endpoint}/", payload, format="json")
    assert response.status_code == 400
    assert field in response.content.decode()
    assert not MODELS[endpoint].objects.exists()


def test_a_grade_outside_1_to_5_is_a_400(implantation, data_manager_a):
    payload = {**PAYLOADS["systemic-toxicities"](implantation), "grade": 6}
    response = client_for(data_manager_a).post("/api/v1/systemic-toxicities/", payload, format="json")
    assert response.status_code == 400
    assert "grade" in response.content.decode()


@pytest.mark.parametrize("endpoint", sorted(PAYLOADS))
def test_another_centre_sees_and_writes_nothing(implantation, centre_b, endpoint):
    factory = factories.SystemicToxicityFactory if endpoint == "systemic-toxicities" else factories.ReadmissionFactory
    record = factory(implantation=implantation)
    other = client_for(factories.user_with_role(Role.DATA_MANAGER, centre_b))
    assert other.get(f"/api/v1/{endpoint}/").json()["results"] == []
    assert other.get(f"/api/v1/{endpoint}/{record.pk}/").status_code == 404
    response = other.post(f"/api/v1/{endpoint}/", PAYLOADS[endpoint](implantation), format="json")
    assert response.status_code == 400  # the implantation is not one they may edit
    assert MODELS[endpoint].objects.count() == 1


def test_a_change_names_the_version_it_overwrites(implantation, data_manager_a):
    record = factories.SystemicToxicityFactory(implantation=implantation, grade=2)
    client = client_for(data_manager_a)
    url = f"/api/v1/systemic-toxicities/{record.pk}/"
    assert client.patch(url, {"grade": 3}, format="json").status_code == 428
    etag = client.get(url).headers["ETag"]
    assert client.patch(url, {"grade": 3}, format="json", HTTP_IF_MATCH=etag).status_code == 200
    assert client.patch(url, {"grade": 4}, format="json", HTTP_IF_MATCH=etag).status_code == 412
    record.refresh_from_db()
    assert record.grade == 3


@pytest.mark.parametrize("endpoint", sorted(PAYLOADS))
def test_investigators_get_days_and_opaque_codes(implantation, investigator, endpoint):
    if endpoint == "systemic-toxicities":
        factories.SystemicToxicityFactory(implantation=implantation, onset_on=days_after(45, implantation.implanted_on))
        day_field, date_field, expected = "onset_day", "onset_on", {"term": "neutropenia", "grade": 2}
    else:
        factories.ReadmissionFactory(implantation=implantation, occurred_on=days_after(20, implantation.implanted_on))
        day_field, date_field, expected = "occurred_day", "occurred_on", {"kind": "readmission"}
    response = client_for(investigator).get(f"/api/v1/{endpoint}/")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert "id" not in row and date_field not in row
    assert row["code"].startswith(OPAQUE_PREFIX[endpoint])
    assert row["implantation"].startswith("I-")
    assert row[day_field] == (45 if endpoint == "systemic-toxicities" else 20)
    assert expected.items() <= row.items()
    assert client_for(investigator).post(f"/api/v1/{endpoint}/", {}, format="json").status_code == 403


def test_the_vocabularies_list_the_new_terms(data_manager_a):
    body = client_for(data_manager_a).get("/api/v1/vocabularies/").json()
    terms = {entry["code"]: entry["label"] for entry in body["systemic_toxicity_term"]}
    assert terms["neutropenia"] == "Neutrophil count decreased"
    assert terms["neuropathy"] == "Peripheral sensory neuropathy"
    assert {entry["code"] for entry in body["readmission_kind"]} == {"readmission", "reoperation"}
    assert "gastrointestinal_ulcer" in {entry["code"] for entry in body["readmission_reason"]}


# --- Admin ---------------------------------------------------------------------------------------------


def test_the_implantation_page_has_both_inlines(client, implantation, data_manager_a):
    factories.SystemicToxicityFactory(implantation=implantation)
    factories.ReadmissionFactory(implantation=implantation)
    client.force_login(data_manager_a)
    page = client.get(f"/admin/registry/implantation/{implantation.pk}/change/").content.decode()
    assert 'id="systemic_toxicities-group"' in page
    assert 'id="readmissions-group"' in page


# --- Readmission and reoperation rates -----------------------------------------------------------------


CUT = datetime.date(2024, 6, 30)


def implanted(centre, days_before_cut):
    return factories.ImplantationFactory(
        patient__centre=centre, surgeon__centre=centre, implanted_on=CUT - datetime.timedelta(days=days_before_cut)
    )


def event(implantation, day, kind="readmission"):
    return factories.ReadmissionFactory(
        implantation=implantation, kind=kind, occurred_on=days_after(day, implantation.implanted_on)
    )


def test_rates_count_events_inside_the_window_over_complete_cases(centre_a):
    # Windows ended by the cut (implanted 120 days before it): complete at 30 and at 90 days.
    day_10 = implanted(centre_a, 120)
    event(day_10, 10)  # readmission inside both windows
    day_30 = implanted(centre_a, 120)
    event(day_30, 30)  # day 30: inside the 30-day window (day 0 to day 30)
    day_31 = implanted(centre_a, 120)
    event(day_31, 31)  # outside 30 days, inside 90
    day_95 = implanted(centre_a, 120)
    event(day_95, 95)  # outside both
    event(day_95, 100, kind="reoperation")  # a reoperation outside both windows
    reoperated = implanted(centre_a, 120)
    event(reoperated, 5, kind="reoperation")
    event(reoperated, 6, kind="reoperation")  # two events: one implantation
    nothing = implanted(centre_a, 120)
    # 60 days before the cut: complete at 30 days, open at 90.
    open_90 = implanted(centre_a, 60)
    open_90_event = implanted(centre_a, 60)
    event(open_90_event, 40)  # inside the open 90-day window: an event, counted
    # 10 days before the cut: both windows open, no event: left out of both.
    recent = implanted(centre_a, 10)
    recent_event = implanted(centre_a, 10)
    event(recent_event, 3, kind="reoperation")  # inside the open windows: counted in both
    # After the cut: left out altogether.
    implanted(centre_a, -5)
    del nothing, open_90, recent

    with CaptureQueriesContext(connection) as queries:
        rates = readmission_rates(Implantation.objects.all(), data_cut=CUT)
    assert len(queries) <= 2

    # 30 days: 8 complete by the cut (6 + 2 of 60 days) + recent_event; events day_10, day_30.
    assert rates["readmission_30d"] == (2, 8)
    # 90 days: the 6 of 120 days + open_90_event (event inside its open window); events day_10, day_30, day_31,
    # open_90_event.
    assert rates["readmission_90d"] == (4, 7)
    # Reoperations: reoperated (complete), recent_event (open windows, event inside).
    assert rates["reoperation_30d"] == (2, 9)
    assert rates["reoperation_90d"] == (2, 7)


def test_rates_ignore_events_after_the_cut_and_follow_the_queryset(centre_a, centre_b):
    late = implanted(centre_a, 10)
    event(late, 5)  # 5 days before the cut, inside the open window: counted
    after_cut = implanted(centre_a, 10)
    factories.ReadmissionFactory(implantation=after_cut, occurred_on=CUT + datetime.timedelta(days=3))
    other = implanted(centre_b, 120)
    event(other, 10)

    assert readmission_rates(Implantation.objects.all(), data_cut=CUT)["readmission_30d"] == (2, 2)
    own = readmission_rates(Implantation.objects.filter(patient__centre=centre_a), data_cut=CUT)
    assert own["readmission_30d"] == (1, 1)
    # At an earlier cut the event after it does not exist yet, and the window is open: left out.
    earlier = readmission_rates(
        Implantation.objects.filter(patient__centre=centre_a), data_cut=CUT - datetime.timedelta(days=6)
    )
    assert earlier["readmission_30d"] == (0, 0)
    assert readmission_rates(Implantation.objects.none(), data_cut=CUT) == {
        "readmission_30d": (0, 0),
        "readmission_90d": (0, 0),
        "reoperation_30d": (0, 0),
        "reoperation_90d": (0, 0),
    }


def test_a_datetime_cut_leaves_out_rows_entered_after_it(centre_a):
    cut = timezone.make_aware(datetime.datetime.combine(CUT, datetime.time(23, 0)))
    entered_late = implanted(centre_a, 120)
    late = event(entered_late, 10)
    Readmission.objects.filter(pk=late.pk).update(created_at=cut + datetime.timedelta(days=1))
    entered_in_time = implanted(centre_a, 120)
    in_time = event(entered_in_time, 10)
    Readmission.objects.filter(pk=in_time.pk).update(created_at=cut - datetime.timedelta(days=1))
    assert readmission_rates(Implantation.objects.all(), data_cut=cut)["readmission_30d"] == (1, 2)
