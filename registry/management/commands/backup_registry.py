"""Back up the registry (``make backup``): ``manage.py backup_registry [--output-dir DIR]``; see registry.backups."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registry.backups import BackupError, create_backup


class Command(BaseCommand):
    help = "Write a backup folder: a pg_dump of the database, a copy of the media files and a manifest."

    def add_arguments(self, parser):
        parser.add_argument(
            "--output-dir",
            default=str(settings.BASE_DIR / "backups"),
            help="Where the timestamped backup folder is written (default: backups/ in the project).",
        )

    def handle(self, *args, output_dir, **options):
        try:
            folder, manifest = create_backup(output_dir)
        except BackupError as error:
            raise CommandError(str(error)) from error
        rows = sum(manifest["row_counts"].values())
        self.stdout.write(
            f"{len(manifest['row_counts'])} tables ({rows} rows) and {len(manifest['media'])} media files backed up."
        )
        # The last line alone is the folder, for scripts: make restore BACKUP=$(... | tail -1).
        self.stdout.write(str(folder))
