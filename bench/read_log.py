#!/usr/bin/env python
"""What the read log costs a request: an API list of 100 implantations with and without its write.

Usage:

    .venv/bin/python bench/read_log.py [--requests 400] [--db hai_bench_reads]

Drops and creates the PostgreSQL database ``--db`` (on 127.0.0.1:5432, user ``postgres``), migrates it,
seeds it (``seed_demo --implantations 100 --centres 2 --seed 1``, children included) and makes a
coordinator token. Then, in this one process, it calls Django's WSGI application as a WSGI server
does (with the real token; no HTTP, so the figures are the application's own time) for
``GET /api/v1/implantations/?page_size=100``, and the same for treatments (child rows: their
patients cost the read log one more query), alternately with ``sites.reads.ReadLogMiddleware`` in
``MIDDLEWARE`` and without it, in blocks of 25 requests so drift on a shared machine hits both alike.
Production settings (``DEBUG=0``), the local-memory cache.

Two times per request: *response*, until the application has returned the response and its body
(what the client waits for: a server sends it then), and *worker*, until the server's ``close()``
returns (the middleware writes the row there). Also the statements per request and the time spent
in the write itself. Writes ``bench/results/read_log.json``.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENDPOINTS = [
    ("list implantations (page of 100)", "/api/v1/implantations/", {"page_size": 100}),
    ("list treatments (page of 100)", "/api/v1/treatments/", {"page_size": 100}),
]
BLOCK = 25


def fresh_database(name):
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[max(0, int(round(fraction * len(ordered))) - 1)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="Requests per endpoint and configuration.")
    parser.add_argument("--db", default="hai_bench_reads")
    args = parser.parse_args()

    fresh_database(args.db)
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.db}",
        DJANGO_SETTINGS_MODULE="registry.settings",
        DEBUG="0",
        SECRET_KEY="bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="testserver",
        SECURE_SSL_REDIRECT="0",
        REDIS_URL="",
        THROTTLE_USER="100000000/min",
        LOG_LEVEL="WARNING",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        REQUIRE_2FA="0",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connection
    from django.test import override_settings
    from django.test.utils import CaptureQueriesContext

    from api.tokens import create_token
    from registry.models import Implantation, Treatment
    from sites import reads
    from sites.models import Membership, RecordRead

    call_command("migrate", verbosity=0)
    call_command("seed_demo", implantations=100, centres=2, seed=1, verbosity=0, stdout=io.StringIO())
    user = get_user_model().objects.create_user("bench-coordinator", password="bench-password-1")
    Membership.objects.create(user=user, role="coordinator")
    _, token = create_token(user, "coordinator")
    assert Implantation.objects.count() == 100 and Treatment.objects.count() >= 100

    with_log = list(settings.MIDDLEWARE)
    without_log = [m for m in with_log if m != "sites.reads.ReadLogMiddleware"]
    write_times = []
    real_write = reads.write

    def timed_write(*a, **k):
        started = time.perf_counter()
        real_write(*a, **k)
        write_times.append((time.perf_counter() - started) * 1000)

    reads.write = timed_write

    def application_for(middleware):
        with override_settings(MIDDLEWARE=middleware):
            return WSGIHandler()  # loads the middleware of the moment and keeps it

    applications = {"with": application_for(with_log), "without": application_for(without_log)}

    def call(application, path, params):
        """One request as a WSGI server makes it: ``(status, body, response ms, worker ms)``."""
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": urlencode(params),
            "HTTP_HOST": "testserver",
            "HTTP_AUTHORIZATION": f"Token {token}",
            "wsgi.input": io.BytesIO(),
        }
        setup_testing_defaults(environ)
        statuses = []
        started = time.perf_counter()
        response = application(environ, lambda status, headers: statuses.append(status))
        body = b"".join(response)
        sent = time.perf_counter()
        response.close()
        closed = time.perf_counter()
        return statuses[0], body, (sent - started) * 1000, (closed - started) * 1000

    results = {"machine": f"{os.cpu_count()} cores", "load_average_before": os.getloadavg()[0], "endpoints": []}
    for label, path, params in ENDPOINTS:
        for application in applications.values():  # warm: roles, page count, the first request's imports
            for _ in range(5):
                assert call(application, path, params)[0] == "200 OK"
        statements = {}
        for name, application in applications.items():
            with CaptureQueriesContext(connection) as queries:
                status, body, _, _ = call(application, path, params)
            assert status == "200 OK" and len(json.loads(body)["results"]) == 100
            statements[name] = len(queries)
        times = {(name, kind): [] for name in ("with", "without") for kind in ("response", "worker")}
        write_times.clear()
        before = RecordRead.objects.count()
        for _ in range(args.requests // BLOCK):
            for name in ("without", "with"):
                for _ in range(BLOCK):
                    status, _, response_ms, worker_ms = call(applications[name], path, params)
                    assert status == "200 OK"
                    times[name, "response"].append(response_ms)
                    times[name, "worker"].append(worker_ms)
        written = RecordRead.objects.count() - before
        assert written == len(times["with", "response"]), written
        figures = {"endpoint": label, "path": path, "requests_each": written, "rows_written": written}
        for (name, kind), values in times.items():
            figures[f"{kind}_{name}_median_ms"] = round(statistics.median(values), 2)
            figures[f"{kind}_{name}_p95_ms"] = round(percentile(values, 0.95), 2)
        for name in ("without", "with"):
            figures[f"statements_{name}"] = statements[name]
        figures["write_median_ms"] = round(statistics.median(write_times), 2)
        figures["write_p95_ms"] = round(percentile(write_times, 0.95), 2)
        results["endpoints"].append(figures)
        print(label, flush=True)
        for kind in ("response", "worker"):
            print(
                f"  {kind:8s} without {figures[f'{kind}_without_median_ms']:7.2f} ms "
                f"(p95 {figures[f'{kind}_without_p95_ms']:7.2f})  with {figures[f'{kind}_with_median_ms']:7.2f} ms "
                f"(p95 {figures[f'{kind}_with_p95_ms']:7.2f})",
                flush=True,
            )
        print(
            f"  statements without {statements['without']}, with {statements['with']}; the write itself "
            f"{figures['write_median_ms']:.2f} ms (p95 {figures['write_p95_ms']:.2f})",
            flush=True,
        )
    reads.write = real_write
    connection.close()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "read_log.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
