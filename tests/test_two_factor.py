"""Two-factor authentication (TOTP and recovery codes) for every role, in the browser, the admin and the API.

With REQUIRE_2FA (on unless DEBUG is), a user without an authenticator is sent to enrolment before anything
else; a user with one gives a code at every login, whatever REQUIRE_2FA says.
"""

import re
import time

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory, override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken
from rest_framework.test import APIClient

from sites import two_factor
from sites.authentication import PENDING_SESSION_KEY
from sites.models import Role

from . import factories
from .test_settings import PRODUCTION, run_manage

PASSWORD = "correct-horse-battery"
required = override_settings(REQUIRE_2FA=True)


def code(device, ahead=0):
    """The device's code now (``ahead`` steps later: a code not yet used, for a second login in one step)."""
    value = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift + ahead)
    return f"{value:0{device.digits}d}"


def wrong(device):
    return f"{(int(code(device)) + 500_000) % 1_000_000:06d}"


def unthrottle(user):
    """django-otp makes a device wait 2^n seconds after n wrong codes; a test does not wait."""
    for model in (TOTPDevice, StaticDevice):
        model.objects.filter(user=user).update(throttling_failure_count=0, throttling_failure_timestamp=None)


def enrolled(user):
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return device, two_factor.new_recovery_codes(user)


@pytest.fixture
def dm(centre_a):
    return factories.user_with_role(Role.DATA_MANAGER, centre_a, username="dm-a")


def password_step(client, username="dm-a", path="/account/login/", next_url=None):
    data = {"username": username, "password": PASSWORD}
    if next_url:
        data["next"] = next_url
    return client.post(path, data)


def code_step(client, otp, path="/account/login/", next_url=None):
    data = {"step": "code", "otp": otp}
    if next_url:
        data["next"] = next_url
    return client.post(path, data)


def is_verified_session(client):
    return client.session.get("otp_device_id") is not None


# --- Settings -----------------------------------------------------------------------------------------------


def test_required_by_default_unless_debug():
    code_ = "from django.conf import settings as s; print(s.REQUIRE_2FA)"
    assert run_manage("shell", "-v", "0", "-c", code_, **PRODUCTION).stdout.split() == ["True"]
    assert run_manage("shell", "-v", "0", "-c", code_, **PRODUCTION, REQUIRE_2FA="0").stdout.split() == ["False"]
    # make run's demo (DEBUG=1): no second factor unless asked for, and nothing printed about it.
    demo = run_manage("shell", "-v", "0", "-c", code_, DEBUG="1")
    assert demo.stdout.split() == ["False"] and demo.stderr == ""
    assert run_manage("shell", "-v", "0", "-c", code_, DEBUG="1", REQUIRE_2FA="1").stdout.split() == ["True"]


def test_without_the_requirement_a_user_without_an_authenticator_logs_in_with_the_password(dm):
    client = Client()
    response = password_step(client, path="/admin/login/", next_url="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


# --- Enrolment ----------------------------------------------------------------------------------------------


@required
def test_enrolment_then_recovery_codes_shown_once(dm):
    client = Client()
    response = password_step(client, next_url="/admin/")
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=%2Fadmin%2F"

    # Nothing else is reachable before enrolment.
    assert client.get("/admin/")["Location"].startswith("/account/two-factor/")
    assert client.get("/admin/registry/patient/")["Location"].startswith("/account/two-factor/")

    page = client.get("/account/two-factor/?next=/admin/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=dm)
    assert not device.confirmed
    html = page.content.decode()
    assert two_factor.secret_text(device) in html
    assert "otpauth://totp/HAI%20Registry%3Adm-a?secret=" in html
    assert 'src="data:image/svg+xml' in html  # the QR code

    refused = client.post("/account/two-factor/", {"action": "confirm", "otp": wrong(device), "next": "/admin/"})
    assert refused.status_code == 200 and "wrong" in refused.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    unthrottle(dm)

    response = client.post("/account/two-factor/", {"action": "confirm", "otp": code(device), "next": "/admin/"})
    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/recovery-codes/?next=%2Fadmin%2F"
    device.refresh_from_db()
    assert device.confirmed and is_verified_session(client)

    shown = client.get(response["Location"]).content.decode()
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", shown)
    assert len(codes) == 10 == len(set(codes))
    assert sorted(codes) == sorted(StaticToken.objects.filter(device__user=dm).values_list("token", flat=True))
    assert not re.findall(r"<li>([a-z2-7]{8})</li>", client.get(response["Location"]).content.decode())

    assert client.get("/admin/").status_code == 200


@required
def test_an_unverified_session_is_confined_to_the_account_pages(dm):
    client = Client()
    password_step(client)
    assert client.get("/account/").status_code == 302  # no device yet: enrol first
    assert client.get("/account/two-factor/").status_code == 200
    # On the API the session counts for nothing.
    assert client.get("/api/v1/patients/").status_code in (401, 403)
    assert client.get("/api/v1/docs/").status_code in (401, 403)


@required
def test_a_verified_user_can_make_new_recovery_codes_and_the_old_ones_stop_working(dm):
    device, old_codes = enrolled(dm)
    client = Client()
    password_step(client)
    code_step(client, code(device))
    response = client.post("/account/two-factor/", {"action": "recovery-codes"})
    new_codes = re.findall(r"<li>([a-z2-7]{8})</li>", client.get(response["Location"]).content.decode())
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert two_factor.verify(dm, old_codes[0]) is None
    unthrottle(dm)
    assert two_factor.verify(dm, new_codes[0]) is not None


# --- Logging in with the second factor ----------------------------------------------------------------------


@pytest.mark.parametrize("requirement", [True, False], ids=["required", "not-required"])
def test_login_with_a_totp_code(dm, requirement):
    device, _ = enrolled(dm)
    with override_settings(REQUIRE_2FA=requirement):
        client = Client()
        response = password_step(client, next_url="/admin/")
        assert response.status_code == 302 and response["Location"] == "/account/login/?next=%2Fadmin%2F"
        assert "_auth_user_id" not in client.session  # not logged in on the password alone
        page = client.get(response["Location"])
        assert 'name="otp"' in page.content.decode() and "dm-a" in page.content.decode()

        refused = code_step(client, wrong(device), next_url="/admin/")
        assert refused.status_code == 200 and "_auth_user_id" not in client.session
        unthrottle(dm)

        response = code_step(client, code(device), next_url="/admin/")
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert is_verified_session(client)
        assert client.get("/admin/").status_code == 200


@required
def test_a_recovery_code_works_once(dm):
    _, codes = enrolled(dm)
    first = Client()
    password_step(first)
    assert code_step(first, codes[0].upper()).status_code == 302  # as typed from paper
    assert is_verified_session(first)

    second = Client()
    password_step(second)
    assert code_step(second, codes[0]).status_code == 200
    assert "_auth_user_id" not in second.session
    assert StaticToken.objects.filter(device__user=dm).count() == 9


@required
def test_the_code_step_expires(dm):
    device, _ = enrolled(dm)
    client = Client()
    password_step(client)
    session = client.session
    session[PENDING_SESSION_KEY] = {**session[PENDING_SESSION_KEY], "since": time.time() - 301}
    session.save()
    response = code_step(client, code(device))
    assert response.status_code == 200 and "log in again" in response.content.decode()
    assert "_auth_user_id" not in client.session


# --- The admin ----------------------------------------------------------------------------------------------


@required
def test_admin_login_asks_for_the_code(dm):
    device, _ = enrolled(dm)
    client = Client()
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    response = password_step(client, path="/admin/login/?next=/admin/", next_url="/admin/")
    assert response.status_code == 302 and response["Location"] == "/admin/login/?next=%2Fadmin%2F"
    assert client.get("/admin/").status_code == 302
    page = client.get(response["Location"])
    assert 'id="id_otp"' in page.content.decode()
    response = code_step(client, code(device), path="/admin/login/?next=/admin/", next_url="/admin/")
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


@required
def test_admin_still_refuses_users_without_a_data_entry_role(investigator):
    response = password_step(Client(), username="investigator", path="/admin/login/")
    assert response.status_code == 200
    assert "This account has no data-entry role. Investigators use the REST API." in response.content.decode()


def test_the_admin_refuses_an_unverified_session_when_required(dm):
    request = RequestFactory().get("/admin/")
    request.user = dm
    dm.is_verified = lambda: False
    with override_settings(REQUIRE_2FA=True):
        assert admin.site.has_permission(request) is False
        dm.is_verified = lambda: True
        assert admin.site.has_permission(request) is True
    dm.is_verified = lambda: False
    with override_settings(REQUIRE_2FA=False):
        assert admin.site.has_permission(request) is True
    request.user = AnonymousUser()
    with override_settings(REQUIRE_2FA=True):
        assert admin.site.has_permission(request) is False


@required
def test_a_session_logged_in_without_the_code_does_not_reach_the_admin(dm):
    enrolled(dm)
    client = Client()
    client.force_login(dm)  # the password alone, e.g. a session from before two-factor was required
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/account/login/")


# --- The API ------------------------------------------------------------------------------------------------


def ask_token(**body):
    return APIClient().post("/api/v1/auth/token/", {"username": "dm-a", "password": PASSWORD, **body}, format="json")


@required
def test_a_token_needs_the_code_when_required(dm):
    device, codes = enrolled(dm)
    missing = ask_token()
    assert missing.status_code == 400 and "otp" in missing.json()["errors"]
    assert ask_token(otp=wrong(device)).status_code == 400
    unthrottle(dm)
    assert ask_token(otp=code(device)).status_code == 200
    assert ask_token(otp=codes[0]).status_code == 200
    assert ask_token(otp=codes[0]).status_code == 400  # used up
    assert AuthToken.objects.filter(user=dm).count() == 2


@required
def test_a_user_without_an_authenticator_is_told_to_enrol(dm):
    response = ask_token()
    assert response.status_code == 400
    assert "/account/two-factor/" in response.json()["errors"]["otp"][0]
    assert not AuthToken.objects.exists()


def test_a_token_needs_no_code_when_not_required(dm):
    assert ask_token().status_code == 200


def test_a_user_with_an_authenticator_gives_the_code_even_when_not_required(dm):
    device, _ = enrolled(dm)
    assert ask_token().status_code == 400
    assert ask_token(otp=code(device)).status_code == 200


@required
def test_every_role_gives_the_code(centre_a):
    for role, centre in [
        (Role.COORDINATOR, None),
        (Role.INVESTIGATOR, None),
        (Role.DATA_MANAGER, centre_a),
        (Role.CENTRE_LEAD, centre_a),
    ]:
        user = factories.user_with_role(role, centre, username=f"u-{role}")
        device, _ = enrolled(user)
        body = {"username": user.username, "password": PASSWORD}
        assert APIClient().post("/api/v1/auth/token/", body, format="json").status_code == 400
        ok = APIClient().post("/api/v1/auth/token/", {**body, "otp": code(device)}, format="json")
        assert ok.status_code == 200 and ok.json()["role"] == role
        client = Client()
        password_step(client, username=user.username)
        assert code_step(client, code(device, ahead=1)).status_code == 302


# --- The coordinator's reset --------------------------------------------------------------------------------


@required
def test_the_coordinator_resets_a_users_second_factor(dm, coordinator):
    enrolled(dm)
    client = Client()
    client.force_login(coordinator)
    coordinator_device, _ = enrolled(coordinator)
    session = client.session
    session["otp_device_id"] = coordinator_device.persistent_id
    session.save()

    assert client.get("/admin/auth/user/").status_code == 200
    response = client.post("/admin/auth/user/", {"action": "reset_two_factor", "_selected_action": [dm.pk], "index": 0})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=dm).exists() and not StaticDevice.objects.filter(user=dm).exists()
    assert TOTPDevice.objects.filter(user=coordinator).exists()

    # The user sets it up again at the next login.
    user_client = Client()
    assert password_step(user_client)["Location"].startswith("/account/two-factor/")

    # Devices are seen and deleted in the admin, never added or read.
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 200
    assert client.get("/admin/otp_totp/totpdevice/add/").status_code == 403
    change = client.get(f"/admin/otp_totp/totpdevice/{coordinator_device.pk}/change/").content.decode()
    assert coordinator_device.key not in change
