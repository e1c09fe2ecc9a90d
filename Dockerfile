# One image for the web app (gunicorn), the Celery worker and Celery beat;
# docker-compose.yml picks the command. See docker-compose.yml for the environment.
FROM python:3.11-slim

# OPENBLAS_NUM_THREADS=1: the case-mix fits are small, and competing BLAS threads made them up to 20x slower.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1

# Pango for WeasyPrint (PDF reports); pg_dump and pg_restore for manage.py backup_registry / restore_registry
# (their major version must not be older than the server's).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 postgresql-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Runtime dependencies only (the test, lint and lock tools are in requirements/dev.txt),
# first, so a code change does not reinstall them.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install -r requirements/runtime.txt

COPY . .

# Run as an unprivileged user; it owns only what the app writes at run time
# (collected static files at start, media files such as generated reports).
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home app \
    && mkdir -p /app/staticfiles /app/media \
    && chown app:app /app/staticfiles /app/media
USER app

EXPOSE 8000
# gunicorn.conf.py: gthread workers, the timeout, worker recycling (what bench/ measured).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "registry.wsgi:application"]
