"""Late entries (issue 13): a record dated in (or before) a month whose report already ran misses that report.

A monthly run reads the cohort as of its data cut (``reports.cohort``, ``reports.snapshot``): a row entered
after the cut, or a change made after it, is in no report until the next run. ``late_entry_notice`` says
so, for the admin to show after a save (``registry.admin``), instead of the case missing the report
without a word.
"""

import calendar
import datetime

from django.utils import timezone

from .models import ReportRun

# The date that places a record in a month, for the records that do not name it in ``date_field``.
DATE_FIELDS = {"implantation": "implanted_on", "systemictherapyline": "started_on"}
NOT_YET_RAN = (ReportRun.Status.PENDING,)


def record_date(record):
    """``(field name, date)`` of the record's event, or ``(None, None)`` for a record with no such date."""
    name = getattr(record, "date_field", None) or DATE_FIELDS.get(record._meta.model_name)
    if name is None:
        return None, None
    return name, getattr(record, name, None)


def _label(record):
    return str(getattr(record, "event_label", None) or record._meta.verbose_name)


def _month(day):
    return f"{calendar.month_name[day.month]} {day.year}"


def last_run_covering(day, *, now=None):
    """The newest monthly run that already ran (its data cut passed) over a period ending on or after ``day``."""
    now = now or timezone.now()
    return (
        ReportRun.objects.filter(period__gte=day.replace(day=1), data_cut__lte=now)
        .exclude(status__in=NOT_YET_RAN)
        .order_by("-period", "-data_cut", "-pk")
        .first()
    )


def late_entry_notice(record, *, now=None):
    """A sentence for the user when ``record`` is dated in or before a period whose report already ran, or None."""
    _name, day = record_date(record)
    if not isinstance(day, datetime.date):
        return None
    run = last_run_covering(day, now=now)
    if run is None:
        return None
    cut = run.data_cut.astimezone(datetime.UTC)
    where = "in" if (day.year, day.month) == (run.period.year, run.period.month) else "before"
    return (
        f"This {_label(record)} is dated {day.isoformat()}, {where} {_month(run.period)}, whose report already ran "
        f"(data cut {cut:%Y-%m-%d %H:%M} UTC). It will appear in the next monthly report."
    )
