import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reports import services
from reports.models import ReportRun


class Command(BaseCommand):
    help = (
        "Start a benchmark report run for a month: one report per active centre (or the --centre given), "
        "from a frozen data cut. Runs on the Celery workers, or here and now when tasks run eagerly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--period", required=True, help="The month, YYYY-MM.")
        parser.add_argument(
            "--centre", action="append", dest="centres", metavar="CODE", help="Only this centre (repeatable)."
        )
        parser.add_argument(
            "--data-cut",
            help="ISO date-time of the cut (default: the end of the month, or now if sooner). Rows entered later are left out.",
        )

    def handle(self, *args, period, centres, data_cut, **options):
        try:
            month = services.parse_period(period)
            cut = None
            if data_cut:
                cut = datetime.datetime.fromisoformat(data_cut)
                cut = cut if timezone.is_aware(cut) else timezone.make_aware(cut)
            run = services.start_run(month, centre_codes=centres, data_cut=cut)
        except ValueError as error:
            raise CommandError(str(error)) from error
        run = ReportRun.objects.get(pk=run.pk)
        self.stdout.write(
            f"Run {run.pk} for {run.period:%Y-%m}, data cut {run.data_cut:%Y-%m-%d %H:%M %Z}: {run.get_status_display()}"
        )
        for report in run.centre_reports.select_related("centre"):
            self.stdout.write(
                f"  {report.centre.code}: {report.get_status_display()}, {report.get_delivery_state_display()}"
            )
