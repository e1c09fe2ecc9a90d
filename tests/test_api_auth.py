"""Tokens: obtained with username/password, stored hashed, expiring, revocable, several per user."""

import datetime

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from sites.models import Role

from . import factories


@pytest.fixture
def lead(centre_a):
    return factories.user_with_role(Role.CENTRE_LEAD, centre_a, username="lead")


def obtain(client, username="lead", password="correct-horse-battery"):
    return client.post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_token_is_issued_stored_hashed_and_accepted(lead):
    client = APIClient()
    response = obtain(client)
    assert response.status_code == 200
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
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    cache.clear()
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        from rest_framework.throttling import ScopedRateThrottle

        ScopedRateThrottle.THROTTLE_RATES = rates
        try:
            codes = [obtain(APIClient(), password="wrong").status_code for _ in range(4)]
        finally:
            from rest_framework.settings import api_settings

            ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
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
