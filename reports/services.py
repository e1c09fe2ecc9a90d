"""Report runs: start, snapshot, render, deliver. Every step is idempotent.

Celery tasks (``reports.tasks``) only pass ids to these functions. A task that
runs twice (a retry, or a redelivery after a worker died) finds the work done
and does nothing, so each centre's report is made once and emailed once.
"""

import calendar
import datetime
import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from sites import access
from sites.models import Centre

from . import snapshot
from .models import CentreReport, ReportRun

logger = logging.getLogger(__name__)

METHOD_VERSION = "2026.12-1"  # issue 8: fixed windows, competing risks, delayed entry, suppression


def parse_period(text):
    """'2026-10' -> date(2026, 10, 1); a clear error otherwise."""
    try:
        return datetime.datetime.strptime(text, "%Y-%m").date()
    except ValueError as error:
        raise ValueError(f"'{text}' is not a month; use YYYY-MM, e.g. 2026-10.") from error


def period_end(period):
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


def default_data_cut(period):
    """The cut is the first moment after the period, or now if that is still to come."""
    first_of_next = period_end(period) + datetime.timedelta(days=1)
    cut = timezone.make_aware(datetime.datetime.combine(first_of_next, datetime.time.min))
    return min(cut, timezone.now())


def previous_month(today=None):
    today = today or timezone.localdate()
    return (today.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)


@transaction.atomic
def start_scheduled_run(period):
    """The schedule's run of ``period``: created once, whatever number of times beat delivers the task.

    The partial unique constraint ``report_run_one_scheduled_per_period`` decides between
    two deliveries racing each other; the loser gets the winner's run and dispatches nothing.
    """
    existing = scheduled_run_of(period)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return start_run(period, scheduled=True), True
    except IntegrityError:
        return scheduled_run_of(period), False


def scheduled_run_of(period):
    return ReportRun.objects.filter(period=period, scheduled=True).first()


def start_run(period, *, centre_codes=None, data_cut=None, user=None, dispatch=True, background=False, scheduled=False):
    """Create a run and one report per active centre (or the named ones), then hand it to the workers.

    ``background=True`` (the admin) never makes the caller wait: with a broker
    that is always so, and when tasks run eagerly (no Redis) the run goes to a
    thread of this process once the run is committed (``tasks.dispatch_run``).
    Without it, eager runs happen in the caller, after the commit.
    """
    if period.day != 1:
        raise ValueError("A run's period is a month: give its first day.")
    centres = Centre.objects.filter(active=True)
    if centre_codes:
        centres = Centre.objects.filter(code__in=centre_codes)
        missing = set(centre_codes) - set(centres.values_list("code", flat=True))
        if missing:
            raise ValueError(f"No centre with code {', '.join(sorted(missing))}.")
    run = ReportRun.objects.create(
        period=period,
        data_cut=data_cut or default_data_cut(period),
        method_version=METHOD_VERSION,
        triggered_by=user,
        scheduled=scheduled,
    )
    CentreReport.objects.bulk_create([CentreReport(run=run, centre=centre) for centre in centres])
    if dispatch:
        from .tasks import dispatch_run

        transaction.on_commit(lambda: dispatch_run(run.pk, background=background))
    return run


@dataclass(frozen=True)
class RunProgress:
    """How far a run's centre reports are: counts of one query over their statuses."""

    total: int
    rendered: int
    sent: int
    no_recipients: int
    failed: int

    @property
    def done(self):
        """Reports with nothing left to do: sent, without recipients, or failed."""
        return self.sent + self.no_recipients + self.failed

    def __str__(self):
        reports = "centre report" if self.total == 1 else "centre reports"
        text = f"{self.total} {reports}: {self.rendered} rendered, {self.sent} sent, {self.failed} failed"
        if self.no_recipients:
            text += f", {self.no_recipients} without recipients"
        return text

    @property
    def short(self):
        """E.g. '3/8 rendered, 2/8 sent' (and the failed, and those without recipients, if any)."""
        text = f"{self.rendered}/{self.total} rendered, {self.sent}/{self.total} sent"
        if self.no_recipients:
            text += f", {self.no_recipients} without recipients"
        if self.failed:
            text += f", {self.failed} failed"
        return text


def progress_aggregates(prefix=""):
    """Conditional counts of centre reports, for ``aggregate()`` on reports or ``annotate()`` on runs (``prefix``)."""
    Status, Delivery = CentreReport.Status, CentreReport.Delivery
    return {
        "total": Count(f"{prefix}pk"),
        "rendered": Count(f"{prefix}pk", filter=Q(**{f"{prefix}status": Status.RENDERED})),
        "sent": Count(f"{prefix}pk", filter=Q(**{f"{prefix}delivery_state": Delivery.SENT})),
        "no_recipients": Count(f"{prefix}pk", filter=Q(**{f"{prefix}delivery_state": Delivery.NO_RECIPIENTS})),
        "failed": Count(f"{prefix}pk", filter=Q(**{f"{prefix}status": Status.FAILED})),
    }


def run_progress(run_id):
    """A run's progress, in one query."""
    return RunProgress(**CentreReport.objects.filter(run_id=run_id).aggregate(**progress_aggregates()))


def prepare_run(run_id):
    """Freeze the cohort (once) and mark the run running; returns the reports still to do."""
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().get(pk=run_id)
        if run.status == ReportRun.Status.PENDING:
            run.status = ReportRun.Status.RUNNING
            run.started_at = timezone.now()
        if not run.snapshot:
            run.snapshot.save(f"run-{run.pk}.json.gz", ContentFile(snapshot.build(run.data_cut)), save=False)
        if run.case_mix is None:
            # Fitted once per run on its frozen snapshot, and kept with it: a report is reproducible from the run.
            from .casemix import fit_case_mix

            with run.snapshot.open("rb") as handle:
                rows, types = snapshot.load(handle.read())
            run.case_mix = fit_case_mix(rows, types, run.data_cut) if rows else {}
        run.save()
    return list(unfinished_reports(run).values_list("pk", flat=True))


# A report neither delivered (or without recipients) nor given up on.
UNFINISHED = ~Q(delivery_state__in=[CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS]) & ~Q(
    status=CentreReport.Status.FAILED
)


def unfinished_reports(run):
    return run.centre_reports.filter(UNFINISHED)


def mark_dispatched(*, run_id=None, report_ids=()):
    """Note when a task was handed to the broker: the sweeper re-sends what stays unfinished long after."""
    now = timezone.now()
    if run_id is not None:
        ReportRun.objects.filter(pk=run_id).update(dispatched_at=now)
    if report_ids:
        CentreReport.objects.filter(pk__in=list(report_ids)).update(dispatched_at=now)


def work_to_send_again(now=None):
    """What the broker has lost: runs and reports whose task was sent long ago and is still not done.

    The database, not the broker, is the source of truth (issue 17, item 6): Redis
    keeps nothing on disk here, so a restart drops every queued and unacknowledged
    task. A task is sent again once REPORT_RESEND_AFTER_SECONDS have passed since it
    was last handed over or last started work — longer than the hard time limit of a
    task, so a render still in progress is never doubled. Sending again is harmless
    anyway: rendering and delivery are idempotent under row locks (``render_report``,
    ``deliver_report``). Returns ``(run ids, [(report id, run id)])`` and marks them
    sent now; ``reports.tasks.sweep_unfinished_runs`` hands them to the broker.
    """
    now = now or timezone.now()
    cutoff = now - datetime.timedelta(seconds=settings.REPORT_RESEND_AFTER_SECONDS)
    runs, reports = [], []
    with transaction.atomic():
        # skip_locked: a run being prepared or finished right now is looked at by the next sweep.
        for run in ReportRun.objects.select_for_update(skip_locked=True).filter(finished_at__isnull=True):
            last_sent = run.dispatched_at or run.created_at
            if run.status == ReportRun.Status.PENDING:
                if last_sent < cutoff:  # the fan-out task never ran
                    runs.append(run.pk)
                continue
            stale = unfinished_reports(run).filter(
                Q(dispatched_at__lt=cutoff) | Q(dispatched_at__isnull=True, run__started_at__lt=cutoff)
            )
            reports += [(report_id, run.pk) for report_id in stale.values_list("pk", flat=True)]
        ReportRun.objects.filter(pk__in=runs).update(dispatched_at=now)
        CentreReport.objects.filter(pk__in=[report_id for report_id, _ in reports]).update(dispatched_at=now)
    finishable = ReportRun.objects.filter(finished_at__isnull=True, status=ReportRun.Status.RUNNING).exclude(
        pk__in=CentreReport.objects.filter(UNFINISHED).values("run_id")
    )
    for run_id in finishable.values_list("pk", flat=True):
        # Every report done but the closing step lost with the broker.
        finish_run_if_done(run_id)
    if runs or reports:
        logger.warning(
            "Sent again after the broker lost them: %d run(s), %d centre report(s).", len(runs), len(reports)
        )
    return runs, reports


_snapshot_cache = {}


def _load_snapshot(run):
    """Each worker reads a run's snapshot once, not once per centre."""
    key = (run.pk, run.snapshot.name)
    if key not in _snapshot_cache:
        _snapshot_cache.clear()
        with run.snapshot.open("rb") as handle:
            _snapshot_cache[key] = snapshot.load(handle.read())
    return _snapshot_cache[key]


def render_report(report_id):
    """Render one centre's report, unless already done: the stored copy (HTML, PDF) and the emailed copy (PDF).

    The figures come from the run's snapshot; the "Cases to review" lists
    (``reports.selectors.cases_to_review``) name patients by pseudonym, which the
    snapshot does not hold, so they are read from the live record as of the cut
    and kept in the stored context under ``cases_to_review``. The stored copy,
    downloaded after login through the API, shows them; the emailed copy is
    rendered from the same context with ``for_email=True`` and without the
    ``cases_to_review`` key, so it carries no pseudonym (``render_email_html``; ``render_copies`` draws
    the charts once for both).
    """
    from .rendering import build_report_context, render_copies, render_pdf

    report = CentreReport.objects.select_related("run", "centre").get(pk=report_id)
    if report.status == CentreReport.Status.RENDERED:
        return report
    run = report.run
    rows, complication_types = _load_snapshot(run)
    started = time.monotonic()
    numbers = build_report_context(
        rows,
        centre_code=report.centre.code,
        period_start=run.period,
        period_end=period_end(run.period),
        data_cut=run.data_cut,
        complication_types=complication_types,
        method_version=run.method_version,
        case_mix=run.case_mix or None,  # None (a run frozen before the model existed): fitted on the snapshot
        previous=_previous_numbers(report),
        extra={"late_entries": _late_entries(report), **completeness_extras(report.centre, run.data_cut)},
    )
    alarms = [
        {"measure": c["key"], "level": "alarm", "surgeon": None}
        for c in numbers["case_mix"]["comparisons"]
        if c["level"] == "alarm"
    ] + [
        {"measure": c["key"], "level": "alarm", "surgeon": s["group"]}
        for c in numbers["case_mix"]["comparisons"]
        for s in c["surgeons"]
        if s["level"] == "alarm"
    ]
    if alarms:
        # An alarm opens the outlier process (query, answer, sign-off), as the UK national audits do.
        open_reviews_for_alarms(run, report.centre, alarms)
    numbers["cases_to_review"] = _cases_to_review(report, numbers.pop(ALARM_IMPLANTATIONS_KEY, None) or ())
    html, email_html = render_copies(numbers, stored_url=stored_report_url(report))
    pdf = render_pdf(html)
    # Without the section in the template the two copies are the same page: print it once.
    email_pdf = pdf if email_html == html else render_pdf(email_html)
    name = f"{run.period:%Y-%m}-{report.centre.code}-run{run.pk}"
    with transaction.atomic():
        report = CentreReport.objects.select_for_update().get(pk=report_id)
        if report.status == CentreReport.Status.RENDERED:
            return report  # another delivery of this task got here first
        report.html.save(f"{name}.html", ContentFile(html.encode()), save=False)
        report.pdf.save(f"{name}.pdf", ContentFile(pdf), save=False)
        report.email_pdf.save(f"{name}-email.pdf", ContentFile(email_pdf), save=False)
        report.checksum = hashlib.sha256(pdf).hexdigest()
        report.numbers = numbers
        report.status = CentreReport.Status.RENDERED
        report.render_seconds = time.monotonic() - started
        report.rendered_at = timezone.now()
        report.save()
    return report


# The renderer's context carries, under this key, the centre's implantations behind each alarm or warning:
# [{"measure": code, "label": outcome label, "implantations": [ids] or {id: outcome date}}].
# render_report resolves them to pseudonyms (the "alarm:<measure>" tables of cases_to_review) and drops the ids.
ALARM_IMPLANTATIONS_KEY = "alarm_implantations"


def _previous_numbers(report):
    """The context of the centre's latest rendered report of an earlier month (signals new or continuing)."""
    return (
        CentreReport.objects.filter(
            centre_id=report.centre_id, status=CentreReport.Status.RENDERED, run__period__lt=report.run.period
        )
        .order_by("-run__period", "-run__data_cut", "-pk")
        .values_list("numbers", flat=True)
        .first()
    )


def _late_entries(report):
    """Implantations of the centre entered after the previous run's data cut but dated before it:
    they missed that report and are included now."""
    from registry.models import Implantation

    run = report.run
    previous = (
        ReportRun.objects.filter(data_cut__lt=run.data_cut, status=ReportRun.Status.COMPLETED)
        .order_by("-data_cut")
        .values_list("data_cut", flat=True)
        .first()
    )
    if previous is None:
        return None
    count = Implantation.objects.filter(
        patient__centre=report.centre,
        created_at__gt=previous,
        created_at__lte=run.data_cut,
        implanted_on__lte=timezone.localtime(previous).date(),
    ).count()
    return {"count": count, "since": timezone.localtime(previous).strftime("%Y-%m-%d %H:%M")}


def completeness_extras(centre, data_cut):
    """What the report reads from the live tables as of the data cut, not from the snapshot: for the
    completeness section, the centre's data queries not closed, by rule, and its data items recorded, known
    missing and missing; and the readmission and reoperation rates (the snapshot has no readmissions)."""
    from registry.data_quality import open_query_counts

    from .data_items import data_item_counts
    from .selectors import readmission_figures

    return {
        "data_queries": open_query_counts(centre, as_of=data_cut),
        "data_items": data_item_counts(centre, data_cut=data_cut),
        "readmissions": readmission_figures(centre, data_cut=data_cut),
    }


def _cases_to_review(report, alarms):
    from .selectors import cases_to_review

    run = report.run
    return cases_to_review(
        report.centre, period_start=run.period, period_end=period_end(run.period), data_cut=run.data_cut, alarms=alarms
    )


def render_stored_html(context):
    """The stored copy: the whole context, ``for_email`` false (the template shows "Cases to review")."""
    from .rendering import render_html

    return render_html(dict(context, for_email=False))


def render_email_html(context, stored_url=None):
    """The emailed copy: ``for_email`` true and no ``cases_to_review`` key, so no pseudonym can reach the page;
    ``stored_report_url`` tells the reader where the stored copy, with the section, is downloaded."""
    from .rendering import render_html

    context = {key: value for key, value in context.items() if key != "cases_to_review"}
    return render_html(dict(context, for_email=True, stored_report_url=stored_url))


def stored_report_url(report):
    """Where the stored copy is downloaded after login (the API's scoped download, never /media/).

    Absolute when the site's address is known: ``settings.SITE_URL`` if set, else the
    first of ``CSRF_TRUSTED_ORIGINS`` (the origin users log in at); otherwise the path.
    """
    from django.urls import reverse

    path = reverse("api:report-pdf", args=[report.pk])
    origins = getattr(settings, "CSRF_TRUSTED_ORIGINS", None) or [""]
    base = getattr(settings, "SITE_URL", "") or origins[0]
    return f"{base.rstrip('/')}{path}"


def _email_attachment(report):
    """The PDF to email: the emailed copy. A report rendered before there were two copies has no
    "Cases to review" in its stored PDF either, so that one is sent; any other without an emailed
    copy is refused rather than sent with pseudonyms."""
    if report.email_pdf:
        return report.email_pdf
    if report.numbers is not None and "cases_to_review" not in report.numbers:
        return report.pdf
    raise RuntimeError(f"Report {report.pk} has no emailed copy; render it again.")


def _message(report, recipients):
    run = report.run
    month = f"{run.period:%B %Y}"
    with _email_attachment(report).open("rb") as handle:
        attachment = handle.read()
    message = EmailMessage(
        subject=f"HAI Registry benchmark report - {report.centre.code} - {month}",
        body=(
            f"Attached is the HAI Registry benchmark report for {report.centre.name} ({report.centre.code}), {month}.\n\n"
            f"Data cut: {run.data_cut:%Y-%m-%d %H:%M %Z}. Method version {run.method_version}.\n"
            f"Other centres appear under anonymous codes; small counts are suppressed.\n\n"
            f"The cases to review (by pseudonym) are not in this email. They are in the full report,\n"
            f"for your centre's users only, downloaded after login at:\n"
            f"{stored_report_url(report)}\n\n"
            f"SHA-256 of the attached PDF: {hashlib.sha256(attachment).hexdigest()}\n"
            f"SHA-256 of the full report: {report.checksum}\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        # The same report always carries the same Message-ID, so a mail system can drop a duplicate.
        headers={"Message-ID": f"<hai-report-{report.pk}-{report.checksum[:16]}@hai-registry>"},
    )
    message.attach(f"hai-benchmark-{report.centre.code}-{run.period:%Y-%m}.pdf", attachment, "application/pdf")
    return message


def deliver_report(report_id):
    """Email the emailed copy (no "Cases to review", a link to the stored copy) to the centre's recipients, once.

    The report's row stays locked from the check through the SMTP exchange to
    the "sent" mark, all in one transaction: a second delivery of the task
    waits for the lock and then finds the report sent. If the worker dies
    before the commit, the transaction rolls back and the redelivered task
    sends; only a death after the mail server accepted the message and before
    the commit could send twice, and then both copies carry the same
    Message-ID so the mail system can drop one.
    """
    with transaction.atomic():
        report = CentreReport.objects.select_for_update().select_related("run", "centre").get(pk=report_id)
        if report.delivery_state in (CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS):
            return report
        if report.status != CentreReport.Status.RENDERED:
            raise RuntimeError(f"Report {report_id} is not rendered yet.")
        recipients = sorted(report.centre.report_recipients.values_list("email", flat=True))
        if not recipients:
            report.delivery_state = CentreReport.Delivery.NO_RECIPIENTS
            report.save(update_fields=["delivery_state"])
            return report
        _message(report, recipients).send()
        report.delivery_state = CentreReport.Delivery.SENT
        report.recipients = recipients
        report.attempts += 1
        report.sent_at = timezone.now()
        report.error = ""
        report.save(update_fields=["delivery_state", "recipients", "attempts", "sent_at", "error"])
    return report


def record_failed_attempt(report_id, error):
    """A transient failure (SMTP down): count it, keep the report pending for the retry (sent to the broker now)."""
    CentreReport.objects.filter(pk=report_id).update(
        attempts=F("attempts") + 1, error=str(error)[:2000], dispatched_at=timezone.now()
    )


def mark_failed(report_id, error):
    CentreReport.objects.filter(pk=report_id).exclude(delivery_state=CentreReport.Delivery.SENT).update(
        status=CentreReport.Status.FAILED, delivery_state=CentreReport.Delivery.FAILED, error=str(error)[:2000]
    )
    logger.error("Centre report %s failed: %s", report_id, error)


def finish_run_if_done(run_id):
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().get(pk=run_id)
        if run.finished_at:
            return run
        states = list(run.centre_reports.values_list("status", "delivery_state"))
        done = all(
            status == CentreReport.Status.FAILED
            or delivery in (CentreReport.Delivery.SENT, CentreReport.Delivery.NO_RECIPIENTS)
            for status, delivery in states
        )
        if done:
            failed = any(status == CentreReport.Status.FAILED for status, _ in states)
            run.status = ReportRun.Status.FAILED if failed else ReportRun.Status.COMPLETED
            run.started_at = run.started_at or timezone.now()
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "started_at", "finished_at"])
    return run


# --- Outlier reviews (HQIP / National Vascular Registry outlier process) ---------------------
#
# open -> answered -> signed_off. The run opens one review per alarm; the coordinator may
# put a query to the centre while it is open; the centre's data manager or lead answers
# (and may revise the answer until sign-off); the coordinator signs off an answered review.
# Who may do what is decided in sites.access; a refusal is PermissionDenied (403 through the
# API), a step the review's state does not allow, or an empty text, a ValidationError (400).


def _resolve_surgeon(surgeon, centre):
    from sites.models import Surgeon

    if surgeon is None or surgeon == "":
        return None
    if isinstance(surgeon, Surgeon):
        found = surgeon
    else:
        lookup = {"code": surgeon} if isinstance(surgeon, str) else {"pk": surgeon}
        found = Surgeon.objects.filter(**lookup).first()
        if found is None:
            raise ValidationError({"surgeon": f"No surgeon {surgeon}."})
    if found.centre_id != centre.pk:
        raise ValidationError({"surgeon": f"Surgeon {found.code} belongs to another centre than {centre.code}."})
    return found


def open_reviews_for_alarms(run, centre, alarms, *, user=None):
    """One open review per alarm of ``centre`` in ``run``; idempotent (an existing review is kept as it is).

    ``alarms``: an iterable of ``{"measure": code, "level": "alarm" | "warning" (default
    "alarm"), "surgeon": a Surgeon, its id or code, or None for the centre}``. Returns the
    reviews, in the order of ``alarms``. ``user``: who opened them (None: the run).
    """
    from .models import OutlierReview

    levels = set(OutlierReview.Level.values)
    wanted = []
    for alarm in alarms:
        measure = (alarm.get("measure") or "").strip()
        level = alarm.get("level") or OutlierReview.Level.ALARM
        if not measure:
            raise ValidationError({"measure": "An alarm names its measure, e.g. 'technical_90'."})
        if level not in levels:
            raise ValidationError({"level": f"'{level}' is not a level; use {' or '.join(sorted(levels))}."})
        wanted.append((measure, level, _resolve_surgeon(alarm.get("surgeon"), centre)))
    if wanted and not run.centre_reports.filter(centre=centre).exists():
        raise ValidationError({"centre": f"{centre.code} has no report in run {run.pk}."})
    reviews = []
    for measure, level, surgeon in wanted:
        with transaction.atomic():
            review, _created = OutlierReview.objects.get_or_create(
                run=run,
                centre=centre,
                measure=measure,
                surgeon=surgeon,
                defaults={"level": level, "opened_by": user},
            )
        reviews.append(review)
    return reviews


def _locked(review):
    from .models import OutlierReview

    return OutlierReview.objects.select_for_update().select_related("centre").get(pk=review.pk)


def _text(value, field, what):
    text = (value or "").strip()
    if not text:
        raise ValidationError({field: f"Write the {what}."})
    return text


def check_query(review, user, text):
    """Why ``user`` may not put ``text`` as the coordinator's query on ``review`` (raises), else the text."""
    if not access.can_sign_off_outlier_review(user):
        raise PermissionDenied("Only the registry coordinator puts queries to a centre.")
    if review.status != review.Status.OPEN:
        raise ValidationError(
            {"query": f"This review is {review.get_status_display().lower()}; a query goes on an open one."}
        )
    return _text(text, "query", "query to the centre")


def check_answer(review, user, text):
    """Why ``user`` may not answer ``review`` with ``text`` (raises), else the text."""
    if not access.can_answer_outlier_review(user, review.centre_id):
        raise PermissionDenied(f"Only a data manager or lead of {review.centre.code} answers its reviews.")
    if review.status == review.Status.SIGNED_OFF:
        raise ValidationError({"answer": "This review is signed off; its answer can no longer change."})
    return _text(text, "answer", "centre's answer")


def check_sign_off(review, user):
    """Why ``user`` may not sign ``review`` off (raises)."""
    if not access.can_sign_off_outlier_review(user):
        raise PermissionDenied("Only the registry coordinator signs off an outlier review.")
    if review.status == review.Status.SIGNED_OFF:
        raise ValidationError({"status": "This review is already signed off."})
    if review.status != review.Status.ANSWERED:
        raise ValidationError({"status": "The centre has not answered yet; a review is signed off after its answer."})


def _save_step(review, user, fields):
    review._history_user = user  # the audit trail's "who", also outside a request
    review.save(update_fields=fields)
    return review


@transaction.atomic
def set_review_query(review, user, text):
    """The coordinator's query to the centre, on an open review (may be revised while it stays open)."""
    review = _locked(review)
    review.query = check_query(review, user, text)
    review.queried_by, review.queried_at = user, timezone.now()
    return _save_step(review, user, ["query", "queried_by", "queried_at"])


@transaction.atomic
def answer_review(review, user, text):
    """The centre's answer (its data manager or lead); open -> answered, or a revised answer before sign-off."""
    review = _locked(review)
    review.answer = check_answer(review, user, text)
    review.answered_by, review.answered_at = user, timezone.now()
    review.status = review.Status.ANSWERED
    return _save_step(review, user, ["answer", "answered_by", "answered_at", "status"])


@transaction.atomic
def sign_off_review(review, user):
    """The coordinator signs off an answered review: answered -> signed_off."""
    review = _locked(review)
    check_sign_off(review, user)
    review.signed_off_by, review.signed_off_at = user, timezone.now()
    review.status = review.Status.SIGNED_OFF
    return _save_step(review, user, ["signed_off_by", "signed_off_at", "status"])
