"""Report tasks have time limits and workers are recycled (issue 11): a stuck render cannot hold a worker."""

import datetime
from unittest import mock

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from registry.celery import app
from reports import services, tasks
from reports.models import CentreReport

from . import report_world

PERIOD = datetime.date(2024, 6, 1)


def test_tasks_are_limited_below_the_brokers_redelivery_and_workers_recycle():
    conf = app.conf
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    # Redis hands an unacknowledged task to another worker after the visibility timeout: a task still within
    # its hard limit must never be running twice.
    assert conf.task_time_limit < settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert conf.worker_max_tasks_per_child > 0 and conf.worker_max_memory_per_child > 0


def test_a_report_past_its_soft_limit_is_marked_failed(db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    report_world.build()
    run = services.start_run(PERIOD, dispatch=False)
    report_ids = services.prepare_run(run.pk)
    with mock.patch.object(services, "render_report", side_effect=SoftTimeLimitExceeded()):
        with pytest.raises(SoftTimeLimitExceeded):
            tasks.produce_centre_report.apply(args=(report_ids[0], run.pk), throw=True)
    report = CentreReport.objects.get(pk=report_ids[0])
    assert report.status == CentreReport.Status.FAILED
    assert "SoftTimeLimitExceeded" in report.error
