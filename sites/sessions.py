"""Browser sessions end after a spell of inactivity and, whatever happens, some hours after login.

OWASP's Session Management Cheat Sheet asks for both an idle and an absolute timeout;
the defaults (30 idle minutes, 12 hours) match the API token's lifetime.
"""

import time

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

STARTED = "registry_session_started"
LAST_SEEN = "registry_session_last_seen"
# Writing the session on every request would cost a database write per page; a minute's precision is enough.
LAST_SEEN_RESOLUTION_SECONDS = 60


@receiver(user_logged_in)
def start_session_clock(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        now = int(time.time())
        request.session[STARTED] = now
        request.session[LAST_SEEN] = now


def session_expired(session, now):
    """Why the session in ``session`` is over at ``now`` (seconds), or None if it is not."""
    started = session.get(STARTED)
    last_seen = session.get(LAST_SEEN)
    if started is None or last_seen is None:
        return "no start recorded"  # a session from before these rules: fail closed
    if now - last_seen > settings.SESSION_IDLE_MINUTES * 60:
        return "idle"
    if now - started > settings.SESSION_MAX_HOURS * 3600:
        return "too old"
    return None


class SessionTimeoutMiddleware:
    """Logs a session out once it is idle too long or too old; sits right after SessionMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = request.session
        if session.get("_auth_user_id") is not None:
            now = int(time.time())
            if session_expired(session, now):
                logout(request)
            elif now - session[LAST_SEEN] >= LAST_SEEN_RESOLUTION_SECONDS:
                session[LAST_SEEN] = now
        return self.get_response(request)
