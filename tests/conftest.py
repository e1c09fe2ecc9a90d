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


def _is_transactional(item):
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or "transactional_db" in item.fixturenames


def restore_seeded_rows():
    """The rows the migrations seed (the complication types, the FUDR table, the beat schedules)."""
    import importlib

    from django.apps import apps

    from registry.services import restore_complication_types

    restore_complication_types()
    importlib.import_module("registry.migrations.0010_fudr_dose_bands_and_nightly_checks").seed_bands(apps, None)
    importlib.import_module("registry.migrations.0010_fudr_dose_bands_and_nightly_checks").schedule(apps, None)
    importlib.import_module("reports.migrations.0002_monthly_schedule").schedule(apps, None)
    importlib.import_module("api.migrations.0003_nightly_token_pruning").schedule(apps, None)
    importlib.import_module("sites.migrations.0006_nightly_session_pruning").schedule(apps, None)
    importlib.import_module("registry.migrations.0017_nightly_temporary_file_pruning").schedule(apps, None)
    importlib.import_module("reports.migrations.0007_sweeper").schedule(apps, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A transactional test ends by emptying every table, migrations' rows included. Without xdist such
    tests run last (pytest-django's order); with two processes (make test) a file runs whole, so a
    non-transactional test can follow one in the same process and must find the seeded rows again."""
    result = yield
    # After the last test the session's teardown has already dropped the test database: nothing to restore.
    if _is_transactional(item) and nextitem is not None:
        from pytest_django.plugin import blocking_manager_key

        with item.config.stash[blocking_manager_key].unblock():
            restore_seeded_rows()
    return result


@pytest.fixture(autouse=True)
def fresh_caches():
    """Caches outlive a test's rolled-back transaction: start each test without them."""
    from reports.cohort import forget_live_cohort

    cache.clear()
    forget_live_cohort()
    yield
    cache.clear()
    forget_live_cohort()


@pytest.fixture
def print_stand_in(monkeypatch):
    """Reports printed by a stand-in for WeasyPrint, for tests of runs, tasks and delivery rather than print.

    WeasyPrint costs seconds a copy and a run prints two copies per centre; tests/test_report_rendering.py
    and tests/test_report_email_copy.py read real PDFs. The stand-in's bytes follow the HTML, so a
    checksum still changes exactly when the report's content does.
    """
    import hashlib

    from reports import rendering

    def print_html(html):
        return b"%PDF-1.7\n% stand-in for " + hashlib.sha256(html.encode()).hexdigest().encode() + b"\n%%EOF\n"

    monkeypatch.setattr(rendering, "render_pdf", print_html)
    return print_html


class _RegistryChanges:
    """Counts writes to the tables a data release copies, so a fresh release is frozen only when needed."""

    def __init__(self):
        from reports import releases

        self.models = {model for model, _ in releases.released_models()}
        self.tables = [model._meta.db_table for model in self.models]
        self.signalled = 0

    def receive(self, sender, **kwargs):
        if sender in self.models:
            self.signalled += 1

    def fingerprint(self):
        from django.db import connection

        if connection.vendor != "postgresql":
            return self.signalled, None
        # Writes so far in this transaction, queryset.update() and bulk_create() included (no signals); on
        # the driver's own cursor, so tests counting a request's queries do not count this one.
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables "
                "WHERE schemaname = 'public' AND relname = ANY(%s)",
                [self.tables],
            )
            return self.signalled, cursor.fetchone()[0]


@pytest.fixture(autouse=True)
def investigators_read_a_fresh_release(request, monkeypatch):
    """Investigators read data releases, never live rows (issue 15). Most investigator tests write rows and
    then read them as an investigator: for them the latest release is frozen again whenever the registry
    changed since the last one, so they read what they wrote. Tests of releases themselves
    (``@pytest.mark.releases_by_hand``) freeze their own."""
    if request.node.get_closest_marker("releases_by_hand"):
        yield
        return
    from django.db.models import signals

    from api import releases as api_releases
    from reports import releases

    changes = _RegistryChanges()
    state = {"fingerprint": None, "release": None, "count": 0}

    def latest_release():
        fingerprint = changes.fingerprint()
        if state["release"] is None or fingerprint != state["fingerprint"]:
            state["count"] += 1
            state["release"] = releases.freeze_release(f"test-release-{state['count']}")
            state["fingerprint"] = changes.fingerprint()
        return releases.latest_release()

    for signal in (signals.post_save, signals.post_delete):
        signal.connect(changes.receive, weak=False, dispatch_uid="tests.releases")
    monkeypatch.setattr(api_releases, "latest_release", latest_release)
    try:
        yield
    finally:
        for signal in (signals.post_save, signals.post_delete):
            signal.disconnect(dispatch_uid="tests.releases")
