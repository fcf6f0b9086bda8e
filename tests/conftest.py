"""Shared fixtures: throwaway Mosquitto brokers and a throwaway PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from edgecascade.brokers import MosquittoBroker
from edgecascade.postgres import PostgresServer, find_server_binaries, scratch_database

if TYPE_CHECKING:
    from playwright.sync_api import Playwright

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "EC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private broker on a free port; tests may stop, kill and restart it."""
    b = MosquittoBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[type[MosquittoBroker] | object]:
    brokers: list[MosquittoBroker] = []

    def make(name: str) -> MosquittoBroker:
        b = MosquittoBroker(tmp_path / name)
        b.start()
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL server of the test session's own (a private cluster when the server binaries
    are installed), else the server at ``EC_TEST_PG_URL``."""
    bindir = None if os.environ.get("EC_TEST_PG_URL") else find_server_binaries()
    if bindir is None:
        yield PG_ADMIN_URL
        return
    with PostgresServer(bindir) as url:
        yield url


@pytest.fixture(scope="session")
def pg_server_url(pg_admin_url: str) -> Iterator[str]:
    """A PostgreSQL database created for this test session and dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    with ExitStack() as stack:
        try:
            url = stack.enter_context(scratch_database(pg_admin_url, "ec_test_"))
        except sqlalchemy.exc.OperationalError as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"PostgreSQL not reachable at {pg_admin_url}: {exc}")
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a storage test on both back ends: a SQLite file and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud.db'}"
    base: str = request.getfixturevalue("pg_server_url")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    # A fresh schema per test keeps tests independent inside the session's database.
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(base)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright driver per test process: its sync API runs an event loop in this thread,
    and a second one started while the first lives fails ("Sync API inside the asyncio loop")."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p
