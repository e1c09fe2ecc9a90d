"""Tasks for tests/test_logging.py, also imported by the real worker it starts (``celery worker -I``)."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="tests.log_one_line")
def log_one_line():
    logger.info("The test task ran.")
