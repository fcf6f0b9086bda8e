"""The cloud's fixtures (settings on SQLite and PostgreSQL, the served API) for dashboard tests,
and the browser tests' screenshot folder named in the terminal summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cloud.conftest import client, cloud_settings, services  # noqa: F401

SCREENSHOTS = pytest.StashKey[Path]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    folder = config.stash.get(SCREENSHOTS, None)
    if folder is not None:
        terminalreporter.write_line(f"dashboard screenshots: {folder}")
