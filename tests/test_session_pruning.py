"""Expired login sessions are pruned nightly (issue 17, item 4: retention)."""

import datetime

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from sites import services, tasks


def session(expires_in):
    store = SessionStore()
    store["who"] = "someone"
    store.set_expiry(expires_in)
    store.create()
    return store.session_key


def test_expired_sessions_are_deleted_and_live_ones_kept(db):
    expired, live = session(-60), session(3600)
    assert tasks.delete_expired_sessions.apply().get() == 1
    assert list(Session.objects.values_list("session_key", flat=True)) == [live]
    assert expired != live


def test_a_session_is_kept_until_its_expiry(db):
    session(3600)
    assert services.delete_expired_sessions() == 0
    assert services.delete_expired_sessions(now=timezone.now() + datetime.timedelta(hours=2)) == 1


def test_the_pruning_is_scheduled_nightly(db):
    task = PeriodicTask.objects.get(task="sites.tasks.delete_expired_sessions")
    assert task.enabled and task.crontab.hour == "3"
