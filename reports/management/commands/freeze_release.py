"""``manage.py freeze_release NAME [--as-of ISO]``: the coordinator freezes a data release (``reports.releases``)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from reports.releases import as_datetime, freeze_release, verify


class Command(BaseCommand):
    help = (
        "Freeze a data release for investigators: the registry now, or as of a past moment (--as-of, rebuilt from "
        "the history tables). A release is immutable; investigators read the latest unless they name one."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="Letters, digits, '-' and '_' (e.g. 2026-12).")
        parser.add_argument("--as-of", help="A past moment, ISO 8601 with a time zone (e.g. 2026-11-01T06:00+00:00).")

    def handle(self, *args, name, as_of=None, **options):
        try:
            release = freeze_release(name, as_of=as_datetime(as_of))
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from error
        if not verify(release):
            raise CommandError(f"Release {release.name} does not match its checksum.")
        counts = ", ".join(f"{n} {table}" for table, n in release.row_counts.items())
        self.stdout.write(
            self.style.SUCCESS(f"Release {release.name} frozen at cut {release.cut:%Y-%m-%d %H:%M %Z} ({counts}).")
        )
        self.stdout.write(f"Checksum {release.checksum}, method version {release.method_version}.")
