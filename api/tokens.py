"""API tokens: each acts in one of its user's roles, and a user holds at most TOKEN_LIMIT_PER_USER at once.

Every token is made by ``create_token`` (the token endpoint, the tests), so none lacks a role; a token
without one (made before roles were stored) is refused by ``api.authentication.RoleTokenAuthentication``.
"""

from axes.helpers import get_cool_off
from django.contrib.auth.models import update_last_login
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import exceptions

from sites import access, two_factor
from sites.models import Membership

from .models import TokenRole

REVOKE_ALL_PATH = "/api/v1/auth/token/revoke-all/"


class TokenLimitReached(exceptions.PermissionDenied):
    def __init__(self, limit):
        super().__init__(
            f"You already hold {limit} unexpired tokens, the most one user may have. Revoke the ones you no "
            f"longer use (POST {REVOKE_ALL_PATH} with one of them revokes them all), then ask again."
        )


class RoleNotHeld(ValueError):
    pass


class LockedOut(exceptions.APIException):
    """Too many failed logins for this username or from this address (django-axes): 429, the error shape."""

    status_code = 429
    default_code = "locked_out"

    def __init__(self, request=None):
        from sites.authentication import lockout_message

        super().__init__(lockout_message(request))
        cool_off = get_cool_off(request)
        self.wait = int(cool_off.total_seconds()) if cool_off else None


def check_second_factor(request, user, code):
    """Refuse the token unless the second factor is given: a user with an authenticator gives a current code
    or an unused recovery code; with ``REQUIRE_2FA``, a user without one is told to set it up first.
    A wrong code counts as a failed login towards the lock-out."""
    if not two_factor.has_two_factor(user):
        if two_factor.required():
            raise exceptions.ValidationError(
                {
                    "otp": [
                        "This registry requires two-factor authentication and your account has none yet: "
                        f"set it up at {two_factor.ENROL_PATH} (log in there in a browser), then ask again."
                    ]
                }
            )
        return None
    if not two_factor.normalise(code):
        raise exceptions.ValidationError(
            {"otp": ["Give the current code of your authenticator app (or a recovery code) as otp."]}
        )
    device = two_factor.verify(user, code)
    if device is None:
        two_factor.record_failure(request, user)
        if getattr(request, "axes_locked_out", False):
            raise LockedOut(request)
        raise exceptions.ValidationError({"otp": ["That code is wrong, out of date or already used."]})
    return device


def choose_role(user, asked):
    """The role a new token acts in: ``asked``, which must be one of the user's, or their only role."""
    held = roles_of(user)
    if asked:
        if asked not in held:
            raise exceptions.ValidationError(
                {"role": [f"You do not hold the role {asked!r}; yours: {', '.join(held)}."]}
            )
        return asked
    if len(held) != 1:
        raise exceptions.ValidationError(
            {"role": [f"You hold several roles ({', '.join(held)}): say which one this token acts in."]}
        )
    return held[0]


def roles_of(user):
    """The roles ``user`` may ask a token for, in ``access.ROLES`` order (a superuser is the coordinator)."""
    held = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    if user.is_superuser:
        held.add(access.COORDINATOR)
    return [role for role in access.ROLES if role in held]


def active_tokens(user):
    now = timezone.now()
    return AuthToken.objects.filter(Q(expiry__gt=now) | Q(expiry__isnull=True), user=user)


def check_token_limit(user):
    limit = knox_settings.TOKEN_LIMIT_PER_USER
    if limit is not None and active_tokens(user).count() >= limit:
        raise TokenLimitReached(limit)


@transaction.atomic
def create_token(user, role):
    """A new token of ``user`` acting as ``role``: ``(AuthToken, the token string)``, shown once.

    Raises ``RoleNotHeld`` if the user does not hold ``role`` and ``TokenLimitReached`` (403) if the user
    already holds ``REST_KNOX["TOKEN_LIMIT_PER_USER"]`` unexpired tokens.
    """
    if role not in roles_of(user):
        raise RoleNotHeld(role)
    # Counted under a lock on the user's row, so parallel requests cannot pass the limit together.
    type(user).objects.select_for_update().filter(pk=user.pk).first()
    check_token_limit(user)
    instance, token = AuthToken.objects.create(user=user)
    TokenRole.objects.create(token=instance, role=role)
    return instance, token


def record_api_login(request, user):
    """A successful token login, as a browser login is recorded: ``last_login`` and axes' ``AccessLog``.

    Not through the ``user_logged_in`` signal, whose receivers start a browser session.
    """
    from axes.conf import settings as axes_settings
    from axes.handlers.proxy import AxesProxyHandler
    from axes.models import AccessLog

    update_last_login(None, user)
    if not axes_settings.AXES_ENABLED or axes_settings.AXES_DISABLE_ACCESS_LOG:
        return
    AxesProxyHandler.update_request(request)
    AccessLog.objects.create(
        username=user.get_username(),
        ip_address=request.axes_ip_address,
        user_agent=request.axes_user_agent,
        http_accept=request.axes_http_accept,
        path_info=request.axes_path_info,
        attempt_time=request.axes_attempt_time,
    )
