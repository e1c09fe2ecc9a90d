"""Backups that restore (issue 17, item 3): a seeded registry backed up, restored into a fresh database, compared.

Transactional: pg_dump reads committed rows only, from a connection of its own. The restores go into
databases created for the test (``hai_backup_t_restore_<random>``) and dropped after it.
"""

import datetime
import hashlib
import io
import json
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from psycopg import sql

from registry import backups
from reports import releases, services
from reports.models import CentreReport, ReportRun

from . import report_world

PERIOD = datetime.date(2024, 6, 1)
HISTORY_TABLES = (
    "public.registry_historicalpatient",
    "public.registry_historicalimplantation",
    "public.registry_historicaltreatment",
    "public.registry_historicalfollowup",
    "public.sites_historicalcentre",
    "public.sites_historicalsurgeon",
)


def connect(dbname, **kwargs):
    parameters = backups.database_parameters(dbname)
    return psycopg.connect(**{key: value for key, value in parameters.items() if value}, **kwargs)


def counts_in(dbname):
    with connect(dbname) as connection, connection.cursor() as cursor:
        return backups.row_counts(cursor)


def tables_in(dbname):
    with connect(dbname) as connection, connection.cursor() as cursor:
        return backups.user_tables(cursor)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fresh_database():
    """An empty database on the test server, dropped afterwards whatever happens."""
    name = f"hai_backup_t_restore_{uuid.uuid4().hex[:12]}"
    with connect("postgres", autocommit=True) as server:
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with connect("postgres", autocommit=True) as server:
            server.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def registry(settings, tmp_path):
    """Two centres with history, one rendered report (its run snapshot and files) and a data release."""
    settings.MEDIA_ROOT = tmp_path / "media"
    report_world.build(centres=2, per_centre=4)
    services.start_run(PERIOD, centre_codes=["RPT-1"])  # autocommit: the eager tasks run at once
    report = CentreReport.objects.get()
    assert report.status == CentreReport.Status.RENDERED and report.pdf and report.checksum
    releases.freeze_release("before-backup")
    yield report
    # Outside the tables the test's teardown empties: the release's schema stays unless dropped.
    releases.discard_all_releases()


def back_up(tmp_path):
    out = io.StringIO()
    call_command("backup_registry", "--output-dir", str(tmp_path / "backups"), stdout=out)
    return Path(out.getvalue().splitlines()[-1])


def restore(folder, database, *extra):
    call_command("restore_registry", str(folder), "--database-name", database, *extra, stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_a_backup_restores_every_row_history_and_report_into_a_fresh_database(
    registry, settings, tmp_path, fresh_database
):
    source = backups.database_parameters()["dbname"]
    folder = back_up(tmp_path)
    manifest = json.loads((folder / backups.MANIFEST).read_text())
    expected = counts_in(source)
    assert manifest["row_counts"] == expected
    assert manifest["migrations"]["registry"] and manifest["database"]["sha256"] == sha256(folder / backups.DUMP)
    assert set(manifest["media"]) == {registry.pdf.name, registry.html.name, registry.email_pdf.name} | {
        ReportRun.objects.get().snapshot.name
    }
    release_tables = [table for table in expected if table.startswith("release_")]
    # The data release's own schema is in the backup with the live tables.
    assert [expected[table] for table in release_tables if table.endswith(".registry_implantation")] == [8]

    settings.MEDIA_ROOT = restored_media = tmp_path / "restored-media"
    restore(folder, fresh_database)

    restored = counts_in(fresh_database)
    assert restored == expected
    history = {table: rows for table, rows in restored.items() if "_historical" in table}
    for table in HISTORY_TABLES:
        assert history[table] == expected[table] > 0, table
    assert expected["public.registry_implantation"] == 8 and expected["public.reports_centrereport"] == 1

    with connect(fresh_database) as connection:
        ((pdf, html, email_pdf, checksum),) = connection.execute(
            "SELECT pdf, html, email_pdf, checksum FROM reports_centrereport WHERE status = 'rendered'"
        ).fetchall()
        ((snapshot,),) = connection.execute("SELECT snapshot FROM reports_reportrun").fetchall()
    restored_pdf = restored_media / pdf
    assert restored_pdf.read_bytes().startswith(b"%PDF")
    assert sha256(restored_pdf) == checksum == registry.checksum
    for name in (html, email_pdf, snapshot):
        assert sha256(restored_media / name) == sha256(tmp_path / "media" / name)

    # Restored once, the database is no longer empty: a second restore is refused unless forced.
    with pytest.raises(CommandError, match="not empty"):
        restore(folder, fresh_database)
    with connect(fresh_database) as connection:
        connection.execute("CREATE TABLE public.left_over (id int)")
    restore(folder, fresh_database, "--force")
    assert counts_in(fresh_database) == expected  # the forced restore dropped what the backup does not hold


@pytest.fixture
def stand_in_registry(settings, tmp_path, print_stand_in):
    """A report printed by the stand-in: enough for the checks that refuse a restore."""
    settings.MEDIA_ROOT = tmp_path / "media"
    report_world.build(centres=1, per_centre=3)
    services.start_run(PERIOD)
    return CentreReport.objects.get()


@pytest.mark.django_db(transaction=True)
def test_a_changed_media_file_refuses_the_restore_before_anything_is_restored(
    stand_in_registry, settings, tmp_path, fresh_database
):
    folder = back_up(tmp_path)
    tampered = folder / backups.MEDIA / stand_in_registry.pdf.name
    tampered.write_bytes(tampered.read_bytes() + b"% changed\n")
    settings.MEDIA_ROOT = restored_media = tmp_path / "restored-media"

    with pytest.raises(CommandError, match="checksum differs") as refusal:
        restore(folder, fresh_database)
    assert stand_in_registry.pdf.name in str(refusal.value)
    assert tables_in(fresh_database) == [] and not restored_media.exists()


@pytest.mark.django_db(transaction=True)
def test_a_restore_that_does_not_match_the_manifest_fails_loudly(stand_in_registry, settings, tmp_path, fresh_database):
    folder = back_up(tmp_path)
    manifest_path = folder / backups.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["row_counts"]["public.registry_implantation"] += 1
    del manifest["row_counts"]["public.registry_followup"]
    manifest_path.write_text(json.dumps(manifest))
    settings.MEDIA_ROOT = tmp_path / "restored-media"

    with pytest.raises(CommandError, match="does not match the backup's manifest") as mismatch:
        restore(folder, fresh_database)
    assert "public.registry_implantation: 3 rows restored, 4 in the backup" in str(mismatch.value)
    assert "public.registry_followup: restored, but not in the backup" in str(mismatch.value)


@pytest.mark.django_db(transaction=True)
def test_a_non_empty_media_folder_is_refused_without_force(stand_in_registry, settings, tmp_path, fresh_database):
    folder = back_up(tmp_path)
    settings.MEDIA_ROOT = restored_media = tmp_path / "restored-media"
    (restored_media / "reports").mkdir(parents=True)
    (restored_media / "reports" / "kept.txt").write_text("an earlier file")

    with pytest.raises(CommandError, match="not empty"):
        restore(folder, fresh_database)
    assert tables_in(fresh_database) == []


def test_the_password_reaches_pg_dump_in_its_environment_never_on_its_command_line(monkeypatch):
    calls = []

    def run(command, env, **kwargs):
        calls.append((command, env))
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(backups.subprocess, "run", run)
    parameters = {"host": "db.example.org", "port": "5432", "user": "hai", "password": "s3cret-pw", "dbname": "hai"}
    backups._run_client(["pg_dump", "--format=custom", *backups._client_arguments(parameters)], parameters)
    ((command, env),) = calls
    assert not any("s3cret-pw" in argument for argument in command)
    assert env["PGPASSWORD"] == "s3cret-pw"
    assert "--host=db.example.org" in command and "--dbname=hai" in command
