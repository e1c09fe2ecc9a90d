"""GET /health/ (issue 17, item 1): the database, the cache (Redis) and the broker, each up and down."""

import pytest
from django.db import OperationalError
from django.test import override_settings

from registry import health
from registry.celery import app

REAL_REDIS = "redis://127.0.0.1:6379/15"
CLOSED_PORT = "redis://127.0.0.1:1/0"


def redis_cache(url):
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


@pytest.fixture
def broker(monkeypatch):
    """The Celery broker at a given URL, tasks sent to it (not run eagerly)."""

    def at(url):
        monkeypatch.setattr(app.conf, "task_always_eager", False)
        monkeypatch.setattr(app.conf, "broker_url", url)
        monkeypatch.setattr(app.conf, "broker_write_url", None)

    return at


def get(client):
    response = client.get("/health/")
    return response.status_code, response.json()


@pytest.mark.django_db
@override_settings(CACHES=redis_cache(REAL_REDIS))
def test_everything_up_is_200(client, broker):
    broker(REAL_REDIS)
    assert get(client) == (200, {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}})


@pytest.mark.django_db
def test_without_a_broker_tasks_run_eagerly_and_that_is_healthy(client, monkeypatch):
    monkeypatch.setattr(app.conf, "task_always_eager", True)
    status, body = get(client)
    assert status == 200 and body["checks"]["broker"] == "eager"


@pytest.mark.django_db
@override_settings(CACHES=redis_cache(REAL_REDIS))
def test_the_database_down_is_503(client, broker, monkeypatch):
    broker(REAL_REDIS)

    def refused(*args, **kwargs):
        raise OperationalError("connection to server at 10.0.0.7 failed")

    monkeypatch.setattr(health.connection, "cursor", refused)
    monkeypatch.setattr(health.connection, "close", lambda: None)  # the test's own connection stays
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "cache": "ok", "broker": "ok"},
    }
    assert b"10.0.0.7" not in response.content  # no detail of the failure for an unauthenticated caller


@pytest.mark.django_db
@override_settings(CACHES=redis_cache(CLOSED_PORT))
def test_redis_down_is_503(client, broker):
    broker(REAL_REDIS)
    status, body = get(client)
    assert status == 503 and body["checks"] == {"database": "ok", "cache": "unavailable", "broker": "ok"}


@pytest.mark.django_db
@override_settings(CACHES=redis_cache(REAL_REDIS))
def test_the_broker_down_is_503(client, broker):
    broker(CLOSED_PORT)
    status, body = get(client)
    assert status == 503 and body["checks"] == {"database": "ok", "cache": "ok", "broker": "unavailable"}


@pytest.mark.django_db
def test_only_reads_are_answered_and_nothing_is_cached(client):
    assert client.post("/health/").status_code == 405
    assert "no-cache" in client.get("/health/")["Cache-Control"]


def test_the_web_container_is_checked_through_it():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    assert "/health/" in " ".join(compose["services"]["web"]["healthcheck"]["test"])


def test_the_beat_container_is_checked_by_whether_beat_is_scheduling():
    from pathlib import Path

    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text())
    beat = compose["services"]["beat"]
    assert beat["healthcheck"]["test"][-2:] == ["manage.py", "check_beat"]
    # Beat writes each send at once, or the check would read a time up to minutes old.
    assert beat["environment"]["CELERY_BEAT_SYNC_EVERY"] == "1"
    assert beat["environment"]["DATABASE_URL"] == compose["services"]["worker"]["environment"]["DATABASE_URL"]
