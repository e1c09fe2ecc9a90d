"""Browser sessions: 30 idle minutes, 12 hours at most (issue 10, item 5)."""

import datetime

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from sites import sessions

ADMIN = "/admin/"


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000]
    monkeypatch.setattr(sessions.time, "time", lambda: now[0])
    return now


def logged_in(client, user):
    client.force_login(user)
    assert client.get(ADMIN).status_code == 200


def test_an_active_session_lasts(client, data_manager_a, clock):
    logged_in(client, data_manager_a)
    for _ in range(20):  # 20 x 29 minutes: never idle for 30
        clock[0] += 29 * 60
        assert client.get(ADMIN).status_code == 200


def test_idle_session_is_logged_out(client, data_manager_a, clock):
    logged_in(client, data_manager_a)
    clock[0] += 30 * 60 + 1
    response = client.get(ADMIN)
    assert response.status_code == 302 and "/login/" in response.url
    assert client.get(ADMIN).status_code == 302  # and stays out


def test_idle_timeout_is_configurable(client, settings, data_manager_a, clock):
    settings.SESSION_IDLE_MINUTES = 5
    logged_in(client, data_manager_a)
    clock[0] += 5 * 60 + 1
    assert client.get(ADMIN).status_code == 302


def test_session_ends_twelve_hours_after_login_however_active(client, data_manager_a, clock):
    logged_in(client, data_manager_a)
    for _ in range(12 * 6):  # a request every 10 minutes for 12 hours
        clock[0] += 10 * 60
        assert client.get(ADMIN).status_code == 200
    clock[0] += 10 * 60
    assert client.get(ADMIN).status_code == 302


def test_a_session_without_its_clock_is_refused(client, data_manager_a):
    client.force_login(data_manager_a)
    session = client.session
    for key in (sessions.STARTED, sessions.LAST_SEEN):
        del session[key]
    session.save()
    assert client.get(ADMIN).status_code == 302


def test_the_stored_session_expires_within_twelve_hours(client, settings, data_manager_a):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    before = timezone.now()
    client.force_login(data_manager_a)
    row = Session.objects.get()
    assert row.expire_date <= before + datetime.timedelta(hours=12, minutes=1)
