import datetime
from time import monotonic, sleep

from celery.signals import task_postrun, task_prerun
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from reports import services, tasks
from reports.models import ReportRun


class Command(BaseCommand):
    help = (
        "Start a benchmark report run for a month: one report per active centre (or the --centre given), "
        "from a frozen data cut. Runs on the Celery workers, or here and now when tasks run eagerly; "
        "either way it prints how many centre reports are rendered and sent as they are (--wait to follow "
        "a run on the workers)."
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
        parser.add_argument(
            "--wait",
            action="store_true",
            help="With Celery workers: follow the run until it is finished (or --timeout), printing its progress. "
            "Eager runs (no REDIS_URL) always finish before the command returns.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600,
            metavar="SECONDS",
            help="With --wait: give up waiting after this long (default 600); the run goes on on the workers.",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=2,
            metavar="SECONDS",
            help="With --wait: how often to look at the run (default 2).",
        )

    def handle(self, *args, period, centres, data_cut, wait, timeout, poll_interval, **options):
        self.verbosity = options["verbosity"]
        self.last_progress = None
        try:
            month = services.parse_period(period)
            cut = None
            if data_cut:
                cut = datetime.datetime.fromisoformat(data_cut)
                cut = cut if timezone.is_aware(cut) else timezone.make_aware(cut)
            eager = tasks.execute_run.app.conf.task_always_eager
            if eager:
                # The run happens in this process, on commit: report each centre as its task ends.
                task_prerun.connect(self.on_task_prerun, weak=False)
                task_postrun.connect(self.on_task_postrun, weak=False)
            try:
                run = services.start_run(month, centre_codes=centres, data_cut=cut)
            finally:
                if eager:
                    task_prerun.disconnect(self.on_task_prerun)
                    task_postrun.disconnect(self.on_task_postrun)
        except ValueError as error:
            raise CommandError(str(error)) from error
        finished = True
        if not eager and wait:
            finished = self.follow(run.pk, timeout, poll_interval)
        run = ReportRun.objects.get(pk=run.pk)
        self.stdout.write(
            f"Run {run.pk} for {run.period:%Y-%m}, data cut {run.data_cut:%Y-%m-%d %H:%M %Z}: {run.get_status_display()}"
        )
        for report in run.centre_reports.select_related("centre"):
            self.stdout.write(
                f"  {report.centre.code}: {report.get_status_display()}, {report.get_delivery_state_display()}"
            )
        if not finished:
            raise CommandError(
                f"Run {run.pk} is not finished after {timeout:g} s; it goes on on the workers "
                "(follow it on its page in the admin)."
            )

    def say_progress(self, run_id):
        """One line whenever the counts move, e.g. 'Run 4: 3/8 rendered, 2/8 sent'."""
        progress = services.run_progress(run_id)
        if self.verbosity >= 1 and progress != self.last_progress:
            self.stdout.write(f"Run {run_id}: {progress.short}")
            self.stdout.flush()
        self.last_progress = progress
        return progress

    def on_task_prerun(self, sender=None, args=None, **kwargs):
        if sender.name == tasks.execute_run.name and self.verbosity >= 1:
            self.stdout.write(f"Run {args[0]}: freezing the cohort at the data cut…")
            self.stdout.flush()

    def on_task_postrun(self, sender=None, args=None, **kwargs):
        if sender.name == tasks.produce_centre_report.name:
            self.say_progress(args[1])

    def follow(self, run_id, timeout, poll_interval):
        """Poll the database while the workers do the run; True once it is finished, False at the timeout."""
        deadline = monotonic() + timeout
        while True:
            self.say_progress(run_id)
            if ReportRun.objects.filter(pk=run_id, finished_at__isnull=False).exists():
                return True
            if monotonic() >= deadline:
                return False
            sleep(max(0.0, min(poll_interval, deadline - monotonic())))
