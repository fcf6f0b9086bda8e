"""The cloud's fixtures (settings on SQLite and PostgreSQL, the served API) for dashboard tests,
and the browser tests' screenshot folder named in the terminal summary."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright

from tests.cloud.conftest import client, cloud_settings, services  # noqa: F401

SCREENSHOTS = pytest.StashKey[Path]()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Root in a container has no user namespaces for chromium's sandbox; /dev/shm may be tiny.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
TIMEOUT_MS = 30_000


@pytest.fixture
def tab(playwright: Playwright) -> Iterator[Page]:
    """A page of a fresh headless chromium against a served API; page errors fail the test."""
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: apt-get install chromium (scripts/test does)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    browser.close()
    assert not errors, errors


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"dashboard screenshots: {folder}")
