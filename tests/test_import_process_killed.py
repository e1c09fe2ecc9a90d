"""The process confirming an import killed half-way: nothing of that file is written (issue 17, item 6).

A separate process does what a data manager's browser does through the admin (the upload and its
preview, then the confirmation) and is killed with SIGKILL while the confirmation's transaction is open
in PostgreSQL: no warm shutdown, no exception handler, the socket simply closes. PostgreSQL then rolls
the transaction back; not one implantation and not one history row of the file may remain, and the same
file imported again afterwards gives each row exactly once.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psycopg
import pytest
from django.db import connection

from registry.models import Implantation, Patient
from sites.models import Role

from .factories import CentreFactory, PatientFactory, SurgeonFactory, user_with_role
from .test_import import good_row, to_csv
from .workers import ROOT, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ROWS = 150

# Run in the child process: the admin's own views through Django's test client, logged in as the data
# manager. It says PREVIEWED once the preview (a dry run, in a transaction of its own) is done.
CONFIRM_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import django
    django.setup()
    from django.test.utils import setup_test_environment
    setup_test_environment()
    from django.contrib.auth import get_user_model
    from django.test import Client
    from tests.test_import import upload
    client = Client()
    client.force_login(get_user_model().objects.get(username="dm-a"))
    preview = upload(client, open(sys.argv[1]).read())
    assert preview.context["confirm_form"] is not None, preview.content[-2000:]
    print("PREVIEWED", flush=True)
    if sys.argv[2] == "pause":
        # Gives the test time to see the preview's transaction end before the confirmation starts.
        import time; time.sleep(1)
    done = client.post("/admin/registry/implantation/process_import/", dict(preview.context["confirm_form"].initial))
    print("CONFIRMED", done.status_code, flush=True)
    """
)


def child_env(tmp_path):
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "IMPORT_TEMPORARY_ROOT": str(tmp_path / "imports"),
        "DATABASE_CONN_MAX_AGE": "0",
    }


def open_transactions(dsn, own_pid):
    """Other backends on this database inside a transaction for more than half a second."""
    with psycopg.connect(dsn, autocommit=True) as watcher:
        return watcher.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid NOT IN (%s, pg_backend_pid()) "
            "AND xact_start < now() - interval '0.5 seconds'",
            [own_pid],
        ).fetchall()


def test_a_process_killed_during_an_import_confirmation_leaves_nothing_of_the_file(tmp_path):
    centre = CentreFactory(code="CENTRE-A", name="Centre A")
    user_with_role(Role.DATA_MANAGER, centre, username="dm-a")
    SurgeonFactory(centre=centre, code="SURG-01")
    Patient.objects.bulk_create(
        [PatientFactory.build(centre=centre, pseudonym=f"PT-{number:06d}") for number in range(1, ROWS + 1)]
    )
    csv_path = tmp_path / "implantations.csv"
    csv_path.write_text(to_csv([good_row(f"PT-{number:06d}") for number in range(1, ROWS + 1)]))
    env = child_env(tmp_path)
    db = connection.settings_dict
    dsn = f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        own_pid = cursor.fetchone()[0]

    child = subprocess.Popen(
        [sys.executable, "-c", CONFIRM_SCRIPT, str(csv_path), "pause"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "child.log", "w"),  # the log lines; stdout carries only the script's two words
        text=True,
        start_new_session=True,
    )
    try:
        said = child.stdout.readline().strip()
        assert said == "PREVIEWED", said + (tmp_path / "child.log").read_text()[-3000:]
        time.sleep(1.2)  # the preview's transaction is over: the one now open is the confirmation's
        confirming = []

        def confirmation_under_way():
            assert child.poll() is None, "the confirmation finished before it could be killed: import more rows"
            confirming[:] = open_transactions(dsn, own_pid)
            return bool(confirming)

        wait_for(confirmation_under_way, 60, "the confirmation never opened its transaction")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    assert "CONFIRMED" not in child.stdout.read()

    # PostgreSQL notices the closed socket and rolls the transaction back; count once its backend is gone.
    wait_for(lambda: not open_transactions(dsn, own_pid), 30, "the killed process's transaction is still open")
    assert Implantation.objects.count() == 0
    assert Implantation.history.count() == 0

    # Nothing half-done stands in the way: the same file, imported again, gives each row once.
    again = subprocess.run(
        [sys.executable, "-c", CONFIRM_SCRIPT, str(csv_path), "go"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "CONFIRMED 302" in again.stdout, again.stdout[-3000:] + again.stderr[-3000:]
    assert Implantation.objects.count() == ROWS
    assert Implantation.history.count() == ROWS
