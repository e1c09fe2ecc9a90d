"""Two-factor authentication: an authenticator app (TOTP) and ten single-use recovery codes (django-otp).

A user "has two-factor" once a TOTP device is confirmed; from then on every login, in the browser or for
an API token, needs a current code from it or an unused recovery code, whatever ``REQUIRE_2FA`` says.
``REQUIRE_2FA`` decides whether a user *without* it may log in at all: when on, such a user is sent to
enrolment (browser) or refused a token (API) until they have it.
"""

import re
from base64 import b32encode

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django_otp import verify_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODE_COUNT = 10
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
ENROL_PATH = "/account/two-factor/"


def required():
    return bool(getattr(settings, "REQUIRE_2FA", True))


def has_two_factor(user):
    """Does ``user`` have a confirmed authenticator (and so must give a code at every login)?"""
    return bool(user.is_authenticated) and TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def is_verified(user):
    """Has this request's session given its second factor? (``django_otp.middleware.OTPMiddleware``)"""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


# --- Enrolment --------------------------------------------------------------------------------------------


def pending_authenticator(user):
    """The unconfirmed authenticator being set up for ``user``, made on first use (one at a time)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def secret_text(device):
    """The secret as an authenticator app asks for it when typed in: base32, in groups of four."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_code_data_uri(device):
    """The ``otpauth://`` URI as a QR code, an SVG ``data:`` URI for an ``<img>``."""
    import segno

    return segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2)


@transaction.atomic
def confirm_authenticator(user, device, code):
    """Confirm ``device`` with a current ``code``: it replaces any earlier authenticator.

    Returns the new recovery codes (shown once), or None if the code is wrong.
    """
    device = TOTPDevice.objects.select_for_update().filter(pk=device.pk, user=user, confirmed=False).first()
    if device is None or not device.verify_token(normalise(code)):
        return None
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return new_recovery_codes(user)


@transaction.atomic
def new_recovery_codes(user):
    """Ten new single-use recovery codes for ``user``; the old ones stop working. Stored as given."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_NAME, defaults={"confirmed": True})
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    if not device.confirmed:
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    device.token_set.all().delete()
    codes = []
    while len(codes) < RECOVERY_CODE_COUNT:
        code = StaticToken.random_token()
        if code not in codes and not code.isdigit():  # all digits would be taken for an authenticator code
            codes.append(code)
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user):
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def reset(user):
    """Remove every second factor of ``user`` (the coordinator's reset): they enrol again at next login."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()


# --- Verification -----------------------------------------------------------------------------------------


def normalise(code):
    return re.sub(r"[\s-]+", "", str(code or "")).lower()


def verify(user, code):
    """The confirmed device that accepts ``code`` (a current TOTP code or an unused recovery code), or None.

    A recovery code is used up by this call. Only a user with a confirmed authenticator has codes to give.
    """
    code = normalise(code)
    if not code or not has_two_factor(user):
        return None
    # Digits are for the authenticator, anything else is a recovery code: a device counts (and throttles)
    # only the codes meant for it.
    if code.isdigit() and len(code) <= 8:
        devices = TOTPDevice.objects.filter(user=user, confirmed=True)
    else:
        devices = StaticDevice.objects.filter(user=user, confirmed=True)
    for device in devices:
        accepted = verify_token(user, device.persistent_id, code)
        if accepted is not None:
            return accepted
    return None


def record_failure(request, user):
    """A wrong code counts as a failed login towards the lock-out (django-axes listens to this signal)."""
    user_login_failed.send(
        sender=__name__, credentials={"username": user.get_username()}, request=request, reason="otp"
    )
