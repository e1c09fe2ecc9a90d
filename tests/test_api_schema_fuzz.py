"""The API fuzzed against its own OpenAPI schema: no server error, no response outside the schema."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from api.tokens import create_token
from registry.wsgi import application
from sites.models import Role

from . import factories
from .api_world import build_world


@pytest.fixture
def api_schema(coordinator_token):
    # As Django's test client does: a request must not close the test's
    # connection, whose transaction holds the test data.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        # The schema itself needs a login.
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/schema/", application, headers={"Authorization": f"Token {coordinator_token}"}
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def coordinator_token(db):
    build_world()
    user = factories.user_with_role(Role.COORDINATOR)
    return create_token(user, Role.COORDINATOR)[1]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
def test_api_conforms_to_its_schema(case, coordinator_token):
    # Schema-valid data may still be refused for what a schema cannot say
    # (an id that does not exist, a date before the implantation): not a failure.
    case.call_and_validate(
        headers={"Authorization": f"Token {coordinator_token}"},
        excluded_checks=[schemathesis.checks.positive_data_acceptance],
    )
