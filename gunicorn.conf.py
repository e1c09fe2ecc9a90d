"""How gunicorn serves the registry: the Dockerfile, docker-compose.yml and the benchmarks in bench/ all
start it with this file, so production serves what was measured (issue 16).

Every figure can be changed from the environment without a new image.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")

# Threads, not only processes: a request spends much of its time waiting on PostgreSQL and Redis,
# and each process holds its own statistics cohort (about 300 MB at 100,000 implantations), so a
# few processes with a few threads each serve more than many single-threaded processes.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "3"))

# Longer than a full CSV export of every implantation (about 10 s at 100,000, bench/README.md),
# with room for a loaded machine: a streaming export must not be killed half-way.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then so memory cannot creep (the cohort is rebuilt lazily in the new one);
# the jitter keeps all workers from restarting at the same moment.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
# The control socket would be written into the working directory, which the app user cannot write.
control_socket_disable = True
