"""Browser fixtures for the end-to-end tests: a real headless Chromium against pytest-django's ``live_server``.

Chromium is Debian's (``apt-get install chromium``), not a Playwright download.
Without it the e2e tests are skipped on a workstation, but fail under CI
(``CI`` set), so a CI image that lost its browser cannot pass silently.

On failure a screenshot and the page's HTML are written to ``$E2E_ARTIFACTS_DIR``
(default ``/tmp/hai-e2e``).
"""

import os
import re
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS_DIR = Path(os.environ.get("E2E_ARTIFACTS_DIR", "/tmp/hai-e2e"))
TIMEOUT_MS = 15_000


def _under_ci():
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _missing_chromium():
    return f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set E2E_CHROMIUM)."


def pytest_collection_modifyitems(config, items):
    # Skip before any fixture runs (no test database is built for nothing).
    # Under CI the browser fixture fails instead.
    if CHROMIUM.exists() or _under_ci():
        return
    skip = pytest.mark.skip(reason=_missing_chromium())
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item so the page fixture knows whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def _orm_next_to_playwright():
    """Allow ORM calls from the test thread for exactly as long as the browser runs.

    Playwright's sync API keeps an asyncio loop running in this thread, and
    Django then refuses ORM calls from the test (and from the database flush
    at teardown) unless DJANGO_ALLOW_ASYNC_UNSAFE is set.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def browser(_orm_next_to_playwright):
    if not CHROMIUM.exists():
        if _under_ci():
            pytest.fail(f"CI is set, so the e2e tests may not be skipped. {_missing_chromium()}", pytrace=False)
        pytest.skip(_missing_chromium())
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context per test; records failed static files and JavaScript errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"JavaScript error: {error}"))
    page.on(
        "response",
        lambda response: (
            page.problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and "/static/" in response.url
            else None
        ),
    )
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        stem = ARTIFACTS_DIR / re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        try:
            page.screenshot(path=f"{stem}.png", full_page=True)
            Path(f"{stem}.html").write_text(page.content())
            print(f"\nE2E failure artefacts: {stem}.png, {stem}.html (last URL {page.url})")
        except Exception as exc:  # the browser may be the thing that failed
            print(f"\nCould not save e2e failure artefacts: {exc}")
    context.close()
