"""PostgreSQL restarted under API load: clean 503s, recovery without a process restart, no half-saved write.

Issue 17, item 6. The registry is served by gunicorn (gunicorn.conf.py, production settings) from a
PostgreSQL cluster of this test's own (initdb in a temporary folder, on a free port), loaded with a copy
of the test database; the test stops that cluster as a crash would (``pg_ctl stop -m immediate``) while
four clients read and write, then starts it again. The machine's PostgreSQL, which the other tests use,
is never touched.
"""

import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from api.errors import DATABASE_DOWN_DETAIL
from api.tokens import create_token
from registry.models import Patient
from sites.models import Role

from . import factories
from .workers import ROOT, free_port, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PAYLOAD = {"centre": "CENTRE-A", "birth_year": 1958, "sex": "female", "primary_tumour": "colorectal"}


class PrivatePostgres:
    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            if os.environ.get("CI"):
                raise RuntimeError("PostgreSQL's server binaries are not installed")
            pytest.skip("PostgreSQL's server binaries are not installed")
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="hai-pg-"))
        self.data = self.folder / "data"
        # initdb refuses to run as root: the cluster belongs to the postgres user then.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_owner:
            shutil.chown(self.folder, "postgres")

    def _run(self, *command):
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True, timeout=120)

    def initialise(self):
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def crash(self):
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self):
        subprocess.run(
            [*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, name):
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    server.initialise()
    server.start()
    yield server
    server.remove()


def copy_test_database(server, name):
    """The test database (migrated, with this test's committed rows) into the private cluster."""
    source = connection.settings_dict
    subprocess.run(
        [str(server.bin / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", name], check=True
    )
    dump = subprocess.run(
        [
            "pg_dump",
            "-Fc",
            "-h",
            source["HOST"] or "127.0.0.1",
            "-p",
            str(source["PORT"] or 5432),
            "-U",
            "postgres",
            source["NAME"],
        ],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(
        ["pg_restore", "--no-owner", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-d", name],
        input=dump,
        check=True,
        capture_output=True,
    )


def serve(database_url, port, log):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "EMAIL_HOST": "localhost",
        "REQUIRE_2FA": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "4",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "registry.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def request(base, token, method="GET", path="/api/v1/patients/", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def worker_pids(master):
    return set(Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split())


def test_postgresql_restarted_under_load_gives_503s_recovers_and_half_saves_nothing(private_postgres, tmp_path):
    factories.CentreFactory(code="CENTRE-A", name="Centre A")
    centre = factories.CentreFactory._meta.model.objects.get(code="CENTRE-A")
    data_manager = factories.user_with_role(Role.DATA_MANAGER, centre, username="dm-a")
    coordinator = factories.user_with_role(Role.COORDINATOR, username="coordinator")
    _, writer_token = create_token(data_manager, Role.DATA_MANAGER)
    _, reader_token = create_token(coordinator, Role.COORDINATOR)
    copy_test_database(private_postgres, "hai")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        web = serve(private_postgres.url("hai"), port, log)
        try:

            def up():
                try:
                    return request(base, reader_token)[0] == 200
                except OSError:
                    return False

            wait_for(up, 60, lambda: "gunicorn did not come up:\n" + log_path.read_text()[-3000:])
            workers_before = worker_pids(web)

            outcomes, stop = [], threading.Event()

            def client(kind):
                while not stop.is_set():
                    try:
                        if kind == "write":
                            outcome = request(base, writer_token, "POST", body=PAYLOAD)
                        else:
                            outcome = request(base, reader_token)
                    except OSError as error:  # no HTTP answer at all
                        outcome = ("no answer", "", repr(error).encode())
                    outcomes.append((kind, time.monotonic(), *outcome))

            clients = [threading.Thread(target=client, args=(kind,)) for kind in ("read", "read", "write", "write")]
            for thread in clients:
                thread.start()
            time.sleep(2)
            private_postgres.crash()
            time.sleep(2)
            private_postgres.start()
            back = time.monotonic()
            time.sleep(4)
            stop.set()
            for thread in clients:
                thread.join(60)

            # Recovered without a process restart: the same worker answers, and every kind of request works.
            assert web.poll() is None and worker_pids(web) == workers_before
            assert request(base, reader_token)[0] == 200
            assert request(base, writer_token, "POST", body=PAYLOAD)[0] == 201
        finally:
            web.kill()
            web.wait(30)

    statuses = [status for _, _, status, _, _ in outcomes]
    assert set(statuses) <= {200, 201, 503}, sorted(set(map(str, statuses)))
    unavailable = [(content_type, body) for _, _, status, content_type, body in outcomes if status == 503]
    assert unavailable, "the restart was never felt: no 503 while PostgreSQL was down"
    assert all(
        content_type.startswith("application/json") and json.loads(body) == {"detail": DATABASE_DOWN_DETAIL}
        for content_type, body in unavailable
    )
    late = [status for _, at, status, _, _ in outcomes if at > back + 2]
    assert late and set(late) <= {200, 201}, "requests still failed two seconds after PostgreSQL was back"

    # No half-saved write: every patient the API answered 201 for is there, and every patient row in the
    # database has the history row written in the same transaction.
    created = {json.loads(body)["id"] for kind, _, status, _, body in outcomes if kind == "write" and status == 201}
    assert created
    history = Patient.history.model._meta.db_table
    with psycopg.connect(private_postgres.url("hai")) as restored:
        ids = {row[0] for row in restored.execute(f"SELECT id FROM {Patient._meta.db_table}")}
        without_history = restored.execute(
            f"SELECT count(*) FROM {Patient._meta.db_table} p "
            f"WHERE NOT EXISTS (SELECT 1 FROM {history} h WHERE h.id = p.id)"
        ).fetchone()[0]
    assert created <= ids
    assert without_history == 0
