"""Alembic environment: runs migrations on a connection or URL handed over by the caller.

:func:`cloud.db.migrate.upgrade` passes an open connection in ``config.attributes["connection"]``
(no ``alembic.ini`` is needed at runtime). For the ``alembic`` command line during development, the
URL comes from ``config.attributes["url"]`` or the ``sqlalchemy.url`` main option. A PostgreSQL
``search_path`` given in the URL's ``options`` is honoured: tables and ``alembic_version`` go into
the connection's current schema.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from edgecascade.cloud.db.models import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database: pass attributes['connection'] or ['url']")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_online()
