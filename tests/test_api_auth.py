"""Tokens: obtained with username/password, stored hashed, expiring, revocable, several per user (at most 20),
each acting in one of its user's roles."""

import datetime

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from api.models import TokenRole
from api.tokens import create_token
from sites.models import Membership, Role

from . import factories


@pytest.fixture
def lead(centre_a):
    return factories.user_with_role(Role.CENTRE_LEAD, centre_a, username="lead")


def obtain(client, username="lead", password="correct-horse-battery", **extra):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password, **extra}, format="json")


def test_token_is_issued_stored_hashed_and_accepted(lead):
    client = APIClient()
    response = obtain(client)
    assert response.status_code == 200
    assert set(response.json()) == {"token", "expiry", "role"}
    assert response.json()["role"] == "centre_lead"  # the only role, without asking
    token = response.json()["token"]
    stored = AuthToken.objects.get(user=lead)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/patients/").status_code == 200


def test_wrong_password_gives_400_in_the_error_shape(lead):
    response = obtain(APIClient(), password="nope")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid input.",
        "errors": {"non_field_errors": ["Unable to log in with these credentials."]},
    }


def test_user_without_a_role_gets_no_token(db):
    factories.UserFactory(username="nobody")
    assert obtain(APIClient(), username="nobody").status_code == 400


def test_several_tokens_and_revocation(lead):
    client = APIClient()
    first, second = obtain(client).json()["token"], obtain(client).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert client.post("/api/v1/auth/token/revoke/").status_code == 204
    assert client.get("/api/v1/patients/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert client.get("/api/v1/patients/").status_code == 200
    assert client.post("/api/v1/auth/token/revoke-all/").status_code == 204
    assert client.get("/api/v1/patients/").status_code == 401


def test_expired_token_is_refused(lead):
    client = APIClient()
    token = obtain(client).json()["token"]
    AuthToken.objects.filter(user=lead).update(expiry=timezone.now() - datetime.timedelta(seconds=1))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/patients/").status_code == 401


def test_authentication_is_throttled(lead, settings):
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    original = ScopedRateThrottle.THROTTLE_RATES
    cache.clear()
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        ScopedRateThrottle.THROTTLE_RATES = rates
        try:
            codes = [obtain(APIClient(), password="wrong").status_code for _ in range(4)]
        finally:
            # The rates from before the override (api_settings here would still be the overridden ones).
            ScopedRateThrottle.THROTTLE_RATES = original
    assert codes == [400, 400, 400, 429]
    cache.clear()


def test_every_endpoint_is_throttled_per_user(lead, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import UserRateThrottle

    cache.clear()
    UserRateThrottle.THROTTLE_RATES = {**api_settings.DEFAULT_THROTTLE_RATES, "user": "2/min"}
    try:
        client = APIClient()
        client.force_authenticate(lead)
        codes = [client.get("/api/v1/centres/").status_code for _ in range(3)]
    finally:
        UserRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        cache.clear()
    assert codes == [200, 200, 429]


# --- Role-scoped tokens -------------------------------------------------------------------------------------


@pytest.fixture
def two_roles(centre_a, centre_b):
    """An investigator who is also centre A's data manager, and a record in each centre."""
    user = factories.user_with_role(Role.INVESTIGATOR, username="inv-dm")
    Membership.objects.create(user=user, role=Role.DATA_MANAGER, centre=centre_a)
    own = factories.ImplantationFactory(
        patient__centre=centre_a, never_treated_reason="patient_choice", never_treated_note="Lives abroad, Dr Martin"
    )
    other = factories.ImplantationFactory(
        patient__centre=centre_b, never_treated_reason="patient_choice", never_treated_note="Moved away"
    )
    return {"user": user, "own": own, "other": other}


def client_with_token(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def implantation_rows(client):
    response = client.get("/api/v1/implantations/", {"page_size": 100})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_a_user_with_two_roles_must_name_one(two_roles):
    response = obtain(APIClient(), username="inv-dm")
    assert response.status_code == 400
    assert response.json()["errors"]["role"] == [
        "You hold several roles (investigator, data_manager): say which one this token acts in."
    ]
    assert not AuthToken.objects.filter(user=two_roles["user"]).exists()


def test_a_role_the_user_does_not_hold_is_refused(two_roles):
    for role in ("coordinator", "centre_lead"):
        response = obtain(APIClient(), username="inv-dm", role=role)
        assert response.status_code == 400
        assert "role" in response.json()["errors"]
    assert obtain(APIClient(), username="inv-dm", role="superuser").status_code == 400  # not a role at all
    assert not AuthToken.objects.filter(user=two_roles["user"]).exists()


def test_a_data_manager_token_sees_identifiable_own_centre_rows_and_writes(two_roles):
    response = obtain(APIClient(), username="inv-dm", role="data_manager")
    assert response.status_code == 200 and response.json()["role"] == "data_manager"
    client = client_with_token(response.json()["token"])

    rows = implantation_rows(client)
    assert [row["id"] for row in rows] == [two_roles["own"].pk]  # its own centre only
    assert rows[0]["never_treated_note"] == "Lives abroad, Dr Martin"
    url = f"/api/v1/implantations/{two_roles['own'].pk}/"
    patch = client.patch(url, {"approach": "laparoscopic"}, format="json", HTTP_IF_MATCH=client.get(url)["ETag"])
    assert patch.status_code == 200, patch.content
    two_roles["own"].refresh_from_db()
    assert two_roles["own"].approach == "laparoscopic"


def test_an_investigator_token_of_the_same_person_sees_de_identified_data_and_cannot_write(two_roles):
    response = obtain(APIClient(), username="inv-dm", role="investigator")
    assert response.status_code == 200 and response.json()["role"] == "investigator"
    client = client_with_token(response.json()["token"])

    rows = implantation_rows(client)
    assert len(rows) == 2  # every centre, de-identified
    assert all("never_treated_note" not in row for row in rows)
    assert "Dr Martin" not in str(rows) and "Moved away" not in str(rows)
    url = f"/api/v1/implantations/{two_roles['own'].pk}/"
    # The investigator reads no real ids, hence no ETag: the version is named as a data manager would.
    patch = client.patch(url, {"approach": "laparoscopic"}, format="json", HTTP_IF_MATCH='"1"')
    assert patch.status_code == 403
    two_roles["own"].refresh_from_db()
    assert two_roles["own"].approach != "laparoscopic"


def test_the_role_is_stored_with_the_token(two_roles):
    obtain(APIClient(), username="inv-dm", role="data_manager")
    obtain(APIClient(), username="inv-dm", role="investigator")
    stored = TokenRole.objects.filter(token__user=two_roles["user"]).values_list("role", flat=True)
    assert sorted(stored) == ["data_manager", "investigator"]


def test_a_superuser_acting_in_another_role_is_not_the_coordinator(centre_a, centre_b):
    factories.user_with_role(Role.INVESTIGATOR, username="boss", is_superuser=True)
    own = factories.ImplantationFactory(
        patient__centre=centre_a, never_treated_reason="patient_choice", never_treated_note="Dr Martin"
    )

    as_investigator = client_with_token(obtain(APIClient(), username="boss", role="investigator").json()["token"])
    assert all("never_treated_note" not in row for row in implantation_rows(as_investigator))
    assert as_investigator.patch(f"/api/v1/implantations/{own.pk}/", {}, format="json").status_code == 403

    as_coordinator = client_with_token(obtain(APIClient(), username="boss", role="coordinator").json()["token"])
    assert [row["never_treated_note"] for row in implantation_rows(as_coordinator)] == ["Dr Martin"]
    assert (
        as_coordinator.patch(f"/api/v1/implantations/{own.pk}/", {}, format="json", HTTP_IF_MATCH='"1"').status_code
        == 200
    )


def test_a_token_without_a_stored_role_is_refused(lead):
    _, token = AuthToken.objects.create(user=lead)  # as tokens were made before roles were stored
    response = client_with_token(token).get("/api/v1/patients/")
    assert response.status_code == 401
    assert "no role" in response.json()["detail"]
    _, scoped = create_token(lead, "centre_lead")
    assert client_with_token(scoped).get("/api/v1/patients/").status_code == 200


def test_the_token_limit_is_enforced_and_says_how_to_revoke(lead):
    from knox.settings import knox_settings

    limit = knox_settings.TOKEN_LIMIT_PER_USER
    assert limit == 20
    for _ in range(limit - 1):
        create_token(lead, "centre_lead")
    expired, _ = create_token(lead, "centre_lead")
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - datetime.timedelta(seconds=1))

    last = obtain(APIClient())
    assert last.status_code == 200  # the expired one does not count: now 20 unexpired
    response = obtain(APIClient())
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert "/api/v1/auth/token/revoke-all/" in response.json()["detail"]
    assert AuthToken.objects.filter(user=lead, expiry__gt=timezone.now()).count() == limit

    # As the message says: revoke them all with one of them, then a new one is issued.
    assert client_with_token(last.json()["token"]).post("/api/v1/auth/token/revoke-all/").status_code == 204
    assert obtain(APIClient()).status_code == 200
