#!/usr/bin/env python
"""Sustained load (issue 17, item 6): 8 concurrent clients for 5 minutes, 0 server errors, memory flat.

Usage (a database seeded with ``seed_demo``, e.g. ``BENCH_DB=hai_bench_load bash bench/seed_demo.sh 10000 20``):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hai_bench_load .venv/bin/python bench/load_bench.py

gunicorn with ``gunicorn.conf.py`` and production settings, as ``bench/api_bench.py`` starts it. Every
client cycles through the endpoints of ``api_bench.ENDPOINTS`` (lists, a retrieve, statistics) as a
coordinator, with every answer cached or not as it comes (no cache emptying: this is steady traffic).
Counts every status; a 5xx or a connection without an answer is a server error. Every 10 s it records
each gunicorn worker's resident memory; "flat" compares the mean of the last minute with the mean of the
second minute (after the cohorts are built), per worker. gunicorn's own recycling (max_requests) is off
for the run, so a leak cannot hide behind a replaced worker. Writes ``bench/results/load.json``.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_bench import ENDPOINTS, ROOT, rss_kb, worker_pids  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=300)
    args = parser.parse_args()
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        "THROTTLE_USER": "1000000/min",
        "LOG_LEVEL": "WARNING",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "REQUIRE_2FA": "0",
    }
    setup = (
        "from django.contrib.auth import get_user_model; from sites.models import Membership;"
        "from api.tokens import create_token;"
        "u, _ = get_user_model().objects.get_or_create(username='bench-load-coordinator');"
        "Membership.objects.get_or_create(user=u, role='coordinator', centre=None);"
        "from knox.models import AuthToken; AuthToken.objects.filter(user=u).delete();"
        "print(create_token(u, 'coordinator')[1]);"
        "from registry.models import Implantation; print(' '.join(map(str, Implantation.objects.values_list('id', flat=True)[:2000])))"
    )
    out = (
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c", setup],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()
    )
    token, ids = out[-2], [int(i) for i in out[-1].split()]
    env.update(
        WEB_CONCURRENCY=str(args.workers),
        GUNICORN_THREADS=str(args.threads),
        GUNICORN_BIND=f"127.0.0.1:{args.port}",
        GUNICORN_ACCESS_LOG="",
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_MAX_REQUESTS_JITTER="0",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "registry.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    statuses, latencies, lock, stop = {}, [], threading.Lock(), threading.Event()
    memory = []  # (seconds since start, {pid: kB})

    def client(number):
        rng = random.Random(number)
        connection = None
        while not stop.is_set():
            label, path, params = rng.choice(ENDPOINTS)
            full = path.format(id=rng.choice(ids)) + ("?" + urlencode(params) if params else "")
            started = time.perf_counter()
            try:
                connection = connection or http.client.HTTPConnection("127.0.0.1", args.port, timeout=300)
                connection.request("GET", full, headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status, connection = "no answer", None
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                latencies.append((time.perf_counter() - started) * 1000)

    try:
        for _ in range(200):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
                probe.request("GET", "/health/", headers={"Host": "127.0.0.1"})
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        load_before = os.getloadavg()
        begun = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        while time.monotonic() - begun < args.seconds:
            time.sleep(10)
            memory.append((round(time.monotonic() - begun), {pid: rss_kb(pid) for pid in worker_pids(server.pid)}))
            print(f"{memory[-1][0]:4d} s  {sum(statuses.values()):6d} requests  {statuses}", flush=True)
        stop.set()
        for thread in threads:
            thread.join(300)
        load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(60)

    def mean_by_worker(window):
        samples = [sample for at, sample in memory if window[0] <= at <= window[1]]
        pids = set().union(*samples) if samples else set()
        return {pid: statistics.mean(s[pid] for s in samples if s.get(pid)) for pid in pids}

    second_minute = mean_by_worker((60, 120))
    last_minute = mean_by_worker((args.seconds - 60, args.seconds))
    growth = {
        str(pid): round((last_minute[pid] - second_minute[pid]) / second_minute[pid] * 100, 1)
        for pid in second_minute
        if pid in last_minute
    }
    latencies.sort()
    server_errors = sum(count for status, count in statuses.items() if status == "no answer" or int(status) >= 500)
    results = {
        "machine": f"{os.cpu_count()} cores",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "gunicorn": f"{args.workers} gthread workers x {args.threads} threads, no recycling during the run",
        "clients": args.clients,
        "seconds": args.seconds,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in statuses.items()},
        "server_errors": server_errors,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * len(latencies)) - 1], 1),
        "worker_rss_mb_second_minute": {str(p): round(v / 1024) for p, v in second_minute.items()},
        "worker_rss_mb_last_minute": {str(p): round(v / 1024) for p, v in last_minute.items()},
        "worker_rss_growth_percent": growth,
    }
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "load.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
