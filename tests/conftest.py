import pytest
from django.core.cache import cache

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


@pytest.fixture(autouse=True)
def fresh_caches():
    """Caches outlive a test's rolled-back transaction: start each test without them."""
    from reports.cohort import forget_live_cohort

    cache.clear()
    forget_live_cohort()
    yield
    cache.clear()
    forget_live_cohort()
