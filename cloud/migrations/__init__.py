"""Alembic migrations of the cloud database; run them with ``edgecascade cloud migrate``."""
