"""The cloud's fixtures (settings on SQLite and PostgreSQL, the served API) for dashboard tests."""

from tests.cloud.conftest import client, cloud_settings, services  # noqa: F401
