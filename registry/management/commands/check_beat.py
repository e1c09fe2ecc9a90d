from django.core.management.base import BaseCommand, CommandError

from registry.health import BEAT_HEARTBEAT_TASK, BEAT_LATE_AFTER_SECONDS, beat_is_scheduling, beat_last_sent


class Command(BaseCommand):
    help = "Exit 0 if Celery beat has sent its every-five-minutes task recently, 1 if not (beat's health check)."

    def add_arguments(self, parser):
        parser.add_argument("--within", type=int, default=BEAT_LATE_AFTER_SECONDS, help="seconds (default %(default)s)")

    def handle(self, *args, within, **options):
        if not beat_is_scheduling(late_after_seconds=within):
            raise CommandError(
                f"Beat has not sent {BEAT_HEARTBEAT_TASK} in the last {within} s (last: {beat_last_sent()})."
            )
        self.stdout.write(f"Beat is scheduling: {BEAT_HEARTBEAT_TASK} last sent {beat_last_sent().isoformat()}.")
