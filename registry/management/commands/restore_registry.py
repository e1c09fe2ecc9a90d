"""Restore a backup (``make restore BACKUP=...``): ``manage.py restore_registry FOLDER [--force]``; see registry.backups."""

from django.core.management.base import BaseCommand, CommandError

from registry.backups import BackupError, pending_migrations, restore_backup, unknown_migrations


class Command(BaseCommand):
    help = (
        "Restore a backup folder into the (empty) database of DATABASE_URL and MEDIA_ROOT, then check the "
        "restored rows and files against its manifest."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", help="The backup folder (hai-backup-<time>).")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace a database that is not empty (every schema in it is dropped first) and overwrite "
            "media files of the same name.",
        )
        parser.add_argument(
            "--database-name",
            metavar="NAME",
            help="Restore into this database on DATABASE_URL's server instead of DATABASE_URL's (a restore drill).",
        )

    def handle(self, *args, backup, force=False, database_name=None, **options):
        try:
            manifest = restore_backup(backup, force=force, database_name=database_name)
        except BackupError as error:
            raise CommandError(str(error)) from error
        rows = sum(manifest["row_counts"].values())
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored the backup of {manifest['created_at']}: {len(manifest['row_counts'])} tables "
                f"({rows} rows) and {len(manifest['media'])} media files, each checked against the manifest."
            )
        )
        newer = unknown_migrations(manifest)
        if newer:
            self.stderr.write(
                f"The backup was taken by a newer release ({len(newer)} migrations this code lacks, e.g. "
                f"{newer[0][0]}.{newer[0][1]}): run that release against it."
            )
        pending = pending_migrations(manifest)
        if pending:
            self.stdout.write(f"{len(pending)} migrations of this code are not applied yet: run manage.py migrate.")
        self.stdout.write(
            "Before users come back: manage.py reapply_consent_withdrawals --from-file <the exported tombstones>."
        )
