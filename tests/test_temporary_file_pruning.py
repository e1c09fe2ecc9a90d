"""Temporary files are pruned nightly (issue 17, item 4: retention); what a row refers to never is."""

import datetime
import hashlib
import logging
import os
import time
import types

import pytest
from django.apps import apps
from django_celery_beat.models import PeriodicTask
from simple_history.models import HistoricalChanges

from api.models import ExportLog
from registry import services, tasks
from registry.import_storage import UploaderTemporaryStorage, uploads_of
from reports import releases
from reports import services as report_services
from reports.models import CentreReport, ReportRun
from sites.models import Role

from . import factories, report_world

PERIOD = datetime.date(2024, 6, 1)
NOTHING = {"import_uploads": 0, "unreferenced_media": 0}


def written_hours_ago(path, hours):
    moment = time.time() - hours * 3600
    os.utime(path, (moment, moment))
    return path


@pytest.fixture
def import_root(settings, tmp_path):
    settings.IMPORT_TEMPORARY_ROOT = tmp_path / "imports"
    settings.IMPORT_TEMPORARY_HOURS = 24
    return settings.IMPORT_TEMPORARY_ROOT


@pytest.fixture
def media(settings, tmp_path, print_stand_in):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ORPHAN_GRACE_HOURS = 48
    return settings.MEDIA_ROOT


def upload(uploader_id, hours_old):
    """An import file waiting for its confirmation, as the import admin keeps it."""
    with uploads_of(types.SimpleNamespace(pk=uploader_id)):
        storage = UploaderTemporaryStorage()
        storage.save(b"pseudonym,implanted_on\nHAI-0001,2024-05-02\n")
        return written_hours_ago(storage.folder() / storage.name, hours_old)


def media_file(media, name, hours_old, content=b"left by a render that died"):
    path = media / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return written_hours_ago(path, hours_old)


def test_an_import_upload_never_confirmed_is_deleted_after_its_hours_and_a_fresh_one_kept(db, import_root):
    old, fresh, other_uploaders = upload(7, hours_old=25), upload(7, hours_old=23), upload(8, hours_old=200)
    assert services.prune_temporary_files() == {"import_uploads": 2, "unreferenced_media": 0}
    assert not old.exists() and not other_uploaders.exists()
    assert fresh.exists()


def test_a_report_file_no_row_refers_to_is_deleted_once_past_the_grace(db, media):
    crashed = media_file(media, "reports/pdf/2024-06-RPT-9-run99.pdf", hours_old=49)
    snapshot = media_file(media, "reports/snapshots/run-99.json.gz", hours_old=49)
    in_progress = media_file(media, "reports/html/2024-06-RPT-9-run100.html", hours_old=47)
    # Not a folder the registry's file fields write into: not the pruning's to judge.
    elsewhere = media_file(media, "operator-notes/readme.txt", hours_old=10_000)

    assert services.prune_temporary_files() == {"import_uploads": 0, "unreferenced_media": 2}
    assert not crashed.exists() and not snapshot.exists()
    assert in_progress.exists() and elsewhere.exists()


def test_the_grace_is_never_shorter_than_the_longest_task(db, media, settings):
    settings.MEDIA_ORPHAN_GRACE_HOURS = 0
    settings.CELERY_TASK_TIME_LIMIT = 960
    rendering = media_file(media, "reports/pdf/2024-06-RPT-9-run100.pdf", hours_old=0.25)
    crashed = media_file(media, "reports/pdf/2024-06-RPT-9-run99.pdf", hours_old=1)
    assert services.prune_temporary_files() == {"import_uploads": 0, "unreferenced_media": 1}
    assert rendering.exists() and not crashed.exists()


def test_a_rendered_reports_files_and_its_runs_snapshot_are_kept_however_old(
    db, media, django_capture_on_commit_callbacks, caplog
):
    report_world.build(centres=1, per_centre=3)
    with django_capture_on_commit_callbacks(execute=True):
        report_services.start_run(PERIOD)
    report, run = CentreReport.objects.get(), ReportRun.objects.get()
    assert report.status == CentreReport.Status.RENDERED
    referenced = [report.pdf.path, report.html.path, report.email_pdf.path, run.snapshot.path]
    for path in referenced:
        written_hours_ago(path, 10_000)
    crashed = media_file(media, f"reports/pdf/{os.path.basename(report.pdf.name)}.crashed", hours_old=10_000)

    with caplog.at_level(logging.INFO, logger="registry.services"):
        assert tasks.prune_temporary_files.apply().get() == {"import_uploads": 0, "unreferenced_media": 1}
    assert all(os.path.exists(path) for path in referenced)
    assert not crashed.exists()
    assert hashlib.sha256(open(report.pdf.path, "rb").read()).hexdigest() == report.checksum
    # Counts only in the log: no file name (they name the centre and the month).
    (message,) = [record.getMessage() for record in caplog.records if record.name == "registry.services"]
    assert message == "Pruned temporary files: 0 import upload(s), 1 unreferenced media file(s)."


def test_every_file_field_is_consulted_history_models_included():
    consulted = {(model._meta.label, field.name) for model, field in services._file_fields()}
    assert {
        ("reports.ReportRun", "snapshot"),
        ("reports.CentreReport", "html"),
        ("reports.CentreReport", "pdf"),
        ("reports.CentreReport", "email_pdf"),
    } <= consulted
    every = {
        (model._meta.label, field.name)
        for model in apps.get_models(include_auto_created=True)
        for field in model._meta.concrete_fields
        if field.get_internal_type() == "FileField"
    }
    assert every == consulted
    assert services._media_folders() == ["reports/email", "reports/html", "reports/pdf", "reports/snapshots"]


def test_pruning_leaves_history_the_export_log_and_data_releases_alone(db, media, import_root):
    report_world.build(centres=1, per_centre=3)
    investigator = factories.user_with_role(Role.INVESTIGATOR, username="investigator-retention")
    ExportLog.objects.create(user=investigator, endpoint="/api/v1/implantations/", format="csv", row_count=3)
    ExportLog.objects.update(created_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    release = releases.freeze_release("retention-check")
    media_file(media, "reports/pdf/crashed.pdf", hours_old=10_000)
    history_models = [model for model in apps.get_models() if issubclass(model, HistoricalChanges)]
    before = {model._meta.label: model._base_manager.count() for model in history_models}
    assert sum(before.values()) > 0

    assert services.prune_temporary_files()["unreferenced_media"] == 1
    assert {model._meta.label: model._base_manager.count() for model in history_models} == before
    assert ExportLog.objects.count() == 1
    assert releases.verify(releases.latest_release()) and releases.latest_release() == release


def test_nothing_to_prune_is_nothing_deleted(db, media, import_root):
    assert services.prune_temporary_files() == NOTHING


def test_the_pruning_is_scheduled_nightly(db):
    task = PeriodicTask.objects.get(task="registry.tasks.prune_temporary_files")
    assert task.enabled and (task.crontab.hour, task.crontab.minute) == ("3", "40")
