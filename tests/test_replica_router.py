"""A read replica (issue 17, item 5): investigators' reads and statistics on it, everything else on the primary.

The "replica" alias is the test database over a connection of its own (tests/settings.py, a test mirror):
like a real replica it sees committed rows only. Tests that read through it are transactional, so what
they write is there to be read; a non-transactional test's rows are invisible to it, as rows the primary
has committed but the replica has not replayed yet would be. Queries are captured per connection, so a
query counted on "replica" really went over the replica's connection.
"""

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api import pagination as api_pagination
from api import releases as api_releases
from api import stats as api_stats
from api.models import ExportLog
from registry import routers
from registry.models import Implantation
from reports import releases, snapshot
from reports.cohort import live_cohort
from reports.models import Release
from sites.models import Role

from . import factories
from .clients import client_for
from .factories import days_after

pytestmark = pytest.mark.releases_by_hand

ROOT = Path(__file__).resolve().parent.parent
BOTH = [DEFAULT_DB_ALIAS, routers.REPLICA]
ON_THE_REPLICA = pytest.mark.django_db(transaction=True, databases=BOTH)
BEHIND_THE_PRIMARY = pytest.mark.django_db(databases=BOTH)
IMPLANTATIONS = 10


@pytest.fixture(autouse=True)
def close_the_replica():
    yield
    # Its own session on the test database: closed, so nothing keeps a search_path and the database can be dropped.
    connections[routers.REPLICA].close()


@pytest.fixture
def routed(settings):
    """A replica configured, as DATABASE_REPLICA_URL configures it (the rest of the suite has no router)."""
    settings.DATABASE_ROUTERS = ["registry.routers.ReplicaRouter"]


@pytest.fixture
def registry(db):
    """Ten implantations at one centre, five of them treated; a data release of them; three roles."""
    centre = factories.CentreFactory(code="CENTRE-A")
    surgeon = factories.SurgeonFactory(centre=centre)
    rows = [
        factories.ImplantationFactory(patient__centre=centre, surgeon=surgeon, implanted_on=days_after(index))
        for index in range(IMPLANTATIONS)
    ]
    for implantation in rows[:5]:
        factories.TreatmentFactory(implantation=implantation, given_on=days_after(7, implantation.implanted_on))
    users = {
        "investigator": factories.user_with_role(Role.INVESTIGATOR, username="investigator"),
        "coordinator": factories.user_with_role(Role.COORDINATOR, username="coordinator"),
        "data manager": factories.user_with_role(Role.DATA_MANAGER, centre, username="dm"),
    }
    release = releases.freeze_release("2026-12")
    yield {"centre": centre, "rows": rows, "release": release, **users}
    releases.discard_all_releases()  # its schema is not one of the tables a transactional test flushes


class Captured:
    """The SQL each connection ran inside the block."""

    def __enter__(self):
        self._stack = ExitStack()
        self.by_alias = {alias: self._stack.enter_context(CaptureQueriesContext(connections[alias])) for alias in BOTH}
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    def sql(self, alias):
        return [query["sql"] for query in self.by_alias[alias].captured_queries]

    def reading(self, alias, table):
        """Its SELECTs of ``table``, a streamed export's server-side cursor (DECLARE … FOR SELECT) included."""
        return [sql for sql in self.sql(alias) if f'"{table}"' in sql and sql.startswith(("SELECT", "DECLARE"))]

    def asked_the_replica_only_whether_it_holds_the_release(self):
        """``api.releases.replica_holds``: one row by its key, on the replica."""
        return bool(self.sql(routers.REPLICA)) and all(
            'FROM "reports_release" WHERE "reports_release"."id" =' in sql for sql in self.sql(routers.REPLICA)
        )


class Recording:
    """A cache that remembers what was stored in it."""

    def __init__(self, cache):
        self.cache, self.stored = cache, {}

    def set(self, key, value, *args, **kwargs):
        self.stored[key] = value
        return self.cache.set(key, value, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.cache, name)


# --- The router ------------------------------------------------------------------------------------


def test_reads_go_to_the_replica_only_while_asked_for():
    router = routers.ReplicaRouter()
    assert router.db_for_read(Implantation) == DEFAULT_DB_ALIAS
    with routers.replica_reads():
        assert router.db_for_read(Implantation) == routers.REPLICA
        with routers.primary_reads():
            assert router.db_for_read(Implantation) == DEFAULT_DB_ALIAS
        assert router.db_for_read(Implantation) == routers.REPLICA
    assert router.db_for_read(Implantation) == DEFAULT_DB_ALIAS


def test_writes_and_migrations_stay_on_the_primary():
    router = routers.ReplicaRouter()
    with routers.replica_reads():
        assert router.db_for_write(Implantation) == DEFAULT_DB_ALIAS
    assert router.allow_migrate(DEFAULT_DB_ALIAS, "registry") is True
    assert router.allow_migrate(routers.REPLICA, "registry") is False
    assert router.allow_relation(Implantation(), Implantation()) is True


def test_without_the_router_nothing_reads_the_replica(settings):
    assert not routers.replica_configured()
    with routers.replica_reads():
        assert Implantation.objects.all().db == DEFAULT_DB_ALIAS
    settings.DATABASE_ROUTERS = ["registry.routers.ReplicaRouter"]
    assert routers.replica_configured()
    with routers.replica_reads():
        assert Implantation.objects.all().db == routers.REPLICA
        assert Implantation.objects.all().using(DEFAULT_DB_ALIAS).db == DEFAULT_DB_ALIAS


def settings_of(**environment):
    code = (
        "import json; from registry import settings as s; "
        "print(json.dumps({'aliases': sorted(s.DATABASES), 'routers': getattr(s, 'DATABASE_ROUTERS', None), "
        "'replica': s.DATABASES.get('replica'), 'default': s.DATABASES['default']}))"
    )
    kept = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DATABASE_REPLICA_URL", "DEBUG"}}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**kept, "DEBUG": "1", **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, (json.loads(done.stdout) if done.returncode == 0 else done.stderr)


def test_settings_add_the_replica_only_when_given_one():
    primary = "postgres://hai@db.example.org:5432/hai"
    _, alone = settings_of(DATABASE_URL=primary)
    assert alone["aliases"] == ["default"] and alone["routers"] is None

    _, both = settings_of(DATABASE_URL=primary, DATABASE_REPLICA_URL="postgres://hai@replica.example.org:5433/hai")
    assert both["aliases"] == ["default", "replica"]
    assert both["routers"] == ["registry.routers.ReplicaRouter"]
    replica, default = both["replica"], both["default"]
    assert (replica["HOST"], replica["PORT"]) == ("replica.example.org", 5433)
    assert replica["OPTIONS"] == default["OPTIONS"] and "-c jit=off" in replica["OPTIONS"]["options"]
    assert replica["CONN_MAX_AGE"] == default["CONN_MAX_AGE"]

    refused, error = settings_of(DATABASE_REPLICA_URL="postgres://hai@replica.example.org/hai")  # SQLite primary
    assert refused != 0 and "DATABASE_REPLICA_URL needs PostgreSQL" in error


# --- Investigators on the replica ------------------------------------------------------------------


@ON_THE_REPLICA
def test_an_investigators_list_record_and_statistics_are_read_on_the_replica(routed, registry):
    client = client_for(registry["investigator"])
    with Captured() as listed:
        page = client.get("/api/v1/implantations/")
    assert page.status_code == 200, page.content
    assert page.json()["count"] == IMPLANTATIONS
    code = page.json()["results"][0]["code"]
    with Captured() as one:
        record = client.get(f"/api/v1/implantations/{code}/")
    assert record.status_code == 200 and record.json()["code"] == code
    with Captured() as figures:
        stats = client.get("/api/v1/stats/pump-use/")
    assert stats.status_code == 200, stats.content
    assert stats.json()["groups"][0]["implantations"] == IMPLANTATIONS

    for captured in (listed, one, figures):
        assert captured.reading(routers.REPLICA, "registry_implantation")
        assert not captured.reading(DEFAULT_DB_ALIAS, "registry_implantation")
        # The release the answer is computed and cached under (the latest) is chosen on the primary.
        assert any('ORDER BY "reports_release"."cut" DESC' in sql for sql in captured.sql(DEFAULT_DB_ALIAS))
        assert not any('"reports_release"."cut" DESC' in sql for sql in captured.sql(routers.REPLICA))


@ON_THE_REPLICA
def test_the_replica_reads_the_release_not_the_live_rows(routed, registry):
    factories.ImplantationFactory(patient__centre=registry["centre"])  # committed after the release was frozen
    with Captured() as captured:
        page = client_for(registry["investigator"]).get("/api/v1/implantations/")
    assert captured.reading(routers.REPLICA, "registry_implantation")
    assert page.json()["count"] == IMPLANTATIONS


@ON_THE_REPLICA
def test_an_investigators_export_streams_from_the_replica_and_is_logged_on_the_primary(routed, registry):
    with Captured() as captured:
        response = client_for(registry["investigator"]).get("/api/v1/implantations/", {"format": "csv"})
        lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 1 + IMPLANTATIONS
    assert captured.reading(routers.REPLICA, "registry_implantation")
    assert not captured.reading(DEFAULT_DB_ALIAS, "registry_implantation")
    assert not any("api_exportlog" in sql for sql in captured.sql(routers.REPLICA))
    assert ExportLog.objects.get().row_count == IMPLANTATIONS


@ON_THE_REPLICA
@pytest.mark.parametrize("role", ["coordinator", "data manager"])
def test_every_other_role_reads_and_writes_the_primary(routed, registry, role):
    client = client_for(registry[role])
    with Captured() as captured:
        assert client.get("/api/v1/implantations/").json()["count"] == IMPLANTATIONS
        assert client.get("/api/v1/stats/pump-use/").status_code == 200
        implantation = registry["rows"][9]
        measured_on = days_after(3, implantation.implanted_on).isoformat()
        created = client.post(
            "/api/v1/liver-tests/",
            {"implantation": implantation.pk, "measured_on": measured_on, "ast_u_per_l": 41},
            format="json",
        )
    assert created.status_code == 201, created.content
    assert captured.sql(routers.REPLICA) == []
    assert any(sql.startswith('INSERT INTO "registry_livertest"') for sql in captured.sql(DEFAULT_DB_ALIAS))
    assert captured.reading(DEFAULT_DB_ALIAS, "registry_implantation")


@ON_THE_REPLICA
def test_a_replica_that_says_it_is_behind_is_not_read(routed, registry, monkeypatch):
    monkeypatch.setattr(api_releases, "replica_holds", lambda release: False)
    with Captured() as captured:
        page = client_for(registry["investigator"]).get("/api/v1/implantations/")
    assert page.json()["count"] == IMPLANTATIONS
    assert captured.sql(routers.REPLICA) == []
    assert captured.reading(DEFAULT_DB_ALIAS, "registry_implantation")


# --- A replica behind the primary ------------------------------------------------------------------


@BEHIND_THE_PRIMARY
def test_a_release_the_replica_has_not_replayed_is_read_and_cached_from_the_primary(routed, registry, monkeypatch):
    """The release is committed only in this test's transaction: the replica cannot see it yet. Read there,
    its name would reach PostgreSQL's search_path as a schema that does not exist, the replica's live tables
    would answer (here: no implantation at all), and their answer would be cached under the release."""
    caches = {module: Recording(cache) for module in (api_stats, api_pagination)}
    for module, recording in caches.items():
        monkeypatch.setattr(module, "cache", recording)
    client = client_for(registry["investigator"])
    with Captured() as captured:
        page = client.get("/api/v1/implantations/")
        stats = client.get("/api/v1/stats/pump-use/")
    assert page.json()["count"] == IMPLANTATIONS
    assert stats.json()["groups"][0]["implantations"] == IMPLANTATIONS
    assert captured.asked_the_replica_only_whether_it_holds_the_release()
    # What is cached under the release is the primary's answer.
    assert list(caches[api_pagination].stored.values()) == [IMPLANTATIONS]
    [body] = caches[api_stats].stored.values()
    assert json.loads(body)["groups"][0]["implantations"] == IMPLANTATIONS


@BEHIND_THE_PRIMARY
def test_a_replica_that_does_not_answer_leaves_the_primary_to_answer(routed, registry, monkeypatch):
    monkeypatch.setitem(connections[routers.REPLICA].settings_dict, "PORT", "1")  # nothing listens there
    connections[routers.REPLICA].close()
    page = client_for(registry["investigator"]).get("/api/v1/implantations/")
    assert page.status_code == 200 and page.json()["count"] == IMPLANTATIONS


@BEHIND_THE_PRIMARY
def test_the_live_cohort_and_report_snapshots_are_built_on_the_primary(routed, registry):
    with routers.replica_reads(), Captured() as captured:
        rows = live_cohort()
        snapshot.build(timezone.now())
    assert len(rows) == IMPLANTATIONS
    assert captured.sql(routers.REPLICA) == []
    assert captured.reading(DEFAULT_DB_ALIAS, "registry_implantation")


@BEHIND_THE_PRIMARY
def test_the_replica_is_not_asked_when_there_is_no_router(registry):
    with Captured() as captured:
        page = client_for(registry["investigator"]).get("/api/v1/implantations/")
    assert page.json()["count"] == IMPLANTATIONS
    assert captured.sql(routers.REPLICA) == []
    assert Release.objects.count() == 1
