"""Expired tokens: a request refuses its own on sight; the others go in the nightly pruning (api.tasks)."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from knox.models import AuthToken
from rest_framework.test import APIClient

from api import services, tasks
from api.models import TokenRole
from api.tokens import create_token
from sites.models import Role

from . import factories


def client_with(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def expire(instance):
    AuthToken.objects.filter(pk=instance.pk).update(expiry=timezone.now() - datetime.timedelta(minutes=1))


@pytest.fixture
def manager(centre_a):
    return factories.user_with_role(Role.DATA_MANAGER, centre_a, username="dm-tokens")


def test_an_expired_token_is_refused_and_deleted(manager):
    instance, token = create_token(manager, Role.DATA_MANAGER)
    expire(instance)
    assert client_with(token).get("/api/v1/centres/").status_code == 401
    assert not AuthToken.objects.filter(pk=instance.pk).exists()


def test_a_request_leaves_the_users_other_tokens_to_the_nightly_pruning(manager):
    old, _ = create_token(manager, Role.DATA_MANAGER)
    expire(old)
    _, token = create_token(manager, Role.DATA_MANAGER)
    with CaptureQueriesContext(connection) as queries:
        assert client_with(token).get("/api/v1/centres/").status_code == 200
    assert AuthToken.objects.filter(pk=old.pk).exists()
    token_queries = [q["sql"] for q in queries if "knox_authtoken" in q["sql"]]
    assert len(token_queries) == 1, token_queries  # the token, its user and its role in one query

    assert tasks.delete_expired_tokens.apply().get() == 1
    assert not AuthToken.objects.filter(pk=old.pk).exists()
    assert not TokenRole.objects.filter(token_id=old.pk).exists()
    assert client_with(token).get("/api/v1/centres/").status_code == 200


def test_pruning_keeps_unexpired_tokens(manager):
    kept, _ = create_token(manager, Role.DATA_MANAGER)
    assert services.delete_expired_tokens() == 0
    assert services.delete_expired_tokens(now=kept.expiry + datetime.timedelta(seconds=1)) == 1


def test_the_pruning_is_scheduled_nightly(db):
    task = PeriodicTask.objects.get(task="api.tasks.delete_expired_tokens")
    assert task.enabled and task.crontab.hour == "3"
