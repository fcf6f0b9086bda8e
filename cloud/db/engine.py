"""Engines and sessions.

SQLite (the single-machine default) gets WAL journaling and a busy timeout on every connection so
the ingest writer and API readers in other threads do not trip over each other; PostgreSQL is used
as configured (a ``search_path`` can come with the URL: ``?options=-csearch_path%3Dschema``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from edgecascade.cloud.errors import StoreError

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``; raises :class:`StoreError` for anything else."""
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise StoreError(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(
            f"database URL {url!r} uses {backend!r}; supported: {', '.join(SUPPORTED_BACKENDS)}"
        )
    return backend


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the directory of a SQLite file if needed."""
    if backend_of(url) == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for request handlers; objects stay usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
