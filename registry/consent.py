"""Erasure after a withdrawal of consent (issue 11): what goes, and from where.

``registry.services.withdraw_consent`` (the coordinator, one patient) and the
``reapply_consent_withdrawals`` command (after a restore from a backup) both call
``erase_patient_records`` and ``erase_derived_copies``. Both are idempotent: run again,
they find nothing left and erase nothing.

The live record
    The patient, their implantations and every record hanging off them (perfusion
    checks, HAI doses, complications, liver tests, follow-ups) and their systemic
    therapy lines (``ERASED_MODELS``).

The audit trail
    Every django-simple-history row of those records, including the deletion rows
    ("-") the erasure itself writes, and of the patient's earlier records deleted
    before the withdrawal (found by the history rows' own patient / implantation
    columns). A record once entered under this patient and later moved to another
    patient loses the history rows written while it was this patient's; it keeps the
    rest. The admin's log (``django.contrib.admin.models.LogEntry``) names records by
    their text (a dose's drug, dose and date; a complication's grade): its entries for
    the erased records go too.

Copies derived from the record
    * A report run's frozen cohort (``ReportRun.snapshot``) holds one row per
      implantation: the patient's rows are removed from every run's file, so a re-render
      of an old run no longer counts them. The case-mix model already fitted on it
      (``ReportRun.case_mix``: coefficients, c-statistic) is an aggregate and stays.
    * A stored report's "Cases to review" (``CentreReport.numbers["cases_to_review"]``
      and the stored HTML/PDF, downloaded by the centre) name the patient's
      implantations by pseudonym with dates and grades: those cases are removed and the
      stored copy is rendered again from what is left (``rerender_stored_copy``, in a
      task after the commit; meanwhile the download says "not rendered yet").
    * An outlier review's query or answer may name the pseudonym in free text: the
      pseudonym is replaced by ``REDACTED`` (in the review and its history).

What stays
    Aggregates already computed and sent: the figures of rendered reports
    (``CentreReport.numbers`` apart from the cases) and the emailed PDFs (which name no
    patient), the runs' case-mix models, outlier reviews' measures. ``api.ExportLog``
    says who exported how many rows with which filters; it holds no values, and the
    rows exported before the withdrawal are outside the registry. An import file
    waiting for its confirmation (``registry.import_storage``) lives minutes and is
    deleted when confirmed.

Caches: the live cohort and every cached statistics or count response are keyed by
the data version (``reports.cohort``); the erasure bumps it on commit, so the next
request recomputes without the patient.
"""

import gzip
import hashlib
import json
import logging
import re

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q

from .models import (
    Complication,
    DataQuery,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    Readmission,
    SystemicTherapyLine,
    SystemicToxicity,
    Treatment,
)

logger = logging.getLogger(__name__)

# Every model that holds a patient's clinical values: (count key, model, its link up to the patient).
# tests/test_consent_withdrawal.py checks that no model refers to a patient or implantation unlisted.
PATIENT = ("patients", Patient, None)
IMPLANTATIONS = ("implantations", Implantation, "patient")
IMPLANTATION_CHILDREN = [
    ("perfusion_checks", PerfusionCheck, "implantation"),
    ("treatments", Treatment, "implantation"),
    ("complications", Complication, "implantation"),
    ("liver_tests", LiverTest, "implantation"),
    ("follow_ups", FollowUp, "implantation"),
    ("systemic_toxicities", SystemicToxicity, "implantation"),
    ("readmissions", Readmission, "implantation"),
]
SYSTEMIC_LINES = ("systemic_therapy_lines", SystemicTherapyLine, "patient")
# Data queries (issue 12) quote the record's dates and values in their messages: erased with the patient.
DATA_QUERIES = ("data_queries", DataQuery, "patient")
ERASED_MODELS = [PATIENT, IMPLANTATIONS, *IMPLANTATION_CHILDREN, SYSTEMIC_LINES, DATA_QUERIES]

REDACTED = "[withdrawn patient]"


def _ids(queryset):
    return set(queryset.order_by().values_list("id", flat=True))


def _erased_ids(model, link, owner_ids, live_ids):
    """The model's records that were the owner's: those live now, and those whose history says so, less any
    that live on under another owner (moved away; they keep their history from after the move)."""
    remembered = _ids(model.history.filter(**{f"{link}_id__in": owner_ids}))
    moved_away = _ids(model.objects.filter(id__in=remembered - live_ids))
    return live_ids | (remembered - moved_away)


def erase_patient_records(patient_id):
    """Delete the patient's live rows and every history row and admin log entry of them.

    Returns ``(counts, implantation_ids)``: rows erased per kind, and the ids of every implantation that
    was the patient's (for ``erase_derived_copies``).

    The caller holds the patient's row lock (``services._lock_patient_of``) and a transaction.
    """
    counts = {key: 0 for key, _, _ in ERASED_MODELS}
    implantation_ids = _ids(Implantation.objects.filter(patient_id=patient_id))
    live = {
        "patients": _ids(Patient.objects.filter(pk=patient_id)),
        "implantations": implantation_ids,
        "systemic_therapy_lines": _ids(SystemicTherapyLine.objects.filter(patient_id=patient_id)),
        "data_queries": _ids(DataQuery.objects.filter(patient_id=patient_id)),
        **{
            key: _ids(model.objects.filter(implantation_id__in=implantation_ids))
            for key, model, _ in IMPLANTATION_CHILDREN
        },
    }
    for key, ids in live.items():
        counts[key] = len(ids)

    # Which records' history to erase, read before the delete (it moves nothing, but reads are simpler first).
    erased = {"patients": {patient_id}}
    erased["implantations"] = _erased_ids(Implantation, "patient", {patient_id}, implantation_ids)
    erased["systemic_therapy_lines"] = _erased_ids(
        SystemicTherapyLine, "patient", {patient_id}, live["systemic_therapy_lines"]
    )
    for key, model, link in IMPLANTATION_CHILDREN:
        erased[key] = _erased_ids(model, link, erased["implantations"], live[key])
    erased["data_queries"] = _erased_ids(DataQuery, "patient", {patient_id}, live["data_queries"])

    deleted = {}
    if live["patients"]:
        _, deleted = Patient.objects.filter(pk=patient_id).delete()  # cascades; writes the "-" history rows
    unexpected = set(deleted) - {model._meta.label for _, model, _ in ERASED_MODELS}
    for label in sorted(unexpected):  # a model added later with a cascade to the patient: counted, not hidden
        counts[label] = deleted[label]

    history_rows = 0
    for key, model, link in ERASED_MODELS:
        condition = Q(id__in=erased[key])
        if link == "patient":
            condition |= Q(patient_id=patient_id)
        elif link == "implantation":
            condition |= Q(implantation_id__in=erased["implantations"])
        history_rows += model.history.filter(condition).delete()[0]
    counts["history_rows"] = history_rows

    log_entries = 0
    for key, model, _ in ERASED_MODELS:
        if erased[key]:
            content_type = ContentType.objects.get_for_model(model)
            log_entries += LogEntry.objects.filter(
                content_type=content_type, object_id__in=[str(pk) for pk in erased[key]]
            ).delete()[0]
    counts["admin_log_entries"] = log_entries
    return counts, erased["implantations"]


def _mentions(pseudonym):
    return re.compile(rf"(?<![A-Za-z0-9-]){re.escape(pseudonym)}(?![A-Za-z0-9-])")


def erase_derived_copies(*, patient_ids, pseudonyms, implantation_ids=()):
    """Remove the patients' rows from report snapshots, stored reports' cases and outlier-review text.

    Matches on the former patient ids and pseudonyms (and implantation ids when known: after a restore
    the patient may already be gone from the live record). Returns counts; idempotent.
    """
    patient_ids, pseudonyms, implantation_ids = set(patient_ids), set(pseudonyms), set(implantation_ids)
    return {
        "report_snapshot_rows": _erase_from_snapshots(patient_ids, implantation_ids),
        "report_cases": _erase_from_stored_reports(pseudonyms, implantation_ids),
        "outlier_review_mentions": _redact_outlier_reviews(pseudonyms),
    }


def _delete_file_on_commit(storage, name):
    transaction.on_commit(lambda: storage.delete(name) if name and storage.exists(name) else None)


def _erase_from_snapshots(patient_ids, implantation_ids):
    from reports.models import ReportRun

    removed = 0
    for run in ReportRun.objects.exclude(snapshot="").select_for_update().order_by("pk"):
        try:
            with run.snapshot.open("rb") as handle:
                payload = json.loads(gzip.decompress(handle.read()))
        except FileNotFoundError:
            logger.warning("Run %s: snapshot file %s is missing; nothing to erase in it.", run.pk, run.snapshot.name)
            continue
        kept = [
            row for row in payload["rows"] if row["patient_id"] not in patient_ids and row["id"] not in implantation_ids
        ]
        if len(kept) == len(payload["rows"]):
            continue
        removed += len(payload["rows"]) - len(kept)
        payload["rows"] = kept
        old_name, storage = run.snapshot.name, run.snapshot.storage
        data = gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)
        # A new name: the per-process snapshot cache (reports.services._load_snapshot) is keyed by it.
        run.snapshot.save(f"run-{run.pk}.json.gz", ContentFile(data), save=False)
        run.save(update_fields=["snapshot"])
        _delete_file_on_commit(storage, old_name)
    return removed


def _erase_from_stored_reports(pseudonyms, implantation_ids):
    from reports.models import CentreReport

    removed, to_render = 0, []
    reports = CentreReport.objects.filter(numbers__has_key="cases_to_review").select_for_update().order_by("pk")
    for report in reports.only("pk", "numbers", "html", "pdf"):
        sections, changed = report.numbers.get("cases_to_review") or [], False
        for section in sections:
            keep = [
                index
                for index, case in enumerate(section.get("cases", []))
                if case.get("pseudonym") not in pseudonyms and case.get("implantation_id") not in implantation_ids
            ]
            if len(keep) == len(section.get("cases", [])):
                continue
            removed += len(section["cases"]) - len(keep)
            section["cases"] = [section["cases"][i] for i in keep]
            section["rows"] = [section["rows"][i] for i in keep]
            changed = True
        if not changed:
            continue
        for field in (report.html, report.pdf):  # the stored copy printed those cases: rendered again below
            _delete_file_on_commit(field.storage, field.name)
        report.html, report.pdf, report.checksum = "", "", ""
        report.save(update_fields=["numbers", "html", "pdf", "checksum"])
        to_render.append(report.pk)
    if to_render:
        from .tasks import rerender_stored_reports

        transaction.on_commit(lambda: rerender_stored_reports.delay(to_render))
    return removed


def rerender_stored_copy(report_id):
    """Render a report's stored copy (HTML and PDF) again from its stored context; the emailed copy stays."""
    from reports.models import CentreReport
    from reports.rendering import render_pdf
    from reports.services import render_stored_html

    report = CentreReport.objects.select_related("run", "centre").get(pk=report_id)
    if report.html or not report.numbers:
        return report  # done already (a task delivered twice), or never rendered
    html = render_stored_html(report.numbers)
    pdf = render_pdf(html)
    name = f"{report.run.period:%Y-%m}-{report.centre.code}-run{report.run_id}"
    with transaction.atomic():
        report = CentreReport.objects.select_for_update().get(pk=report_id)
        if report.html:
            return report
        report.html.save(f"{name}.html", ContentFile(html.encode()), save=False)
        report.pdf.save(f"{name}.pdf", ContentFile(pdf), save=False)
        report.checksum = hashlib.sha256(pdf).hexdigest()
        report.save(update_fields=["html", "pdf", "checksum"])
    return report


def _redact_outlier_reviews(pseudonyms):
    from reports.models import OutlierReview

    changed = 0
    for pseudonym in sorted(pseudonyms):
        pattern = _mentions(pseudonym)
        for manager in (OutlierReview.objects, OutlierReview.history):
            rows = manager.filter(Q(query__contains=pseudonym) | Q(answer__contains=pseudonym))
            for pk, query, answer in rows.values_list("pk", "query", "answer"):
                new_query, new_answer = pattern.sub(REDACTED, query), pattern.sub(REDACTED, answer)
                if (new_query, new_answer) != (query, answer):
                    manager.filter(pk=pk).update(query=new_query, answer=new_answer)
                    changed += 1
    return changed


def forget_cached_statistics():
    """After the commit: every process's live cohort, statistics and counts are rebuilt without the patient."""
    from reports.cohort import bump_data_version, forget_live_cohort

    def forget():
        bump_data_version()
        forget_live_cohort()

    transaction.on_commit(forget)
