"""``GET /health/``: can this instance serve? For load balancers and the compose health checks (issue 17, item 1).

Three checks, each its own function: the database (one query), the cache (Redis: a write read back) and
the Celery broker (a connection; "eager" when there is none and tasks run in the web process, as in the
SQLite demo). 200 when every check passes, else 503 naming the checks that failed. No login, nothing
cached, and no detail of a failure in the response (an unauthenticated caller learns no host name or
error text); the error is logged.
"""

import logging
import uuid

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)

OK, EAGER, UNAVAILABLE = "ok", "eager", "unavailable"


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


def check_cache():
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was written")
    cache.delete(key)
    return OK


def check_broker():
    from registry.celery import app

    if app.conf.task_always_eager:
        return EAGER
    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
    return OK


CHECKS = {"database": check_database, "cache": check_cache, "broker": check_broker}


def run_checks():
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception:
            logger.exception("Health check %s failed.", name)
            results[name] = UNAVAILABLE
            if name == "database":
                connection.close()  # a broken connection is not reused by the next request
    return results


@never_cache
@require_safe
def health(request):
    results = run_checks()
    healthy = UNAVAILABLE not in results.values()
    return JsonResponse({"status": OK if healthy else UNAVAILABLE, "checks": results}, status=200 if healthy else 503)


# --- Is beat scheduling? For beat's own container health check (``manage.py check_beat``).
#
# Beat sends the sweeper (reports.tasks.sweep_unfinished_runs) every five minutes, and
# django-celery-beat's database scheduler writes each task's last_run_at when it syncs
# (after every send with CELERY_BEAT_SYNC_EVERY=1, as compose sets it). A last send older
# than BEAT_LATE_AFTER means beat has stopped scheduling, whatever its process looks like.
BEAT_HEARTBEAT_TASK = "reports.tasks.sweep_unfinished_runs"
BEAT_LATE_AFTER_SECONDS = 15 * 60


def beat_last_sent(task=BEAT_HEARTBEAT_TASK):
    from django_celery_beat.models import PeriodicTask

    return (
        PeriodicTask.objects.filter(task=task, enabled=True)
        .exclude(last_run_at=None)
        .order_by("-last_run_at")
        .values_list("last_run_at", flat=True)
        .first()
    )


def beat_is_scheduling(now=None, late_after_seconds=BEAT_LATE_AFTER_SECONDS):
    import datetime

    from django.utils import timezone

    last = beat_last_sent()
    now = now or timezone.now()
    return last is not None and now - last <= datetime.timedelta(seconds=late_after_seconds)
