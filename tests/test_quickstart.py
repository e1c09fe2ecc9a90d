"""docs/analysis/quickstart.py runs as written against a seeded registry (issue 15: the Python quick-start runs in CI).

A real HTTP server (pytest-django's live server) over a seeded registry and its first release; the script
runs in its own process with the demo investigator's login, exactly as the README tells an analyst.
"""

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from registry import demo
from reports import releases

QUICKSTART = Path(__file__).resolve().parent.parent / "docs" / "analysis" / "quickstart.py"


@pytest.fixture
def seeded_release(transactional_db):
    demo.seed_registry(3, 300, 5, reference_date=min(demo.REFERENCE_DATE, datetime.date.today()))
    release = releases.freeze_release("quickstart")
    yield release
    releases.discard_all_releases()  # its schema is not one of the tables the test database flushes


@pytest.mark.releases_by_hand
def test_the_python_quickstart_runs_against_a_seeded_registry(seeded_release, live_server):
    environment = {
        **os.environ,
        "HAI_URL": live_server.url,
        "HAI_USERNAME": "investigator",
        "HAI_PASSWORD": demo.DEMO_PASSWORD,
    }
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"release {seeded_release.name}" in done.stdout
    assert "overall survival: n=" in done.stdout and "the registry's survival endpoint: n=" in done.stdout
