"""Password guessing: every login path locks out after AXES_FAILURE_LIMIT failures, per username and per address.

The paths are the admin's login (/admin/login/), the registry's login (/account/login/) and the API's token
endpoint. A locked-out login gets 429: a readable page in the browser, the API's error shape on the API.
X-Forwarded-For is believed only from NUM_PROXIES proxies (none by default), so rotating it escapes nothing.
"""

import datetime

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from sites.models import Role

from . import factories

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
WRONG = "not-the-password"
LIMIT = settings.AXES_FAILURE_LIMIT
LOCKED_TEXT = "Too many failed login attempts"


def admin_login(username, password, **meta):
    response = Client().post(
        "/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"}, **meta
    )
    if response.status_code == 302:
        assert response["Location"] == "/admin/"
        return "ok"
    return verdict(response, refused=200)


def account_login(username, password, **meta):
    response = Client().post("/account/login/", {"username": username, "password": password}, **meta)
    if response.status_code == 302:
        assert response["Location"] == "/account/"
        return "ok"
    return verdict(response, refused=200)


def token_login(username, password, **meta):
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json", **meta
    )
    if response.status_code == 200:
        assert response.json()["token"]
        return "ok"
    if response.status_code == 429:
        # The API's error shape, saying why.
        assert set(response.json()) == {"detail"} and LOCKED_TEXT in response.json()["detail"]
        assert int(response["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
        return "locked"
    assert response.status_code == 400, response.content
    return "refused"


def verdict(response, refused):
    if response.status_code == 429:
        # A readable page.
        assert response["Content-Type"].startswith("text/html")
        assert LOCKED_TEXT in response.content.decode()
        return "locked"
    assert response.status_code == refused, response.content[:500]
    return "refused"


LOGIN_PATHS = {"admin": admin_login, "account": account_login, "token": token_login}
paths = pytest.mark.parametrize("login", list(LOGIN_PATHS.values()), ids=list(LOGIN_PATHS))


@pytest.fixture
def dm(centre_a):
    """A data manager: may log in on every path (admin, account, API)."""
    return factories.user_with_role(Role.DATA_MANAGER, centre_a, username="dm-a")


def test_the_defaults():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == datetime.timedelta(minutes=30)
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]
    assert settings.NUM_PROXIES == 0 and settings.REST_FRAMEWORK["NUM_PROXIES"] == 0


@paths
def test_the_right_password_works_before_any_failure(dm, login):
    assert login("dm-a", PASSWORD) == "ok"


@paths
def test_wrong_passwords_then_the_right_one_is_refused(dm, login):
    outcomes = [login("dm-a", WRONG) for _ in range(LIMIT)]
    assert outcomes == ["refused"] * (LIMIT - 1) + ["locked"]
    assert login("dm-a", PASSWORD) == "locked"
    # Locked on every path, not only the one guessed at.
    assert {other("dm-a", PASSWORD) for other in LOGIN_PATHS.values()} == {"locked"}


@paths
def test_a_username_is_locked_whatever_the_address(dm, login):
    for i in range(LIMIT):
        login("dm-a", WRONG, REMOTE_ADDR=f"198.51.100.{i + 1}")
    assert login("dm-a", PASSWORD, REMOTE_ADDR="198.51.100.200") == "locked"
    # Another user from those addresses is not affected.
    factories.user_with_role(Role.DATA_MANAGER, dm.memberships.get().centre, username="dm-other")
    assert login("dm-other", PASSWORD, REMOTE_ADDR="198.51.100.201") == "ok"


@paths
def test_an_address_is_locked_whatever_the_username(dm, login):
    outcomes = [login(f"guess-{i}", WRONG, REMOTE_ADDR="203.0.113.7") for i in range(LIMIT)]
    assert outcomes[-1] == "locked"
    assert login("dm-a", PASSWORD, REMOTE_ADDR="203.0.113.7") == "locked"
    assert login("dm-a", PASSWORD, REMOTE_ADDR="203.0.113.8") == "ok"  # the user, from elsewhere


@paths
def test_the_cool_off_lets_the_user_back_in(dm, login):
    for _ in range(LIMIT):
        login("dm-a", WRONG)
    assert login("dm-a", PASSWORD) == "locked"

    def failures_were(ago):
        AccessAttempt.objects.update(attempt_time=timezone.now() - ago)

    failures_were(settings.AXES_COOLOFF_TIME - datetime.timedelta(minutes=1))
    assert login("dm-a", PASSWORD) == "locked"  # (and that attempt restarts the cool-off)
    failures_were(settings.AXES_COOLOFF_TIME + datetime.timedelta(minutes=1))
    assert login("dm-a", PASSWORD) == "ok"


@paths
def test_failures_and_successes_are_recorded(dm, login):
    login("dm-a", WRONG, REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="guesser/1.0")
    login("dm-a", WRONG, REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="guesser/1.0")
    assert login("dm-a", PASSWORD, REMOTE_ADDR="192.0.2.11") == "ok"

    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("dm-a", "192.0.2.10", 2)
    assert attempt.user_agent == "guesser/1.0"
    assert WRONG not in attempt.post_data  # passwords are never stored
    assert AccessFailureLog.objects.filter(username="dm-a", ip_address="192.0.2.10").count() == 2
    success = AccessLog.objects.get()
    assert (success.username, success.ip_address) == ("dm-a", "192.0.2.11")


@paths
def test_a_fresh_x_forwarded_for_per_attempt_escapes_no_lock_out(dm, login):
    for i in range(LIMIT):
        login(f"guess-{i}", WRONG, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"10.{i}.0.1")
    assert login("dm-a", PASSWORD, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="10.99.0.1") == "locked"
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_a_fresh_x_forwarded_for_per_attempt_escapes_no_token_throttle(dm):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    cache.clear()
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = {**api_settings.DEFAULT_THROTTLE_RATES, "auth": "3/min"}
    try:
        responses = [
            APIClient().post(
                "/api/v1/auth/token/",
                {"username": f"guess-{i}", "password": WRONG},
                format="json",
                REMOTE_ADDR="203.0.113.7",
                HTTP_X_FORWARDED_FOR=f"10.{i}.0.1",
            )
            for i in range(4)
        ]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert [r.status_code for r in responses] == [400, 400, 400, 429]
    assert "throttled" in responses[-1].json()["detail"]  # the throttle, not the lock-out (3 < 5 failures)


def test_behind_a_configured_proxy_the_forwarded_address_is_the_client(dm):
    with override_settings(NUM_PROXIES=1, REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}):
        for i in range(LIMIT):
            # The client may prepend anything; the proxy appends the address it saw.
            token_login("dm-a", WRONG, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"6.6.6.{i}, 198.51.100.9")
        assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.9"}
        assert token_login("guess", WRONG, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.9") == "locked"
        assert token_login("guess", WRONG, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.10") == "refused"


@override_settings(REQUIRE_2FA=True)
@pytest.mark.parametrize("where", ["account", "token"])
def test_wrong_second_factor_codes_count_as_failures(dm, where):
    device = TOTPDevice.objects.create(user=dm, name="phone", confirmed=True)

    def attempt(code):
        if where == "token":
            response = APIClient().post(
                "/api/v1/auth/token/", {"username": "dm-a", "password": PASSWORD, "otp": code}, format="json"
            )
            return {200: "ok", 400: "refused", 429: "locked"}[response.status_code]
        client = Client()
        response = client.post("/account/login/", {"username": "dm-a", "password": PASSWORD})
        if response.status_code != 302:
            return verdict(response, refused=302)
        response = client.post("/account/login/", {"step": "code", "otp": code})
        if response.status_code == 302:
            return "ok"
        return verdict(response, refused=200)

    wrong = f"{(int(totp(device.bin_key)) + 1) % 1_000_000:06d}"
    assert [attempt(wrong) for _ in range(LIMIT)] == ["refused"] * (LIMIT - 1) + ["locked"]
    assert attempt(totp(device.bin_key)) == "locked"
    assert AccessFailureLog.objects.filter(username="dm-a").count() >= LIMIT


def test_drf_login_pages_are_gone(db):
    assert Client().get("/api-auth/login/").status_code == 404
    assert Client().post("/api-auth/login/", {"username": "x", "password": "y"}).status_code == 404


def test_the_coordinator_reads_the_records_read_only_and_unlocks_by_deleting_the_attempt(dm, coordinator):
    for _ in range(LIMIT):
        token_login("dm-a", WRONG)
    assert token_login("dm-a", PASSWORD) == "locked"
    attempt = AccessAttempt.objects.get()

    client = Client()
    client.force_login(coordinator)
    for model in ("accessattempt", "accesslog", "accessfailurelog"):
        assert client.get(f"/admin/axes/{model}/").status_code == 200
        assert client.get(f"/admin/axes/{model}/add/").status_code == 403
    change = client.get(f"/admin/axes/accessattempt/{attempt.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content  # view only
    log = AccessFailureLog.objects.first()
    assert client.post(f"/admin/axes/accessfailurelog/{log.pk}/delete/", {"post": "yes"}).status_code == 403

    assert client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"}).status_code == 302
    assert token_login("dm-a", PASSWORD) == "ok"

    other = Client()
    other.force_login(dm)
    assert other.get("/admin/axes/accessattempt/").status_code == 403
