"""The cloud service: stores what the fleet reports and answers queries about it.

Layout: :mod:`cloud.settings` (configuration), :mod:`cloud.db` (SQLAlchemy models, engine,
Alembic migrations), :mod:`cloud.blobs` (escalated frames on disk), :mod:`cloud.store` (the
idempotent write path), :mod:`cloud.ingest` (MQTT to store), :mod:`cloud.api` and
:mod:`cloud.app` (the FastAPI application), :mod:`cloud.cli` (``edgecascade cloud``).
Importing this package imports nothing heavy.
"""
