"""Logging in to the registry in a browser: password, then the second factor; enrolment, recovery codes, logout.

One login view serves ``/account/login/`` (every role: the browsable API and its documentation) and the
admin's ``/admin/login/`` (data-entry roles only, with the admin's look). After the password, a user with a
confirmed authenticator gives a code from it (or a recovery code) before the session is logged in; a user
without one is logged in, and with ``REQUIRE_2FA`` sent to enrolment first, and kept there by
``TwoFactorMiddleware`` until enrolled.

Also here, for django-axes: the client address (``client_ip``, as DRF's throttles see it) and the lock-out
answer (``lockout_response``).
"""

import ipaddress
import time
from urllib.parse import urlencode

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django import forms
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from . import access, two_factor

ACCOUNT_PREFIX = "/account/"
# The user who gave the right password and now owes a code: {"user": pk, "backend": path, "since": seconds}.
PENDING_SESSION_KEY = "account_login_pending"
PENDING_SECONDS = 300
# Recovery codes just made, shown once by RecoveryCodesView.
NEW_CODES_SESSION_KEY = "account_new_recovery_codes"


# --- Addresses and the lock-out answer (django-axes) ------------------------------------------------------


def client_ip(request):
    """The client's address: ``REMOTE_ADDR``, or with ``NUM_PROXIES`` proxies in front, the address the
    outermost of them saw (X-Forwarded-For read from the right). The same rule as DRF's throttles, so the
    throttle and the lock-out count the same client; with ``NUM_PROXIES = 0`` X-Forwarded-For is ignored.
    """
    remote = request.META.get("REMOTE_ADDR")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    proxies = getattr(settings, "NUM_PROXIES", 0) or 0
    if proxies <= 0 or not forwarded:
        return remote
    addresses = forwarded.split(",")
    candidate = addresses[-min(proxies, len(addresses))].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def lockout_message(request=None):
    cool_off = get_cool_off(request)
    if cool_off:
        minutes = max(1, round(cool_off.total_seconds() / 60))
        wait = f"Logging in is blocked for {minutes} minutes after the last failed attempt"
    else:
        wait = "Logging in is blocked until the registry coordinator unlocks it"
    return (
        f"Too many failed login attempts for this account or from this address. {wait}; "
        "the registry coordinator can unlock it sooner."
    )


def lockout_response(request, original_response=None, credentials=None):
    """What a locked-out login gets (``AXES_LOCKOUT_CALLABLE``): 429, as JSON in the API's error shape
    under /api/, as a page elsewhere."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": lockout_message(request)}, status=429)
    else:
        response = render(
            request,
            "account/locked_out.html",
            {"message": lockout_message(request), "login_url": settings.LOGIN_URL},
            status=429,
        )
    cool_off = get_cool_off(request)
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response


def locked_out(request, username):
    return not AxesProxyHandler.is_allowed(request, {"username": username})


# --- Keeping an unverified session in /account/ -----------------------------------------------------------


class TwoFactorMiddleware:
    """With ``REQUIRE_2FA``, a session that has not given a second factor reaches /account/ only.

    Elsewhere it is sent to enrolment (no authenticator yet) or to the code step of the login (it has
    one: a session from before it was required). On the API it counts for nothing: an API token still
    works, the session's cookie does not. Sits after ``django_otp.middleware.OTPMiddleware``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if two_factor.required():
            response = self.confine(request)
            if response is not None:
                return response
        return self.get_response(request)

    def confine(self, request):
        path = request.path_info
        if path.startswith(ACCOUNT_PREFIX) or path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or two_factor.is_verified(user):
            return None
        if path.startswith("/api/"):
            request.user = AnonymousUser()
            return None
        target = settings.LOGIN_URL if two_factor.has_two_factor(user) else two_factor.ENROL_PATH
        return HttpResponseRedirect(f"{target}?{urlencode({'next': request.get_full_path()})}")


# --- Forms --------------------------------------------------------------------------------------------------


class LoginForm(AuthenticationForm):
    """Every registry role may log in here; an account without one may not."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not access.can_use_api(user):
            raise forms.ValidationError("This account has no registry role.", code="invalid_login")


class CodeForm(forms.Form):
    otp = forms.CharField(
        label="Code",
        max_length=32,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
        help_text="The 6 digits your authenticator app shows now, or one of your recovery codes.",
    )


# --- Views --------------------------------------------------------------------------------------------------


def safe_next(request, default):
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def with_next(url, next_url):
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


@method_decorator([sensitive_post_parameters("password", "otp"), csrf_protect, never_cache], name="dispatch")
class LoginView(View):
    """Password, then (for a user with an authenticator) the code. With ``admin_site``: the admin's login."""

    admin_site = None
    form_class = LoginForm
    extra_context = None

    def dispatch(self, request, *args, **kwargs):
        if self.admin_site is not None:
            request.current_app = self.admin_site.name
            default = reverse("admin:index", current_app=self.admin_site.name)
        else:
            default = reverse("account:home")
        self.next_url = safe_next(request, default)
        return super().dispatch(request, *args, **kwargs)

    # -- GET: the step this session is at.

    def get(self, request):
        user = self.pending_user()
        if user is not None:
            return self.code_step(user, CodeForm())
        if request.user.is_authenticated:
            if two_factor.required() and not two_factor.has_two_factor(request.user):
                return HttpResponseRedirect(with_next(two_factor.ENROL_PATH, self.next_url))
            if self.admin_site is None or self.admin_site.has_permission(request):
                return HttpResponseRedirect(self.next_url)
        return self.password_step(self.form_class(request))

    # -- POST: the password, or the code.

    def post(self, request):
        if request.POST.get("step") == "code":
            user = self.pending_user()
            if user is None:
                form = self.form_class(request)
                return self.password_step(form, error="That took too long: log in again.")
            return self.check_code(user)
        form = self.form_class(request, data=request.POST)
        if not form.is_valid():
            # A locked-out attempt is flagged on the request; axes' middleware answers it (lockout_response).
            return self.password_step(form)
        user = form.get_user()
        if two_factor.has_two_factor(user):
            request.session[PENDING_SESSION_KEY] = {"user": user.pk, "backend": user.backend, "since": time.time()}
            return HttpResponseRedirect(with_next(request.path, self.next_url))
        request.session.pop(PENDING_SESSION_KEY, None)
        auth_login(request, user)
        if two_factor.required():
            return HttpResponseRedirect(with_next(two_factor.ENROL_PATH, self.next_url))
        return HttpResponseRedirect(self.next_url)

    def check_code(self, user):
        request = self.request
        if locked_out(request, user.get_username()):
            request.session.pop(PENDING_SESSION_KEY, None)
            return lockout_response(request)
        form = CodeForm(request.POST)
        if not form.is_valid():
            return self.code_step(user, form)
        device = two_factor.verify(user, form.cleaned_data["otp"])
        if device is None:
            two_factor.record_failure(request, user)
            if getattr(request, "axes_locked_out", False):
                request.session.pop(PENDING_SESSION_KEY, None)
                return lockout_response(request)
            form.add_error("otp", "That code is wrong, out of date or already used.")
            return self.code_step(user, form)
        request.session.pop(PENDING_SESSION_KEY, None)
        user.otp_device = device  # django_otp's user_logged_in receiver keeps it in the session
        auth_login(request, user, backend=user.backend)
        return HttpResponseRedirect(self.next_url)

    def pending_user(self):
        """The user who owes this session a code, if any."""
        request = self.request
        User = get_user_model()
        pending = request.session.get(PENDING_SESSION_KEY)
        if pending is not None:
            user = None
            if time.time() - pending.get("since", 0) <= PENDING_SECONDS:
                user = User.objects.filter(pk=pending.get("user"), is_active=True).first()
            if user is None:
                request.session.pop(PENDING_SESSION_KEY, None)
                return None
            user.backend = pending["backend"]
            return user
        # Logged in with the password alone (before an authenticator was required, or set up elsewhere).
        current = request.user
        if current.is_authenticated and not two_factor.is_verified(current) and two_factor.has_two_factor(current):
            user = User.objects.get(pk=current.pk)
            user.backend = request.session.get(BACKEND_SESSION_KEY, settings.AUTHENTICATION_BACKENDS[-1])
            return user
        return None

    # -- Pages.

    def context(self, **kwargs):
        context = {"next": self.next_url, "app_path": self.request.get_full_path()}
        if self.admin_site is not None:
            context.update(self.admin_site.each_context(self.request), title="Log in", subtitle=None)
            context["username"] = self.request.user.get_username()
        context.update(self.extra_context or {})
        context.update(kwargs)
        return context

    def password_step(self, form, error=None):
        if error:  # on a blank form: shown as the form's own error
            form.errors[NON_FIELD_ERRORS] = form.error_class([error], error_class="nonfield")
        template = "admin/login.html" if self.admin_site is not None else "account/login.html"
        return render(self.request, template, self.context(form=form))

    def code_step(self, user, form):
        template = "account/admin_login_code.html" if self.admin_site is not None else "account/login_code.html"
        return render(self.request, template, self.context(form=form, pending_username=user.get_username()))


def account_page(view=None, *, before_enrolment=False):
    """A page for a logged-in user who has given their second factor (if they have one), and with
    ``REQUIRE_2FA`` has one, unless ``before_enrolment`` (the enrolment pages themselves)."""

    def decorate(view):
        def wrapped(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return HttpResponseRedirect(with_next(settings.LOGIN_URL, request.get_full_path()))
            if two_factor.has_two_factor(user):
                if not two_factor.is_verified(user):
                    # Owes a code first (the login's code step).
                    return HttpResponseRedirect(with_next(settings.LOGIN_URL, request.get_full_path()))
            elif two_factor.required() and not before_enrolment:
                return HttpResponseRedirect(with_next(two_factor.ENROL_PATH, request.get_full_path()))
            return view(request, *args, **kwargs)

        return wrapped

    return decorate(view) if view is not None else decorate


@method_decorator([account_page, never_cache], name="dispatch")
class AccountHomeView(View):
    def get(self, request):
        user = request.user
        return render(
            request,
            "account/home.html",
            {
                "roles": sorted({m.get_role_display() for m in user.memberships.all()}),
                "has_two_factor": two_factor.has_two_factor(user),
                "recovery_codes_left": two_factor.recovery_codes_left(user),
                "can_use_admin": access.can_use_admin(user),
                "require_2fa": two_factor.required(),
            },
        )


@method_decorator(
    [sensitive_post_parameters("otp"), account_page(before_enrolment=True), csrf_protect, never_cache],
    name="dispatch",
)
class TwoFactorView(View):
    """Set up an authenticator (or replace it), and make new recovery codes."""

    def get(self, request):
        user = request.user
        if two_factor.has_two_factor(user) and request.GET.get("replace") != "1":
            return self.status_page()
        return self.enrolment_page(CodeForm())

    def post(self, request):
        user = request.user
        action = request.POST.get("action")
        if action == "recovery-codes":
            if not two_factor.has_two_factor(user):
                return HttpResponseRedirect(request.path)
            return self.show_codes(two_factor.new_recovery_codes(user))
        form = CodeForm(request.POST)
        if not form.is_valid():
            return self.enrolment_page(form)
        device = two_factor.pending_authenticator(user)
        codes = two_factor.confirm_authenticator(user, device, form.cleaned_data["otp"])
        if codes is None:
            form.add_error("otp", "That code is wrong or out of date: enter the code your app shows now.")
            return self.enrolment_page(form)
        device.refresh_from_db()
        otp_login(request, device)
        return self.show_codes(codes)

    def next_url(self):
        return safe_next(self.request, reverse("account:home"))

    def show_codes(self, codes):
        self.request.session[NEW_CODES_SESSION_KEY] = codes
        return HttpResponseRedirect(with_next(reverse("account:recovery-codes"), self.next_url()))

    def status_page(self):
        user = self.request.user
        return render(
            self.request,
            "account/two_factor.html",
            {"enrolled": True, "recovery_codes_left": two_factor.recovery_codes_left(user), "next": self.next_url()},
        )

    def enrolment_page(self, form):
        user = self.request.user
        device = two_factor.pending_authenticator(user)
        return render(
            self.request,
            "account/two_factor.html",
            {
                "enrolled": False,
                "replacing": two_factor.has_two_factor(user),
                "form": form,
                "secret": two_factor.secret_text(device),
                "otpauth_uri": device.config_url,
                "qr_code": two_factor.qr_code_data_uri(device),
                "next": self.next_url(),
                "require_2fa": two_factor.required(),
            },
        )


@method_decorator([account_page, never_cache], name="dispatch")
class RecoveryCodesView(View):
    """The recovery codes just made, once: reloading the page does not show them again."""

    def get(self, request):
        codes = request.session.pop(NEW_CODES_SESSION_KEY, None)
        return render(
            request,
            "account/recovery_codes.html",
            {"codes": codes, "next": safe_next(request, reverse("account:home"))},
        )


@method_decorator([csrf_protect, never_cache], name="dispatch")
class LogoutView(View):
    def get(self, request):
        return render(request, "account/logout.html", {"logged_in": request.user.is_authenticated})

    def post(self, request):
        auth_logout(request)
        return HttpResponseRedirect(settings.LOGIN_URL)
