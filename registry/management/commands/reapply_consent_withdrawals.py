"""Erase again every patient with a consent-withdrawal tombstone: run it after restoring a backup.

A backup older than a withdrawal still holds the patient's records; restoring it brings them back.
This command erases them again (``registry.consent``), matching a live patient on both the former id
and the pseudonym, so a patient who was given the same id after the restore is never touched (it is
reported instead). Idempotent: a second run finds nothing to erase.

A restore also loses the tombstones recorded after the backup. Keep a copy outside the database:

    manage.py reapply_consent_withdrawals --export /secure/withdrawals.json     (e.g. nightly)
    manage.py reapply_consent_withdrawals --from-file /secure/withdrawals.json  (after a restore)

``--from-file`` first puts back the tombstones the database lacks, then erases.
"""

import datetime
import json

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from registry import consent
from registry.models import ConsentWithdrawal, Patient
from sites.models import Centre

EXPORTED_FIELDS = (
    "former_patient_id",
    "pseudonym",
    "withdrawn_on",
    "reason",
    "recorded_by_name",
    "recorded_at",
    "erased_counts",
)


class Command(BaseCommand):
    help = "Erase again the records of every patient whose consent withdrawal is recorded (after a restore)."

    def add_arguments(self, parser):
        parser.add_argument("--export", metavar="PATH", help="Write every tombstone to PATH (JSON) and stop.")
        parser.add_argument(
            "--from-file", metavar="PATH", help="Put back the tombstones of PATH (written by --export), then erase."
        )

    def handle(self, *args, export=None, from_file=None, **options):
        if export and from_file:
            raise CommandError("Give --export or --from-file, not both.")
        if export:
            return self.export(export)
        with transaction.atomic():
            added = self.import_tombstones(from_file) if from_file else 0
            self.reapply(added)

    def export(self, target):
        rows = [
            {**{name: getattr(t, name) for name in EXPORTED_FIELDS}, "centre": t.centre.code}
            for t in ConsentWithdrawal.objects.select_related("centre").order_by("former_patient_id")
        ]
        for row in rows:  # isoformat keeps the microseconds (DjangoJSONEncoder drops them)
            row["withdrawn_on"], row["recorded_at"] = row["withdrawn_on"].isoformat(), row["recorded_at"].isoformat()
        with open(target, "w", encoding="utf-8") as handle:
            json.dump({"consent_withdrawals": rows}, handle, indent=1)
        self.stdout.write(f"Wrote {len(rows)} consent withdrawal(s) to {target}.")

    def import_tombstones(self, source):
        try:
            with open(source, encoding="utf-8") as handle:
                rows = json.load(handle)["consent_withdrawals"]
        except (OSError, ValueError, KeyError) as error:
            raise CommandError(f"{source} is not a file written by --export: {error}") from error
        known = set(ConsentWithdrawal.objects.values_list("former_patient_id", flat=True))
        centres = dict(Centre.objects.values_list("code", "pk"))
        added = 0
        for row in rows:
            if row["former_patient_id"] in known:
                continue
            if row["centre"] not in centres:
                raise CommandError(f"No centre {row['centre']} for the withdrawal of {row['pseudonym']}.")
            ConsentWithdrawal.objects.create(
                former_patient_id=row["former_patient_id"],
                pseudonym=row["pseudonym"],
                centre_id=centres[row["centre"]],
                withdrawn_on=datetime.date.fromisoformat(row["withdrawn_on"]),
                reason=row["reason"],
                recorded_by_name=row["recorded_by_name"],
                recorded_at=datetime.datetime.fromisoformat(row["recorded_at"]),
                erased_counts=row.get("erased_counts") or {},
            )
            added += 1
        return added

    def reapply(self, added):
        tombstones = list(ConsentWithdrawal.objects.order_by("former_patient_id"))
        live = dict(
            Patient.objects.select_for_update()
            .filter(pk__in=[t.former_patient_id for t in tombstones])
            .values_list("pk", "pseudonym")
        )
        erased_patients, rows, implantation_ids, patient_ids = 0, 0, set(), set()
        for tombstone in tombstones:
            current = live.get(tombstone.former_patient_id)
            if current is not None and current != tombstone.pseudonym:
                self.stderr.write(
                    f"Registry id {tombstone.former_patient_id} now belongs to {current}, not to the withdrawn "
                    f"{tombstone.pseudonym}: left alone. Check the restore."
                )
                continue
            patient_ids.add(tombstone.former_patient_id)
            counts, ids = consent.erase_patient_records(tombstone.former_patient_id)
            implantation_ids |= ids
            erased_patients += counts["patients"]
            rows += sum(value for key, value in counts.items() if key != "patients")
        derived = consent.erase_derived_copies(
            patient_ids=patient_ids,
            pseudonyms=[t.pseudonym for t in tombstones if t.former_patient_id in patient_ids],
            implantation_ids=implantation_ids,
        )
        rows += sum(derived.values())
        self.keep_ids_unused(tombstones)
        consent.forget_cached_statistics()
        self.stdout.write(
            f"{len(tombstones)} consent withdrawal(s)"
            + (f" ({added} put back from the file)" if added else "")
            + f": {erased_patients} patient(s) erased again, {rows} other row(s)."
        )

    def keep_ids_unused(self, tombstones):
        """A new patient never takes a withdrawn patient's id (PostgreSQL: the id sequence moves past them)."""
        if not tombstones or connection.vendor != "postgresql":
            return
        highest = max(t.former_patient_id for t in tombstones)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Patient._meta.db_table])
            (sequence,) = cursor.fetchone()
            if sequence:
                cursor.execute(
                    f"SELECT setval(%s, GREATEST(%s, (SELECT last_value FROM {sequence})))",  # noqa: S608
                    [sequence, highest],
                )
