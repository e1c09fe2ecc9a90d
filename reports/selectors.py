"""Reads for the report that need the live record: the cases a centre should review, by pseudonym.

The benchmark figures come from the run's frozen snapshot, which holds no
pseudonym. The "Cases to review" lists name patients, so they are read from the
database when the report is rendered, for one centre's own eyes only; the
emailed copy of the report leaves them out (``reports.services.render_report``).

Each selector takes a *scope* and the data cut and returns plain dicts, every one
with ``implantation_id``, ``centre_code``, ``pseudonym``, ``implanted_on`` and
``reason`` (a sentence for the reader), plus the fields of its list. The scope is

* a ``sites.Centre`` (one centre's cases), or
* a centre-scoped queryset: ``Implantation.objects.visible_to(user)`` or
  ``Centre.objects.visible_to(user)`` (e.g. a data-quality page), which the
  selectors only ever narrow, never widen.

"As of the cut" follows the snapshot's rule (``reports.cohort``): a row entered
after ``data_cut`` is left out, and a row's values are read as they stand now.
``data_cut`` is an aware datetime (a run's cut), or a date meaning the start of
that day; ``None`` means now. The cut's day, for day counts, is its local date.

Dates are ``datetime.date`` here; ``cases_to_review`` turns them into ISO
strings for the report's stored (JSON) context.
"""

import calendar
import datetime
import logging
from collections.abc import Mapping

from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from registry.models import Complication, FollowUp, Implantation, Treatment
from registry.vocabulary import DoseChange, is_severe
from sites.models import Centre

logger = logging.getLogger(__name__)

UNTREATED_AFTER_DAYS = 28  # a pump this old with no dose needs a dose or a never-treated reason
OVERDUE_AFTER_MONTHS = 6  # the report's data-completeness rule: last contact more than 6 months before the cut


# --------------------------------------------------------------------------- scope and cut


def _implantations(scope):
    """The implantations of ``scope`` (a Centre, or a centre-scoped Implantation or Centre queryset)."""
    if isinstance(scope, Centre):
        return Implantation.objects.filter(patient__centre=scope)
    if isinstance(scope, QuerySet) and scope.model is Implantation:
        return scope
    if isinstance(scope, QuerySet) and scope.model is Centre:
        return Implantation.objects.filter(patient__centre__in=scope.values("pk"))
    raise TypeError(f"A scope is a Centre or a centre-scoped Implantation or Centre queryset, not {scope!r}.")


def _start_of(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _cut(data_cut):
    """(moment, local date) of a data cut."""
    if data_cut is None:
        data_cut = timezone.now()
    if isinstance(data_cut, datetime.datetime):
        moment = data_cut if timezone.is_aware(data_cut) else timezone.make_aware(data_cut)
        return moment, timezone.localtime(moment).date()
    return _start_of(data_cut), data_cut


def months_before(day, months):
    """The same day ``months`` calendar months earlier (the last day of a shorter month)."""
    month = day.month - months
    year = day.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _case(implantation_id, centre_code, pseudonym, implanted_on, reason, **fields):
    return {
        "implantation_id": implantation_id,
        "centre_code": centre_code,
        "pseudonym": pseudonym,
        "implanted_on": implanted_on,
        **fields,
        "reason": reason,
    }


# --------------------------------------------------------------------------- the lists


def new_complications(scope, *, period_start, period_end, data_cut):
    """Complications with their onset in the period, or entered in the period (both by the cut).

    One dict per complication: the common fields plus ``complication_id``, ``type_code``,
    ``type_name``, ``grade``, ``clavien_dindo``, ``severe`` (Clavien-Dindo >= IIIa where
    recorded, else grade >= 3), ``onset_on``, ``entered_on`` (local date), ``onset_in_period``
    and ``entered_in_period``. Ordered by onset, then pseudonym.
    """
    as_of, _ = _cut(data_cut)
    entered_from, entered_before = _start_of(period_start), _start_of(period_end + datetime.timedelta(days=1))
    rows = (
        Complication.objects.filter(
            implantation__in=_implantations(scope).filter(created_at__lte=as_of).values("pk"),
            created_at__lte=as_of,
        )
        .filter(
            Q(onset_on__gte=period_start, onset_on__lte=period_end)
            | Q(created_at__gte=entered_from, created_at__lt=entered_before)
        )
        .order_by("onset_on", "implantation__patient__pseudonym", "id")
        .values_list(
            "id",
            "implantation_id",
            "implantation__patient__centre__code",
            "implantation__patient__pseudonym",
            "implantation__implanted_on",
            "type__code",
            "type__name",
            "grade",
            "clavien_dindo",
            "onset_on",
            "created_at",
        )
    )
    out = []
    for pk, implantation_id, centre_code, pseudonym, implanted_on, code, name, grade, cd, onset, created in rows:
        severe = is_severe(grade, cd)
        onset_in_period = period_start <= onset <= period_end
        entered_in_period = entered_from <= created < entered_before
        when = "onset" if onset_in_period else "entered"
        if onset_in_period and entered_in_period:
            when = "onset and entered"
        grading = f"Clavien-Dindo {cd}" if cd else f"grade {grade}"
        out.append(
            _case(
                implantation_id,
                centre_code,
                pseudonym,
                implanted_on,
                f"{name} ({grading}{', severe' if severe else ''}), {when} in the period",
                complication_id=pk,
                type_code=code,
                type_name=name,
                grade=grade,
                clavien_dindo=cd,
                severe=severe,
                onset_on=onset,
                entered_on=timezone.localtime(created).date(),
                onset_in_period=onset_in_period,
                entered_in_period=entered_in_period,
            )
        )
    return out


def untreated_without_reason(scope, *, data_cut, min_days=UNTREATED_AFTER_DAYS):
    """Pumps at least ``min_days`` old at the cut with neither a dose nor a never-treated reason.

    A held cycle is not a dose. One dict per implantation: the common fields plus
    ``days_since_implantation`` (at the cut's date). Ordered by implantation date, then pseudonym.
    """
    as_of, cut_date = _cut(data_cut)
    doses = Treatment.objects.exclude(dose_change=DoseChange.HELD).filter(
        implantation=OuterRef("pk"), created_at__lte=as_of
    )
    rows = (
        _implantations(scope)
        .filter(created_at__lte=as_of, never_treated_reason="")
        .filter(implanted_on__lte=cut_date - datetime.timedelta(days=min_days))
        .alias(dosed=Exists(doses))
        .filter(dosed=False)
        .order_by("implanted_on", "patient__pseudonym", "id")
        .values_list("id", "patient__centre__code", "patient__pseudonym", "implanted_on")
    )
    out = []
    for implantation_id, centre_code, pseudonym, implanted_on in rows:
        days = (cut_date - implanted_on).days
        out.append(
            _case(
                implantation_id,
                centre_code,
                pseudonym,
                implanted_on,
                f"No HAI dose and no never-treated reason {days} days after implantation",
                days_since_implantation=days,
            )
        )
    return out


def overdue_follow_ups(scope, *, data_cut, months=OVERDUE_AFTER_MONTHS):
    """Follow-up overdue at the cut, for a patient with no death recorded (in any of their follow-ups).

    Overdue: the last contact was more than ``months`` calendar months before the cut,
    or there is no follow-up at all and the implantation is older than that. One dict per
    implantation: the common fields plus ``last_contact_on`` (None without follow-up)
    and ``overdue_since`` (the date before which a contact is overdue). Ordered by the
    last contact (none first), then implantation date and pseudonym.
    """
    as_of, cut_date = _cut(data_cut)
    overdue_since = months_before(cut_date, months)
    follow_ups = FollowUp.objects.filter(created_at__lte=as_of)
    last_contact = (
        follow_ups.filter(implantation=OuterRef("pk"))
        .order_by()
        .values("implantation")
        .annotate(last=Max("contact_on"))
        .values("last")
    )
    dead = follow_ups.filter(implantation__patient=OuterRef("patient"), died_on__isnull=False)
    rows = (
        _implantations(scope)
        .filter(created_at__lte=as_of)
        .annotate(last_contact_on=Subquery(last_contact))
        .alias(died=Exists(dead))
        .filter(died=False)
        .filter(Q(last_contact_on__lt=overdue_since) | Q(last_contact_on__isnull=True, implanted_on__lt=overdue_since))
        .order_by("implanted_on", "patient__pseudonym", "id")
        .values_list("id", "patient__centre__code", "patient__pseudonym", "implanted_on", "last_contact_on")
    )
    out = []
    for implantation_id, centre_code, pseudonym, implanted_on, last in rows:
        reason = (
            f"Last contact on {last.isoformat()}, more than {months} months before the cut"
            if last
            else f"No follow-up recorded, implanted more than {months} months before the cut"
        )
        out.append(
            _case(
                implantation_id,
                centre_code,
                pseudonym,
                implanted_on,
                reason,
                last_contact_on=last,
                overdue_since=overdue_since,
            )
        )
    out.sort(key=lambda c: (c["last_contact_on"] is not None, c["last_contact_on"] or c["implanted_on"]))
    return out


def _as_date(value):
    if value is None or isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(value)


def cases_behind(centre, implantation_ids, outcome_label):
    """The cases behind an alarm, by pseudonym: the implantations ``implantation_ids`` of ``centre``.

    ``implantation_ids`` is an iterable of implantation ids, or a mapping of id -> outcome
    date (a date or an ISO string; the day of the event behind the alarm, e.g. the onset
    of the technical complication), as the report engineer reads them from the snapshot.
    ``outcome_label`` names the outcome for the reader (e.g. "Technical complication
    within 90 days"). An id outside ``centre`` (the scope) is dropped, never shown.

    One dict per implantation: the common fields plus ``outcome`` (the label) and
    ``outcome_on`` (None when only ids were given). Ordered by outcome date, then pseudonym.
    """
    dates = (
        {int(k): _as_date(v) for k, v in implantation_ids.items()}
        if isinstance(implantation_ids, Mapping)
        else dict.fromkeys((int(i) for i in implantation_ids), None)
    )
    if not dates:
        return []
    rows = list(
        _implantations(centre)
        .filter(pk__in=list(dates))
        .values_list("id", "patient__centre__code", "patient__pseudonym", "implanted_on")
    )
    if len(rows) < len(dates):
        logger.warning(
            "cases_behind(%s): %d of %d implantation ids are not in the scope and are left out.",
            outcome_label,
            len(dates) - len(rows),
            len(dates),
        )
    out = []
    for implantation_id, centre_code, pseudonym, implanted_on in rows:
        outcome_on = dates[implantation_id]
        reason = f"{outcome_label} on {outcome_on.isoformat()}" if outcome_on else outcome_label
        out.append(
            _case(
                implantation_id,
                centre_code,
                pseudonym,
                implanted_on,
                reason,
                outcome=outcome_label,
                outcome_on=outcome_on,
            )
        )
    out.sort(key=lambda c: (c["outcome_on"] is None, c["outcome_on"] or c["implanted_on"], c["pseudonym"]))
    return out


# --------------------------------------------------------------------------- for the report


def _jsonable(cases):
    return [{k: (v.isoformat() if isinstance(v, datetime.date) else v) for k, v in case.items()} for case in cases]


def _day(value):
    """'3 June 2024', as the report prints dates; '' for none (the template prints a dash)."""
    return f"{value.day} {value:%B %Y}" if value else ""


def _section(key, title, columns, cases, row):
    return {"key": key, "title": title, "columns": columns, "rows": [row(c) for c in cases], "cases": _jsonable(cases)}


def cases_to_review(scope, *, period_start, period_end, data_cut, alarms=()):
    """The report's "Cases to review" section: a list of tables, plain JSON, in the order printed.

    Each table is ``{"key", "title", "columns", "rows", "cases"}``: ``rows`` are the cells as
    printed (strings and numbers, one list per case, under ``columns``), ``cases`` the
    selector's dicts with ISO dates. Keys: ``new_complications``, ``untreated_without_reason``,
    ``overdue_follow_ups``, then ``alarm:<measure>`` for each of ``alarms``: an iterable of
    ``{"measure": code, "label": outcome label, "implantations": ids or {id: outcome date}}``,
    each resolved with ``cases_behind``. Every table is there, empty or not.
    """
    _, cut_date = _cut(data_cut)
    period = f"{_day(period_start)} – {_day(period_end)}"
    overdue_since = _day(months_before(cut_date, OVERDUE_AFTER_MONTHS))
    sections = [
        _section(
            "new_complications",
            f"New complications: onset or entered in {period}",
            ["Pseudonym", "Implanted", "Complication", "Grade", "Severe", "Onset", "Entered"],
            new_complications(scope, period_start=period_start, period_end=period_end, data_cut=data_cut),
            lambda c: [
                c["pseudonym"],
                _day(c["implanted_on"]),
                c["type_name"],
                f"Clavien-Dindo {c['clavien_dindo']}" if c["clavien_dindo"] else f"Grade {c['grade']}",
                "yes" if c["severe"] else "no",
                _day(c["onset_on"]),
                _day(c["entered_on"]),
            ],
        ),
        _section(
            "untreated_without_reason",
            f"Pumps at least {UNTREATED_AFTER_DAYS} days old at the cut with no HAI dose and no never-treated reason",
            ["Pseudonym", "Implanted", "Days since implantation"],
            untreated_without_reason(scope, data_cut=data_cut),
            lambda c: [c["pseudonym"], _day(c["implanted_on"]), c["days_since_implantation"]],
        ),
        _section(
            "overdue_follow_ups",
            f"Follow-up overdue: no death recorded, and no contact since {overdue_since} "
            f"({OVERDUE_AFTER_MONTHS} months before the cut)",
            ["Pseudonym", "Implanted", "Last contact", "Reason"],
            overdue_follow_ups(scope, data_cut=data_cut),
            lambda c: [
                c["pseudonym"],
                _day(c["implanted_on"]),
                _day(c["last_contact_on"]),
                "Last contact too long ago" if c["last_contact_on"] else "No follow-up recorded",
            ],
        ),
    ]
    for alarm in alarms:
        sections.append(
            _section(
                f"alarm:{alarm['measure']}",
                f"The cases behind the signal: {alarm['label']}",
                ["Pseudonym", "Implanted", "Outcome date"],
                cases_behind(scope, alarm["implantations"], alarm["label"]),
                lambda c: [c["pseudonym"], _day(c["implanted_on"]), _day(c["outcome_on"])],
            )
        )
    return sections


# --- Readmission and reoperation rates (registry.selectors.readmission_rates) ----------------

READMISSION_MEASURES = (
    ("readmission_30d", "Readmission within 30 days"),
    ("readmission_90d", "Readmission within 90 days"),
    ("reoperation_30d", "Reoperation within 30 days"),
    ("reoperation_90d", "Reoperation within 90 days"),
)


def _entered_implantations(data_cut):
    # The snapshot's rule: an implantation entered after the cut is not in the cohort.
    queryset = Implantation.objects.all()
    return queryset.filter(created_at__lte=data_cut) if isinstance(data_cut, datetime.datetime) else queryset


def _readmission_figures(rates):
    from .benchmarks import rate

    return {key: {"implantations": n, "events": events, **rate(events, n)} for key, (events, n) in rates.items()}


def readmission_groups(groups, measure, *, data_cut):
    """[{"group", "implantations", "events", "rate", "ci"}] of ``measure`` (a key of ``READMISSION_MEASURES``)
    for each (label, implantations queryset) of ``groups``: complete windows only (readmission_rates), one
    query per group."""
    from registry.selectors import readmission_rates

    entered = _entered_implantations(data_cut)
    return [
        {"group": label, **_readmission_figures(readmission_rates(queryset & entered, data_cut=data_cut))[measure]}
        for label, queryset in groups
    ]


def readmission_figures(centre, *, data_cut):
    """The report's readmission and reoperation rates: the centre's in full and the registry's, shown only when
    the other centres' share passes the disclosure rule (as every pooled figure of the report). Two queries."""
    from registry.selectors import readmission_rates

    from . import disclosure
    from .concordance import guard_registry

    entered = _entered_implantations(data_cut)
    own = _readmission_figures(readmission_rates(entered.filter(patient__centre=centre), data_cut=data_cut))
    pooled = _readmission_figures(readmission_rates(entered, data_cut=data_cut))
    return [
        {
            "key": key,
            "label": label,
            "centre": own[key],
            "registry": guard_registry(
                own[key],
                pooled[key],
                lambda g: disclosure.suppress_proportions(g, "events"),
                ["implantations", "events"],
            ),
        }
        for key, label in READMISSION_MEASURES
    ]
