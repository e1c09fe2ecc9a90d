"""Outlier reviews: opened once per alarm, answered by the centre, signed off by the coordinator.

Permissions are checked by their effect (the review's state, the rows an admin page
lists), cell by cell: role × own/other centre × action.
"""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from reports import services
from reports.models import OutlierReview
from sites import access
from sites.models import Role

from . import factories

PERIOD = datetime.date(2024, 6, 1)
ROLES = [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR]
CELLS = [(role, where) for role in ROLES for where in ("own", "other")]

# (role, where) -> actions that take effect. "Own" is the user's centre; the coordinator and
# investigators have none, so for them "own" and "other" are two centres alike.
EXPECTED = {
    (Role.COORDINATOR, "own"): {"list", "view", "sign_off"},
    (Role.COORDINATOR, "other"): {"list", "view", "sign_off"},
    (Role.DATA_MANAGER, "own"): {"list", "view", "answer"},
    (Role.DATA_MANAGER, "other"): set(),
    (Role.CENTRE_LEAD, "own"): {"list", "view", "answer"},
    (Role.CENTRE_LEAD, "other"): set(),
    (Role.INVESTIGATOR, "own"): set(),
    (Role.INVESTIGATOR, "other"): set(),
}


@pytest.fixture
def world(db):
    own, other = factories.CentreFactory(code="OWN"), factories.CentreFactory(code="OTHER")
    surgeons = {
        "own": factories.SurgeonFactory(centre=own, code="S-OWN"),
        "other": factories.SurgeonFactory(centre=other, code="S-OTHER"),
    }
    run = services.start_run(PERIOD, dispatch=False)
    return {"run": run, "own": own, "other": other, "surgeons": surgeons}


def open_review(world, where, measure="technical_90", surgeon=None):
    (review,) = services.open_reviews_for_alarms(
        world["run"], world[where], [{"measure": measure, "level": "alarm", "surgeon": surgeon}]
    )
    return review


def user_for(role, world):
    return factories.user_with_role(role, world["own"])


def answered(world, where, **kwargs):
    review = open_review(world, where, **kwargs)
    manager = factories.user_with_role(Role.DATA_MANAGER, world[where])
    return services.answer_review(review, manager, "Two of the three were one patient's re-operations.")


# --------------------------------------------------------------------------- opening


def test_opening_is_idempotent_one_review_per_alarm(world):
    run, own = world["run"], world["own"]
    surgeon = world["surgeons"]["own"]
    alarms = [
        {"measure": "technical_90", "level": "alarm"},
        {"measure": "technical_90", "level": "warning", "surgeon": surgeon},
        {"measure": "any", "surgeon": "S-OWN"},  # by code; level defaults to alarm
    ]
    first = services.open_reviews_for_alarms(run, own, alarms)
    assert [(r.measure, r.level, r.surgeon, r.status) for r in first] == [
        ("technical_90", "alarm", None, "open"),
        ("technical_90", "warning", surgeon, "open"),
        ("any", "alarm", surgeon, "open"),
    ]
    services.answer_review(first[0], user_for(Role.DATA_MANAGER, world), "Explained.")
    again = services.open_reviews_for_alarms(run, own, alarms + [{"measure": "any", "surgeon": surgeon.pk}])
    assert [r.pk for r in again] == [r.pk for r in first] + [first[2].pk]
    assert OutlierReview.objects.count() == 3
    assert OutlierReview.objects.get(pk=first[0].pk).status == "answered"  # opening again does not reopen


def test_the_database_keeps_one_review_per_run_centre_measure_and_surgeon(world):
    run, own = world["run"], world["own"]
    surgeon = world["surgeons"]["own"]
    OutlierReview.objects.create(run=run, centre=own, measure="m", level="alarm")
    OutlierReview.objects.create(run=run, centre=own, measure="m", level="alarm", surgeon=surgeon)
    for extra in ({}, {"surgeon": surgeon}):
        with pytest.raises(IntegrityError), transaction.atomic():
            OutlierReview.objects.create(run=run, centre=own, measure="m", level="warning", **extra)


@pytest.mark.parametrize(
    "alarm,field,message",
    [
        ({"measure": ""}, "measure", "names its measure"),
        ({"measure": "any", "level": "red"}, "level", "'red' is not a level"),
        ({"measure": "any", "surgeon": "S-OTHER"}, "surgeon", "belongs to another centre than OWN"),
        ({"measure": "any", "surgeon": "S-NOPE"}, "surgeon", "No surgeon S-NOPE"),
    ],
)
def test_opening_refuses_a_malformed_alarm(world, alarm, field, message):
    with pytest.raises(ValidationError) as error:
        services.open_reviews_for_alarms(world["run"], world["own"], [alarm])
    assert message in " ".join(error.value.message_dict[field])
    assert not OutlierReview.objects.exists()


def test_opening_for_a_centre_not_in_the_run_is_refused(world):
    run = services.start_run(PERIOD, centre_codes=["OTHER"], dispatch=False)
    with pytest.raises(ValidationError, match="OWN has no report in run"):
        services.open_reviews_for_alarms(run, world["own"], [{"measure": "any"}])


# --------------------------------------------------------------------------- the services, cell by cell


def _service_effect(action, role, where, world):
    user = user_for(role, world)
    review = open_review(world, where) if action == "answer" else answered(world, where)
    try:
        if action == "answer":
            services.answer_review(review, user, "Our answer.")
        else:
            services.sign_off_review(review, user)
    except PermissionDenied:
        pass
    review.refresh_from_db()
    return review.status == ("answered" if action == "answer" else "signed_off")


@pytest.mark.parametrize("action", ["answer", "sign_off"])
@pytest.mark.parametrize("role,where", CELLS)
def test_service_permission_matrix(world, role, where, action):
    assert _service_effect(action, role, where, world) == (action in EXPECTED[(role, where)])


def test_refusals_say_who_may(world):
    review = open_review(world, "other")
    with pytest.raises(PermissionDenied, match="Only a data manager or lead of OTHER answers"):
        services.answer_review(review, user_for(Role.DATA_MANAGER, world), "Ours.")
    with pytest.raises(PermissionDenied, match="Only the registry coordinator signs off"):
        services.sign_off_review(review, user_for(Role.CENTRE_LEAD, world))
    with pytest.raises(PermissionDenied, match="Only the registry coordinator puts queries"):
        services.set_review_query(review, user_for(Role.DATA_MANAGER, world), "Why?")


def test_the_steps_in_order_with_who_and_when(world):
    coordinator = factories.user_with_role(Role.COORDINATOR)
    manager, lead = user_for(Role.DATA_MANAGER, world), user_for(Role.CENTRE_LEAD, world)
    review = open_review(world, "own", surgeon=world["surgeons"]["own"])
    assert (review.opened_by, review.created_at is not None) == (None, True)

    with pytest.raises(ValidationError, match="has not answered yet"):
        services.sign_off_review(review, coordinator)
    with pytest.raises(ValidationError, match="Write the query"):
        services.set_review_query(review, coordinator, "   ")
    review = services.set_review_query(review, coordinator, "  Please check the three occlusions.  ")
    assert (review.query, review.queried_by, review.status) == (
        "Please check the three occlusions.",
        coordinator,
        "open",
    )

    with pytest.raises(ValidationError, match="Write the centre's answer"):
        services.answer_review(review, manager, "")
    review = services.answer_review(review, manager, "One was a re-operation.")
    assert (review.status, review.answered_by, review.answered_at is not None) == ("answered", manager, True)
    with pytest.raises(ValidationError, match="a query goes on an open one"):
        services.set_review_query(review, coordinator, "And another thing.")
    review = services.answer_review(review, lead, "Corrected: two were re-operations.")  # revised before sign-off
    assert (review.answer, review.answered_by) == ("Corrected: two were re-operations.", lead)

    review = services.sign_off_review(review, coordinator)
    assert (review.status, review.signed_off_by, review.signed_off_at is not None) == ("signed_off", coordinator, True)
    with pytest.raises(ValidationError, match="already signed off"):
        services.sign_off_review(review, coordinator)
    with pytest.raises(ValidationError, match="can no longer change"):
        services.answer_review(review, manager, "Late.")

    history = list(review.history.order_by("history_date").values_list("status", "history_user"))
    assert history == [
        ("open", None),
        ("open", coordinator.pk),
        ("answered", manager.pk),
        ("answered", lead.pk),
        ("signed_off", coordinator.pk),
    ]


# --------------------------------------------------------------------------- the admin, cell by cell


def _admin_effect(client, action, role, where, world):
    user = user_for(role, world)
    client.force_login(user)
    review = answered(world, where) if action == "sign_off" else open_review(world, where)
    change_url = reverse("admin:reports_outlierreview_change", args=[review.pk])
    if action == "list":
        response = client.get(reverse("admin:reports_outlierreview_changelist"))
        return response.status_code == 200 and review in response.context["cl"].result_list
    if action == "view":
        response = client.get(change_url)
        return response.status_code == 200 and response.context["original"] == review
    if action == "answer":
        client.post(change_url, {"answer": "From the admin.", "_save": "Save"})
        review.refresh_from_db()
        return review.status == "answered" and review.answer == "From the admin."
    if action == "sign_off":
        client.post(change_url, {"sign_off": "on", "_save": "Save"})
        review.refresh_from_db()
        return review.status == "signed_off"
    raise AssertionError(action)


@pytest.mark.parametrize("action", ["list", "view", "answer", "sign_off"])
@pytest.mark.parametrize("role,where", CELLS)
def test_admin_permission_matrix(client, world, role, where, action):
    assert _admin_effect(client, action, role, where, world) == (action in EXPECTED[(role, where)])


def test_the_coordinator_signs_off_from_the_list_only_answered_reviews(client, world):
    coordinator = factories.user_with_role(Role.COORDINATOR)
    done, still_open = answered(world, "own"), open_review(world, "other")
    client.force_login(coordinator)
    response = client.post(
        reverse("admin:reports_outlierreview_changelist"),
        {"action": "sign_off", "_selected_action": [done.pk, still_open.pk]},
        follow=True,
    )
    text = response.content.decode()
    assert "Signed off 1 review." in text and "has not answered yet" in text
    assert OutlierReview.objects.get(pk=done.pk).status == "signed_off"
    assert OutlierReview.objects.get(pk=still_open.pk).status == "open"


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.CENTRE_LEAD])
def test_centre_users_cannot_sign_off_from_the_list(client, world, role):
    review = answered(world, "own")
    client.force_login(user_for(role, world))
    client.post(
        reverse("admin:reports_outlierreview_changelist"), {"action": "sign_off", "_selected_action": [review.pk]}
    )
    assert OutlierReview.objects.get(pk=review.pk).status == "answered"


def test_an_empty_answer_in_the_admin_is_a_form_error(client, world):
    review = open_review(world, "own")
    client.force_login(user_for(Role.DATA_MANAGER, world))
    response = client.post(reverse("admin:reports_outlierreview_change", args=[review.pk]), {"answer": " "})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert OutlierReview.objects.get(pk=review.pk).status == "open"


def test_a_signed_off_review_is_read_only_for_everyone(client, world):
    review = services.sign_off_review(answered(world, "own"), factories.user_with_role(Role.COORDINATOR))
    for role in (Role.COORDINATOR, Role.DATA_MANAGER):
        client.force_login(user_for(role, world))
        client.post(reverse("admin:reports_outlierreview_change", args=[review.pk]), {"answer": "Changed."})
        assert OutlierReview.objects.get(pk=review.pk).answer != "Changed."


# --------------------------------------------------------------------------- surgeon-level comparisons


@pytest.mark.parametrize(
    "role,where,expected",
    [
        (Role.COORDINATOR, None, (True, True, True, True)),
        (Role.DATA_MANAGER, "own", (True, True, True, True)),
        (Role.CENTRE_LEAD, "own", (True, True, True, True)),
        (Role.DATA_MANAGER, "other", (False, False, False, True)),
        (Role.CENTRE_LEAD, "other", (False, False, False, True)),
        (Role.INVESTIGATOR, None, (False, False, False, True)),
    ],
)
def test_surgeon_comparisons_stay_with_the_coordinator_and_the_centre_until_sign_off(world, role, where, expected):
    """(live data, run with no review, run with the review answered, run with every review signed off)."""
    surgeon = world["surgeons"]["own"]
    centre = world[where] if where else None
    user = factories.user_with_role(role, centre)
    run = world["run"]
    no_review = access.surgeon_comparison_visible(user, surgeon, run)
    review = answered(world, "own", surgeon=surgeon)
    while_answered = access.surgeon_comparison_visible(user, surgeon, run)
    services.sign_off_review(review, factories.user_with_role(Role.COORDINATOR))
    signed_off = access.surgeon_comparison_visible(user, surgeon.pk, run)  # a Surgeon or its id
    live = access.surgeon_comparison_visible(user, surgeon, None)
    assert (live, no_review, while_answered, signed_off) == expected


def test_one_open_review_of_the_surgeon_keeps_the_comparison_restricted(world):
    surgeon = world["surgeons"]["own"]
    investigator = factories.user_with_role(Role.INVESTIGATOR)
    services.sign_off_review(answered(world, "own", surgeon=surgeon), factories.user_with_role(Role.COORDINATOR))
    open_review(world, "own", measure="any", surgeon=surgeon)
    assert not access.surgeon_comparison_visible(investigator, surgeon, world["run"])


def test_nobody_without_a_role_sees_a_surgeon_comparison(world):
    from django.contrib.auth.models import AnonymousUser

    surgeon = world["surgeons"]["own"]
    services.sign_off_review(answered(world, "own", surgeon=surgeon), factories.user_with_role(Role.COORDINATOR))
    assert not access.surgeon_comparison_visible(AnonymousUser(), surgeon, world["run"])
    assert not access.surgeon_comparison_visible(factories.UserFactory(), surgeon, world["run"])
