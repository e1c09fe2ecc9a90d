#!/usr/bin/env python
"""API speed at registry size: gunicorn on this machine, 8 concurrent clients.

Usage (a database seeded with ``seed_demo --implantations 100000``):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_bench_api .venv/bin/python bench/api_bench.py

Starts gunicorn on 127.0.0.1 with ``gunicorn.conf.py`` (``--workers`` x ``--threads``), gets a
coordinator token, warms every worker (each builds its statistics cohort; timed apart),
then for each endpoint sends ``--requests`` requests from ``--clients``
threads and reports p50/p95 latency. Beside each figure: the time of the bare
SQL that fetches the same rows, measured in the same run. Last, a full CSV
export of all implantations, with the serving worker's peak memory before and
after. Writes ``bench/results/api.json``.
"""

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent

ENDPOINTS = [
    ("list implantations (page of 50)", "/api/v1/implantations/", {}),
    (
        "list implantations, filtered",
        "/api/v1/implantations/",
        {"indication": "adjuvant", "treated": "false", "implanted_after": "2022-01-01"},
    ),
    ("list implantations (page of 500)", "/api/v1/implantations/", {"page_size": 500}),
    ("retrieve implantation", "/api/v1/implantations/{id}/", {}),
    ("list patients", "/api/v1/patients/", {}),
    ("list complications", "/api/v1/complications/", {"type": "biliary_sclerosis"}),
    ("list follow-ups", "/api/v1/follow-ups/", {}),
    (
        "stats: complications by centre",
        "/api/v1/stats/complications/",
        {"type": "catheter_related", "group_by": "centre"},
    ),
    (
        "stats: complications by surgeon experience",
        "/api/v1/stats/complications/",
        {"type": "any", "group_by": "surgeon_experience"},
    ),
    (
        "stats: pump use by indication, filtered",
        "/api/v1/stats/pump-use/",
        {"group_by": "indication", "implanted_after": "2020-01-01"},
    ),
    ("stats: overall survival by centre", "/api/v1/stats/survival/", {"endpoint": "overall", "group_by": "centre"}),
    (
        "stats: pump survival, surgeon volume",
        "/api/v1/stats/survival/",
        {"endpoint": "pump_failure", "group_by": "surgeon_volume"},
    ),
]

BARE_SQL = {
    "list": """SELECT i.*, p.centre_id, c.code, s.code FROM registry_implantation i
               JOIN registry_patient p ON p.id = i.patient_id JOIN sites_centre c ON c.id = p.centre_id
               JOIN sites_surgeon s ON s.id = i.surgeon_id ORDER BY i.implanted_on DESC, i.id DESC LIMIT %(limit)s""",
    "retrieve": "SELECT i.* FROM registry_implantation i WHERE i.id = %(id)s",
    "patients": "SELECT p.*, c.code FROM registry_patient p JOIN sites_centre c ON c.id = p.centre_id ORDER BY p.pseudonym, p.id LIMIT 50",
    "complications": """SELECT x.* FROM registry_complication x JOIN registry_complicationtype t ON t.id = x.type_id
                        ORDER BY x.onset_on, x.id LIMIT 50""",
    "follow-ups": "SELECT * FROM registry_followup ORDER BY contact_on, id LIMIT 50",
    "cohort": """SELECT i.id, i.patient_id, p.centre_id, c.code, i.indication, p.sex, i.surgeon_id, s.code, i.implanted_on
                 FROM registry_implantation i JOIN registry_patient p ON p.id = i.patient_id
                 JOIN sites_centre c ON c.id = p.centre_id JOIN sites_surgeon s ON s.id = i.surgeon_id""",
}


def bare_sql_ms(dsn, name, params, repeats=15):
    with psycopg.connect(dsn) as connection:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(BARE_SQL[name], params)
                cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def bare_sql_for(label):
    if "retrieve" in label:
        return "retrieve"
    if label.startswith("stats"):
        return "cohort"
    for key in ("patients", "complications", "follow-ups"):
        if key in label:
            return key
    return "list"


def request(connection, path, token):
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
    response = connection.getresponse()
    body = response.read()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {body[:300]!r}")
    return elapsed, body


def load(port, path, token, clients, total):
    latencies, errors = [], []
    per_client = max(1, total // clients)

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for _ in range(per_client):
                latencies.append(request(connection, path, token)[0])
        except Exception as error:  # recorded, not hidden
            errors.append(str(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    latencies.sort()
    p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(p95, 1),
        "per_second": round(len(latencies) / wall, 1),
    }


def peak_rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def worker_pids(master_pid):
    out = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in out]


DATA_VERSION_KEY = "registry:data-version"  # reports.cohort.DATA_VERSION_KEY


def empty_cache_but_the_data_version(cache):
    for key in cache.scan_iter():
        if not key.endswith(DATA_VERSION_KEY.encode()):
            cache.delete(key)


def rss_kb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:  # a worker that has just been replaced
        pass
    return None


def warm_every_worker(port, token, master_pid, workers, parallel, grown_kb=100_000, timeout=600):
    """Statistics requests on fresh connections until each of the ``workers`` worker processes has grown by
    ``grown_kb`` since it was first seen (its cohort: ~300 MB at 100,000 implantations)."""
    started = time.perf_counter()
    baseline = {}

    def one():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            request(connection, "/api/v1/stats/pump-use/?group_by=centre", token)
        finally:
            connection.close()

    while time.perf_counter() - started < timeout:
        pids = worker_pids(master_pid)
        for pid in pids:
            baseline.setdefault(pid, rss_kb(pid) or 0)
        grown = [pid for pid in pids if (rss_kb(pid) or 0) - baseline[pid] >= grown_kb]
        if len(pids) == workers and len(grown) == workers:
            return round(time.perf_counter() - started, 1)
        threads = [threading.Thread(target=one) for _ in range(parallel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    raise RuntimeError("not every worker built its cohort")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=160)
    args = parser.parse_args()
    dsn = os.environ["DATABASE_URL"]
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        "THROTTLE_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
        # Production settings otherwise refuse console mail and ask the bench user for a second factor.
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "REQUIRE_2FA": "0",
    }
    setup = (
        "from django.contrib.auth import get_user_model; from sites.models import Membership;"
        "u, _ = get_user_model().objects.get_or_create(username='bench-coordinator');"
        "u.set_password('bench-password-1'); u.save();"
        "Membership.objects.get_or_create(user=u, role='coordinator', centre=None);"
        "from registry.models import Implantation; print(Implantation.objects.order_by('-id').values_list('id', flat=True).first())"
    )
    last_id = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", setup],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    # gunicorn.conf.py, as the Dockerfile starts it; the sizes from the command line.
    env.update(
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        GUNICORN_BIND=f"127.0.0.1:{args.port}",
        GUNICORN_ACCESS_LOG="",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "registry.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache = redis.Redis.from_url(env["REDIS_URL"])
    results = {
        "machine": f"{os.cpu_count()} cores",
        "gunicorn": f"{args.workers} gthread workers x {args.threads} threads",
        "clients": args.clients,
        "endpoints": [],
    }
    try:
        for _ in range(100):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                connection.request(
                    "POST",
                    "/api/v1/auth/token/",
                    body=json.dumps({"username": "bench-coordinator", "password": "bench-password-1"}),
                    headers={"Content-Type": "application/json", "Host": "127.0.0.1"},
                )
                token = json.loads(connection.getresponse().read())["token"]
                break
            except (ConnectionRefusedError, OSError):
                time.sleep(0.3)
        # Warm every worker: the first statistics request in a process builds its cohort (seconds at 100k),
        # and a request is served by whichever worker accepts its connection. So: new connections, as many
        # at once as the server has threads, until every worker's memory shows a cohort built (timed apart).
        results["warm_up_seconds"] = warm_every_worker(
            args.port, token, server.pid, args.workers, args.workers * args.threads
        )
        results["workers_warmed"] = len(worker_pids(server.pid))
        print(f"every worker warmed in {results['warm_up_seconds']} s", flush=True)
        for label, path, params in ENDPOINTS:
            full = path.format(id=last_id) + ("?" + urlencode(params) if params else "")
            # Uncached: every cached answer and count is dropped first (strict parameters refuse a throw-away
            # one), the data version kept, so the cohort itself stays built.
            single = http.client.HTTPConnection("127.0.0.1", args.port, timeout=300)
            uncached = []
            for _ in range(3):
                empty_cache_but_the_data_version(cache)
                uncached.append(request(single, full, token)[0])
            figures = load(args.port, full, token, args.clients, args.requests)
            figures["uncached_single_ms"] = round(statistics.median(uncached), 1)
            sql_name = bare_sql_for(label)
            figures["bare_sql_ms"] = bare_sql_ms(
                dsn, sql_name, {"limit": params.get("page_size", 50), "id": int(last_id)}
            )
            figures.update(endpoint=label, path=full)
            results["endpoints"].append(figures)
            print(
                f"{label:46s} p50 {figures['p50_ms']:7.1f} ms  p95 {figures['p95_ms']:7.1f} ms  {figures['per_second']:6.1f}/s  "
                f"uncached alone {figures['uncached_single_ms']:7.1f} ms  bare SQL {figures['bare_sql_ms']:7.2f} ms",
                flush=True,
            )
        # Full CSV export: stream every implantation, watch the workers' peak memory.
        before = {pid: peak_rss_kb(pid) for pid in worker_pids(server.pid)}
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=600)
        started = time.perf_counter()
        connection.request(
            "GET", "/api/v1/implantations/?format=csv", headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"}
        )
        response = connection.getresponse()
        size, lines, first_byte = 0, 0, None
        while chunk := response.read(65536):
            first_byte = first_byte or time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        after = {pid: peak_rss_kb(pid) for pid in worker_pids(server.pid)}
        grew = max((after.get(pid) or 0) - (before.get(pid) or 0) for pid in after)
        results["csv_export"] = {
            "rows": lines - 1,
            "megabytes": round(size / 1e6, 1),
            "seconds": round(elapsed, 1),
            "first_byte_seconds": round(first_byte or 0, 2),
            "worker_peak_rss_growth_mb": round(grew / 1024, 1),
            "worker_peak_rss_mb_after": round(max(after.values()) / 1024, 1),
        }
        print("CSV export:", results["csv_export"], flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
