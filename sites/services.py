"""Writes of the sites app that are not a record's: session housekeeping (issue 17, item 4)."""

from django.contrib.sessions.models import Session
from django.utils import timezone


def delete_expired_sessions(now=None):
    """Delete every login session past its expiry (``SESSION_MAX_HOURS``); the number deleted.

    A session idle past ``SESSION_IDLE_MINUTES`` is already refused by ``sites.sessions``; this only
    keeps the table from holding them for ever, as Django's ``clearsessions`` would.
    """
    deleted, _ = Session.objects.filter(expire_date__lt=now or timezone.now()).delete()
    return deleted
