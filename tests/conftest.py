import pytest

from sites.models import Role

from . import factories


@pytest.fixture
def centre_a(db):
    return factories.CentreFactory(code="CENTRE-A", name="Centre A")


@pytest.fixture
def centre_b(db):
    return factories.CentreFactory(code="CENTRE-B", name="Centre B")


@pytest.fixture
def coordinator(db):
    return factories.user_with_role(Role.COORDINATOR, username="coordinator")


@pytest.fixture
def data_manager_a(centre_a):
    return factories.user_with_role(Role.DATA_MANAGER, centre_a, username="dm-a")


@pytest.fixture
def centre_lead_a(centre_a):
    return factories.user_with_role(Role.CENTRE_LEAD, centre_a, username="lead-a")


@pytest.fixture
def investigator(db):
    return factories.user_with_role(Role.INVESTIGATOR, username="investigator")
