"""Bring a database up to the newest schema: ``alembic upgrade head``, programmatically.

No ``alembic.ini`` is needed: the script location is this package's ``migrations`` folder, and the
connection is handed to ``migrations/env.py`` through ``Config.attributes`` (a URL in a main option
would go through ConfigParser interpolation and break on the ``%`` of an encoded ``search_path``).
On PostgreSQL a transaction-scoped advisory lock serialises replicas that start at the same time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from edgecascade.cloud.db.engine import make_engine
from edgecascade.cloud.errors import MigrationError

logger = logging.getLogger(__name__)
# Alembic announces each of its plugins at INFO on every run; the upgrades themselves stay.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"
_PG_MIGRATION_LOCK = 0x45434D31  # "ECM1": any constant, the same in every replica


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for this package's migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_engine(engine: Engine) -> None:
    """Run every pending migration on ``engine``'s database in one transaction."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            command.upgrade(alembic_config(conn), "head")
    except SQLAlchemyError as exc:
        raise MigrationError(
            f"migrating database {engine.url.render_as_string(hide_password=True)} failed: {exc}"
        ) from exc


def upgrade(url: str) -> None:
    """Run every pending migration on the database at ``url``."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()
    logger.info("database schema is at revision %s", head_revision())
