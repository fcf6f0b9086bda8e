"""Errors raised by the cloud service.

EdgeCascadeError                  (shared.errors)
 └── CloudError                   anything the cloud service raises on purpose
      ├── StoreError              the database or blob store cannot be used as configured
      └── MigrationError          the database schema could not be brought up to date
"""

from __future__ import annotations

from shared.errors import EdgeCascadeError


class CloudError(EdgeCascadeError):
    """Root of the cloud service's errors."""


class StoreError(CloudError):
    """The database or the blob store cannot be used (unsupported URL, unsafe path, ...)."""


class MigrationError(CloudError):
    """Running the Alembic migrations failed; the message names the database."""
