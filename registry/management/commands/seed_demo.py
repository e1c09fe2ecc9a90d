"""``manage.py seed_demo``: a deterministic demo registry (see ``registry.demo``)."""

import datetime as dt
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from registry import demo
from registry.rules import today


def _date(value):
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise CommandError(f"--reference-date: {error}; use YYYY-MM-DD.") from error


def _after_bulk_load():
    """Bulk inserts send no signals and leave no planner statistics: refresh both."""
    from django.db import connection

    from reports.cohort import bump_data_version

    bump_data_version()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Index-only scans (surgeon sequence numbers) need the visibility map VACUUM sets;
            # inside a transaction (tests) only ANALYZE is allowed.
            cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE")


class Command(BaseCommand):
    help = (
        "Fill the database with a deterministic, realistic demo registry: centres of different sizes, "
        "surgeons, pseudonymised patients and implantations with doses, complications, liver tests, "
        "perfusion checks, systemic lines and follow-ups, plus demo users of every role (password "
        f"'{demo.DEMO_PASSWORD}') and report recipients. The same options give the same data. "
        "Rows are written with bulk_create (child tables with COPY on PostgreSQL), so NO history (audit) rows are "
        "recorded for the seeded data. Every row satisfies the models' clean() rules and the database constraints. "
        "Refuses to run on a database that already holds centres or patients unless --flush (replace them) "
        "or --if-empty (then do nothing) is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--centres", type=int, default=8, help="Number of centres (default 8).")
        parser.add_argument("--implantations", type=int, default=3000, help="Number of implantations (default 3000).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (default 1).")
        parser.add_argument(
            "--reference-date",
            type=_date,
            default=demo.REFERENCE_DATE,
            help=f"Latest date in the data, YYYY-MM-DD (default {demo.REFERENCE_DATE}); must not be after today.",
        )
        parser.add_argument(
            "--flush",
            action="store_true",
            help="First delete ALL clinical records (and their history), centres, surgeons, report recipients, "
            "centre memberships and anything else that points at them (e.g. centres' benchmark reports).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Seed only when the database holds no centres or patients yet; otherwise leave it alone and exit 0.",
        )
        parser.add_argument(
            "--no-import-examples",
            action="store_true",
            help="Leave out the surgeon DEMO-S01 and the patients HAI-IMPORT01-03 (one implantation) that the "
            "shipped import templates (docs/import_template*.csv) name.",
        )
        parser.add_argument("--batch-size", type=int, default=demo.BATCH_SIZE, help="Rows per INSERT (default 5000).")
        parser.add_argument(
            "--no-copy",
            action="store_true",
            help="On PostgreSQL, write the child tables with bulk_create too instead of COPY (slower, same rows).",
        )

    def _say(self, line):
        self.stdout.write(line)
        self.stdout.flush()

    def _progress(self, started):
        def progress(written, total):
            if written == 0:
                self._say(f"  planned {total} implantations ({time.monotonic() - started:.1f} s); writing…")
            else:
                share = f"{100 * written / total:.0f}%" if total else "100%"
                self._say(f"  {written} / {total} implantations written ({share}, {time.monotonic() - started:.1f} s)")

        return progress

    def handle(self, *args, **options):
        if options["flush"] and not settings.DEBUG:
            # Truncating the clinical tables and their history is for a development database only (issue 11).
            raise CommandError(
                "--flush deletes every clinical record and its history; it runs only with DEBUG on "
                "(a development database), never in production."
            )
        if options["centres"] < 1 or options["implantations"] < 0 or options["batch_size"] < 1:
            raise CommandError("--centres and --batch-size must be at least 1, --implantations at least 0.")
        if options["reference_date"] > today():
            raise CommandError(
                f"The reference date {options['reference_date']} is in the future; records cannot be dated after "
                "today. Pass an earlier --reference-date."
            )
        started = time.monotonic()
        existing = demo.existing_data()
        if existing and options["if_empty"] and not options["flush"]:
            found = ", ".join(f"{n} {label}" for label, n in existing.items())
            self.stdout.write(f"The database already holds data ({found}); not seeding (--if-empty).")
            usernames = sorted(
                get_user_model()
                .objects.filter(Q(username__in=["coordinator", "investigator"]) | Q(username__regex=r"^(dm|lead)-"))
                .values_list("username", flat=True)
            )
            if usernames:
                self.stdout.write(f"Demo users: {', '.join(usernames)} (password {demo.DEMO_PASSWORD} unless changed).")
            return
        if existing and not options["flush"]:
            found = ", ".join(f"{n} {label}" for label, n in existing.items())
            raise CommandError(
                f"The database already holds data ({found}). Re-run with --flush to delete all clinical records, "
                "centres and surgeons first, or with --if-empty to leave it as it is."
            )
        if existing:
            self.stdout.write("Deleting existing clinical data, centres and surgeons…")
            demo.flush_registry()
        # Progress on the terminal: one line per chunk of implantations at the default verbosity
        # (verbosity 2 prints the same per chunk, with more detail; 0 prints none).
        progress = self._progress(started) if options["verbosity"] == 1 else None
        if options["verbosity"] >= 1:
            self._say(
                f"Seeding {options['implantations']} implantations in {options['centres']} centres "
                f"(seed {options['seed']})…"
            )
        try:
            counts = demo.seed_registry(
                options["centres"],
                options["implantations"],
                options["seed"],
                reference_date=options["reference_date"],
                stdout=self.stdout if options["verbosity"] > 1 else None,
                batch_size=options["batch_size"],
                copy=False if options["no_copy"] else None,
                progress=progress,
                import_examples=not options["no_import_examples"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        _after_bulk_load()
        # The demo investigator reads data releases only (issue 15): the demo ends by freezing its first.
        from reports.releases import freeze_release

        release = freeze_release(demo.first_release_name(options["reference_date"], options["seed"]))
        elapsed = time.monotonic() - started
        users = counts.pop("users")

        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {options['implantations']} implantations in {options['centres']} centres "
                f"(seed {options['seed']}, reference date {options['reference_date']}) in {elapsed:.1f} s."
            )
        )
        width = max(len(label) for label in counts)
        for label, n in counts.items():
            self.stdout.write(f"  {label:<{width}}  {n:>9}")
        self.stdout.write(f"Data release {release.name} frozen (checksum {release.checksum[:12]}…).")
        self.stdout.write("")
        self.stdout.write(f"Demo users (password for all: {demo.DEMO_PASSWORD}):")
        rows = [("username", "password", "role", "centre")] + [(u, demo.DEMO_PASSWORD, r, c) for u, r, c in users]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            self.stdout.write("  " + "  ".join(value.ljust(w) for value, w in zip(row, widths, strict=True)).rstrip())
