#!/usr/bin/env python
"""Cold API pages at two registry sizes, before and after a change, beside the database's own cost (issue 16).

    .venv/bin/python bench/page_ratios.py --before 8209590 [--sizes 10000 100000] [--centres 100]

For each size, a PostgreSQL database ``hai_bench_ratio_<size>`` seeded with ``seed_demo --implantations
<size> --centres <centres> --seed 1`` (kept between runs; ``--reseed`` makes it afresh). Two servers per
size, each gunicorn with this repository's ``gunicorn.conf.py`` at one worker and one thread, ``DEBUG=0``,
a Redis cache: the code at ``--before`` (a git worktree) and the work tree as it is. Requests alternate
between the two servers, and Redis is emptied before every request, so every page is cold: its count,
its cache key, the data version. Coordinator token (live rows, no release).

Beside each page: one psycopg query returning the same rows in the same order with the same derived
columns (treated, days to first dose, surgeon sequence), written by hand; the script checks that it
returns the ids the API returned. Prints p50 per page, size and code, the growth p50(large) / p50(small)
and API / SQL; writes ``bench/results/page_ratios.json``.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
PYTHON = sys.executable
REDIS_DB = 9

# Derived columns as registry.selectors.annotate_derived defines them: a dose is a treatment row that was
# not held; the surgeon's sequence counts pre-registry pumps and the surgeon's earlier implantations
# (same day: lower id first).
SELECT = """
SELECT i.*, p.pseudonym, c.code AS centre, s.code AS surgeon_code, m.name AS pump_model_name,
       d.given_on IS NOT NULL AS treated, d.given_on - i.implanted_on AS days_to_first_dose,
       s.prior_pump_count + 1 + (
           SELECT count(*) FROM registry_implantation e
           WHERE e.surgeon_id = i.surgeon_id
             AND (e.implanted_on < i.implanted_on OR (e.implanted_on = i.implanted_on AND e.id < i.id))
       ) AS surgeon_sequence
FROM registry_implantation i
JOIN registry_patient p ON p.id = i.patient_id
JOIN sites_centre c ON c.id = p.centre_id
JOIN sites_surgeon s ON s.id = i.surgeon_id
LEFT JOIN registry_pumpmodel m ON m.id = i.pump_model_id
LEFT JOIN LATERAL (
    SELECT t.given_on FROM registry_treatment t
    WHERE t.implantation_id = i.id AND t.dose_change IS DISTINCT FROM 'held'
    ORDER BY t.given_on LIMIT 1
) d ON true
"""
# The API's default order for a coordinator: by id (api.pagination.StableOrderingFilter).
ORDER = " ORDER BY i.id LIMIT 50"

PAGES = [
    ("implantations, page of 50", "/api/v1/implantations/", {}, SELECT + ORDER),
    ("one implantation", "/api/v1/implantations/{id}/", {}, SELECT + " WHERE i.id = %(id)s"),
    (
        "implantations, filtered (adjuvant, never treated)",
        "/api/v1/implantations/",
        {"indication": "adjuvant", "treated": "false"},
        # "Never treated" as NOT EXISTS, the form PostgreSQL plans well (an IS NULL on the lateral first dose
        # was estimated at one row and sorted every adjuvant implantation: 158 ms against 5.5 ms).
        SELECT
        + " WHERE i.indication = 'adjuvant' AND NOT EXISTS (SELECT 1 FROM registry_treatment x"
        + " WHERE x.implantation_id = i.id AND x.dose_change IS DISTINCT FROM 'held')"
        + ORDER,
    ),
    # The floor: what any authenticated request through the same middleware, token check and DRF view costs,
    # whatever it reads (here the three-row pump catalogue).
    (
        "floor: the pump catalogue (3 rows)",
        "/api/v1/pump-models/",
        {},
        "SELECT name, manufacturer, kind, reservoir_volume_ml, nominal_flow_ml_per_day, active"
        " FROM registry_pumpmodel ORDER BY id",
    ),
]


def psql(*sql, database="postgres"):
    for statement in sql:
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                statement,
            ],
            check=True,
        )


def database_exists(name):
    out = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-At",
            "-d",
            "postgres",
            "-c",
            f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() == "1"


def environment(database):
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "THROTTLE_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "REQUIRE_2FA": "0",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "1",
        "GUNICORN_ACCESS_LOG": "",
        "OPENBLAS_NUM_THREADS": "1",
    }


def seed(database, size, centres, reseed):
    if database_exists(database) and not reseed:
        return
    psql(f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}")
    env = {**environment(database), "DEBUG": "1"}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    started = time.perf_counter()
    subprocess.run(
        [PYTHON, "manage.py", "seed_demo", "--implantations", str(size), "--centres", str(centres), "--seed", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"seeded {database} in {time.perf_counter() - started:.0f} s", flush=True)


def bench_user(database):
    setup = (
        "from django.contrib.auth import get_user_model; from sites.models import Membership;"
        "u, _ = get_user_model().objects.get_or_create(username='bench-coordinator');"
        "u.set_password('bench-password-1'); u.save();"
        "Membership.objects.get_or_create(user=u, role='coordinator', centre=None);"
        "from registry.models import Implantation;"
        "print(Implantation.objects.order_by('-implanted_on', '-id').values_list('id', flat=True)[200])"
    )
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-v", "0", "-c", setup],
        cwd=ROOT,
        env=environment(database),
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def worktree(ref):
    path = Path("/tmp/hai-bench-before")
    commit = subprocess.run(
        ["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    if path.exists():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True).stdout.strip()
        if head == commit:
            return path, commit
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True, capture_output=True)
    return path, commit


class Server:
    def __init__(self, tree, database, port):
        env = {**environment(database), "GUNICORN_BIND": f"127.0.0.1:{port}"}
        self.port = port
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "--config", str(CONFIG), "registry.wsgi:application"],
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.token = None
        for _ in range(200):
            try:
                self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                self.connection.request(
                    "POST",
                    "/api/v1/auth/token/",
                    body=json.dumps({"username": "bench-coordinator", "password": "bench-password-1"}),
                    headers={"Content-Type": "application/json", "Host": "127.0.0.1"},
                )
                self.token = json.loads(self.connection.getresponse().read())["token"]
                break
            except (ConnectionRefusedError, OSError, http.client.HTTPException):
                time.sleep(0.3)
        if self.token is None:
            raise RuntimeError(f"gunicorn on {port} did not answer")

    def get(self, path):
        started = time.perf_counter()
        self.connection.request("GET", path, headers={"Authorization": f"Token {self.token}", "Host": "127.0.0.1"})
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {body[:300]!r}")
        return elapsed, json.loads(body)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def ids_of(body):
    """The rows' ids in order (the pump catalogue's rows are known by name, its SQL's first column)."""
    rows = body["results"] if "results" in body else [body]
    return [row["id"] if "id" in row else row["name"] for row in rows]


def bare_sql(database, sql, params, repeats):
    # As the app connects (registry.settings): without JIT.
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", options="-c jit=off") as connection:
        times, rows = [], None
        for _ in range(repeats):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), [row[0] for row in rows]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="git ref of the code to compare against")
    parser.add_argument("--sizes", type=int, nargs=2, default=[10000, 100000])
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--requests", type=int, default=41, help="per page, size and code")
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()

    before_tree, before_commit = worktree(args.before)
    after_commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    cache = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    results = {
        "machine": f"{os.cpu_count()} cores",
        "server": "gunicorn, gunicorn.conf.py, 1 gthread worker x 1 thread, DEBUG=0, Redis emptied before each request",
        "before": before_commit,
        "after": after_commit,
        "load_average_before": open("/proc/loadavg").read().split()[:3],
        "pages": {},
        "bare_sql_ms": {},
    }
    for size in args.sizes:
        database = f"hai_bench_ratio_{size}"
        seed(database, size, args.centres, args.reseed)
        record_id = bench_user(database)
        servers = {"before": Server(before_tree, database, 8811), "after": Server(ROOT, database, 8812)}
        try:
            for label, path, params, sql in PAGES:
                full = path.format(id=record_id) + ("?" + urlencode(params) if params else "")
                for server in servers.values():  # imports, first connection
                    for _ in range(3):
                        server.get(full)
                times = {code: [] for code in servers}
                api_ids = {}
                for _ in range(args.requests):
                    for code, server in servers.items():
                        cache.flushdb()
                        elapsed, body = server.get(full)
                        times[code].append(elapsed)
                        api_ids[code] = ids_of(body)
                sql_ms, sql_ids = bare_sql(database, sql, {"id": record_id}, args.requests)
                for code in servers:
                    if api_ids[code] != sql_ids:
                        raise RuntimeError(f"{label} at {size}: the bare SQL's rows differ from the {code} API's")
                results["bare_sql_ms"].setdefault(label, {})[size] = round(sql_ms, 2)
                for code in servers:
                    results["pages"].setdefault(label, {}).setdefault(code, {})[size] = round(
                        statistics.median(times[code]), 2
                    )
                print(
                    f"{size:>7} {label:52s} before {statistics.median(times['before']):6.1f} ms  "
                    f"after {statistics.median(times['after']):6.1f} ms  bare SQL {sql_ms:5.2f} ms",
                    flush=True,
                )
        finally:
            for server in servers.values():
                server.stop()
    small, large = args.sizes
    print(
        f"\n| page | code | p50 at {small // 1000}k | p50 at {large // 1000}k | growth | bare SQL at {large // 1000}k | API ÷ SQL |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for label, codes in results["pages"].items():
        sql = results["bare_sql_ms"][label][large]
        for code, figures in codes.items():
            growth = figures[large] / figures[small]
            ratio = figures[large] / sql
            figures["growth"], figures["api_over_sql"] = round(growth, 2), round(ratio, 1)
            print(
                f"| {label} | {code} | {figures[small]:.1f} ms | {figures[large]:.1f} ms | {growth:.2f} | {sql:.2f} ms | {ratio:.0f}× |"
            )
    results["load_average_after"] = open("/proc/loadavg").read().split()[:3]
    print("load average before / after:", results["load_average_before"], results["load_average_after"])
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "page_ratios.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
