#!/usr/bin/env python
"""A full monthly report run at registry size, on this machine.

    .venv/bin/python bench/report_bench.py [--sizes 10000 100000] [--centres 100] [--before REF [--before-sizes 10000]]

For each size: a fresh PostgreSQL database seeded with ``seed_demo``, one
Celery worker with two worker processes (``-c 2``) on Redis, then
``run_reports`` for October 2026. Records the run's wall time (snapshot, every
centre's HTML+PDF and email), the slowest and mean render per centre, the
queries per centre report, and the worker processes' peak memory. Writes
``bench/results/reports.json``.

With ``--before REF``, the same database is also run by the code at REF (a git worktree, as
``bench/page_ratios.py`` makes it), worker and command alike, first, for the sizes in
``--before-sizes``: the two runs of a size read the same registry in the same session.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgres://postgres@127.0.0.1:5432/postgres"


def sh(args, env, **kwargs):
    return subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True, **kwargs)


def peak_rss_mb(pids):
    peaks = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = round(int(line.split()[1]) / 1024, 1)
        except FileNotFoundError:
            pass
    return peaks


def process_tree(pid):
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *[int(c) for c in children]]


def seed_database(size, centres, seed):
    name = f"hai_bench_reports_{size}"
    dsn = f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    work = Path(tempfile.mkdtemp(prefix="hai-report-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DATABASE_URL": dsn,
        "REDIS_URL": "redis://127.0.0.1:6379/8",
        "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(work / "mail"),
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
        "OPENBLAS_NUM_THREADS": "1",  # as the Dockerfile sets it
        # Production settings (DEBUG off: no query log growing in the workers), for a bench.
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "REQUIRE_2FA": "0",
    }
    sh([sys.executable, "manage.py", "migrate", "-v", "0"], env)
    started = time.perf_counter()
    sh(
        [
            sys.executable,
            "manage.py",
            "seed_demo",
            "--centres",
            str(centres),
            "--implantations",
            str(size),
            "--seed",
            str(seed),
        ],
        env,
        timeout=3600,
    )
    seed_seconds = round(time.perf_counter() - started, 1)
    return name, dsn, work, env, seed_seconds


def one_run(size, centres, seed_seconds, dsn, work, env, tree=ROOT, code="after"):
    work = work / code.split()[0]
    env = {
        **env,
        "EMAIL_FILE_PATH": str(work / "mail"),
        "MEDIA_ROOT": str(work / "media"),
        "CELERY_TASK_DEFAULT_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
    }
    work.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "registry",
            "worker",
            "-Q",
            env["CELERY_TASK_DEFAULT_QUEUE"],
            "-c",
            "2",
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "worker.log", "w"),
    )
    try:
        time.sleep(3)
        clock = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "run_reports", "--period", "2026-10"],
            cwd=tree,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        with psycopg.connect(dsn) as connection:
            while True:
                row = connection.execute(
                    "SELECT id, status, started_at, finished_at FROM reports_reportrun ORDER BY id DESC LIMIT 1"
                ).fetchone()
                if row and row[3]:
                    break
                if time.perf_counter() - clock > 3600:
                    raise RuntimeError("run did not finish within an hour")
                time.sleep(1)
            wall = time.perf_counter() - clock
            peaks = peak_rss_mb(process_tree(worker.pid))
            run_id, status, run_started, run_finished = row
            stats = connection.execute(
                "SELECT count(*), count(*) FILTER (WHERE delivery_state = 'sent'), avg(render_seconds), max(render_seconds) "
                "FROM reports_centrereport WHERE run_id = %s",
                (run_id,),
            ).fetchone()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    emails = sum(p.read_text().count("Subject: HAI Registry benchmark report") for p in (work / "mail").glob("*.log"))
    return {
        "code": code,
        "implantations": size,
        "centres": centres,
        "seed_seconds": seed_seconds,
        "run_status": status,
        "run_seconds": round((run_finished - run_started).total_seconds(), 1),
        "wall_seconds_from_command": round(wall, 1),
        "reports": stats[0],
        "sent": stats[1],
        "emails_written": emails,
        "render_seconds_mean": round(stats[2], 2),
        "render_seconds_max": round(stats[3], 2),
        "worker_peak_rss_mb": peaks,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--centres", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--before", help="git ref of the code to compare against, run first on the same database")
    parser.add_argument("--before-sizes", type=int, nargs="+", default=[10000])
    args = parser.parse_args()
    before = None
    if args.before:
        sys.path.insert(0, str(ROOT / "bench"))
        from page_ratios import worktree

        before = worktree(args.before)
    results = []
    load_before = open("/proc/loadavg").read().split()[:3]
    for size in args.sizes:
        name, dsn, work, env, seed_seconds = seed_database(size, args.centres, args.seed)
        runs = []
        if before and size in args.before_sizes:
            runs.append((before[0], f"before ({before[1][:7]})"))
        runs.append((ROOT, "after"))
        for tree, code in runs:
            result = one_run(size, args.centres, seed_seconds, dsn, work, env, tree=tree, code=code)
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "reports.json").write_text(
        json.dumps(
            {
                "machine": f"{os.cpu_count()} cores",
                "load_average_before": load_before,
                "load_average_after": open("/proc/loadavg").read().split()[:3],
                "runs": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
