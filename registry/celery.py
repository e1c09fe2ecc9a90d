import os

from celery import Celery, signals

from registry import logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")

app = Celery("registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A task queued during a request logs, in the worker, under that request's id (registry.logs).
signals.before_task_publish.connect(logs.remember_request_id_in_task, weak=False, dispatch_uid="registry.request_id")
signals.task_prerun.connect(logs.enter_task, weak=False, dispatch_uid="registry.request_id")
signals.task_postrun.connect(logs.leave_task, weak=False, dispatch_uid="registry.request_id")


@signals.setup_logging.connect(weak=False, dispatch_uid="registry.logging")
def use_django_logging(**kwargs):
    """Workers and beat log like the web app (settings.LOGGING: JSON in production, the request id).

    Left to itself Celery puts its own plain-text handlers on the root and task loggers; with a receiver
    here it configures none, and the worker's ``-l`` gives way to LOG_LEVEL.
    """
    from django.conf import settings
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
