"""A run fits the case-mix model once and keeps it; an alarm in a centre's report opens its outlier review."""

import datetime

import pytest
from django.utils import timezone

from registry.models import ComplicationType
from reports import services
from reports.models import OutlierReview, ReportRun

from . import factories

PERIOD = datetime.date(2024, 6, 1)


@pytest.fixture
def registry(db, settings, tmp_path, print_stand_in):
    settings.MEDIA_ROOT = tmp_path
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    start = datetime.date(2023, 1, 1)
    centres = []
    for code, events in (("ALARM", 36), ("CALM", 0)):
        centre = factories.CentreFactory(code=code)
        factories.ReportRecipientFactory(centre=centre)
        surgeon = factories.SurgeonFactory(centre=centre)
        for i in range(40):
            implanted = factories.ImplantationFactory(
                patient__centre=centre,
                surgeon=surgeon,
                implanted_on=start + datetime.timedelta(days=i),
                indication="adjuvant",
            )
            factories.FollowUpFactory(
                implantation=implanted, contact_on=implanted.implanted_on + datetime.timedelta(days=300)
            )
            if i < events:
                factories.ComplicationFactory(
                    implantation=implanted,
                    type=occlusion,
                    onset_on=implanted.implanted_on + datetime.timedelta(days=20),
                )
        centres.append(centre)
    return centres


def test_the_model_is_kept_with_the_run_and_an_alarm_opens_a_review(registry, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_run(PERIOD, data_cut=timezone.now())
    run = ReportRun.objects.get(pk=run.pk)
    model = run.case_mix["technical_90d"]
    assert (model["n"], model["events"]) == (80, 36)
    alarm, calm = (run.centre_reports.get(centre=c) for c in registry)
    comparison = next(c for c in alarm.numbers["case_mix"]["comparisons"] if c["key"] == "technical_90d")
    assert comparison["level"] == "alarm"  # 36 observed against 18 expected
    reviews = OutlierReview.objects.filter(run=run)
    # The centre, and its one surgeon (whose own comparison is the same cases), each get a review.
    assert sorted((r.centre.code, r.measure, r.level, r.status, r.surgeon_id is not None) for r in reviews) == [
        ("ALARM", "technical_90d", "alarm", "open", False),
        ("ALARM", "technical_90d", "alarm", "open", True),
    ]
    assert "technical_90d" in {t["key"].removeprefix("alarm:") for t in alarm.numbers["cases_to_review"]}
    # Rendering again (a re-delivered task) opens nothing twice.
    services.open_reviews_for_alarms(
        run, alarm.centre, [{"measure": "technical_90d", "level": "alarm", "surgeon": None}]
    )
    assert OutlierReview.objects.filter(run=run).count() == 2
    assert calm.numbers["case_mix"]["comparisons"][0]["level"] is None
