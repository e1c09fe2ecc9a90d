"""A data manager with an authenticator logs in to the admin in a real browser: password, then the code.

Run: ``CI=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_e2e pytest tests/e2e/test_two_factor_login.py -q``
"""

import re

import pytest
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory


def current_code(device):
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


@override_settings(REQUIRE_2FA=True)
def test_two_factor_login_lands_in_the_admin(live_server, page, data_manager_a):
    device = TOTPDevice.objects.create(user=data_manager_a, name="phone", confirmed=True)
    admin = f"{live_server.url}/admin/"

    page.goto(admin)
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.locator("#id_username").fill(data_manager_a.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator('input[type="submit"]').click()

    # The password is not enough: the code step, still on the admin's login page.
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator("#code-form")).to_contain_text(data_manager_a.username)
    page.goto(admin)  # the admin is not reachable yet
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator("#id_otp")).to_be_visible()

    page.locator("#id_otp").fill("000000" if current_code(device) != "000000" else "111111")
    page.locator('#code-form input[type="submit"]').click()
    expect(page.locator("#code-form .errorlist")).to_contain_text("wrong")

    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    page.locator("#id_otp").fill(current_code(device))
    page.locator('#code-form input[type="submit"]').click()
    expect(page).to_have_url(admin)
    expect(page.locator("#user-tools")).to_contain_text(data_manager_a.username)
    page.goto(f"{admin}registry/patient/")
    expect(page.locator("#changelist")).to_be_visible()
    assert not page.problems
