"""Run the data-quality rules now (they also run nightly): ``manage.py check_data_quality [--centre C] [--rule R]``."""

from django.core.management.base import BaseCommand, CommandError

from registry import data_quality
from registry.data_quality_services import run_checks
from sites.models import Centre


class Command(BaseCommand):
    help = "Run the data-quality rules: raise a query per offending record, close resolved ones, print the counts."

    def add_arguments(self, parser):
        parser.add_argument("--centre", metavar="CODE", help="Only this centre's records (its code).")
        parser.add_argument(
            "--rule", metavar="CODE", action="append", choices=list(data_quality.RULES), help="Only this rule."
        )

    def handle(self, *args, centre=None, rule=None, **options):
        where = None
        if centre:
            where = Centre.objects.filter(code=centre).first()
            if where is None:
                raise CommandError(f"No centre with code {centre}.")
        counts = run_checks(centre=where, rule_codes=rule)
        width = max(len(code) for code in counts)
        self.stdout.write(f"{'rule'.ljust(width)}  raised  closed  still open")
        for code, c in counts.items():
            self.stdout.write(f"{code.ljust(width)}  {c.raised:6d}  {c.closed:6d}  {c.still_open:10d}")
        totals = [sum(getattr(c, name) for c in counts.values()) for name in ("raised", "closed", "still_open")]
        self.stdout.write(f"{'total'.ljust(width)}  {totals[0]:6d}  {totals[1]:6d}  {totals[2]:10d}")
