"""Cloud test fixtures: settings on a test database, open services, a message helper and the
API served by uvicorn in a thread (a real server, lifespan included)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from edgecascade.cloud.app import create_app
from edgecascade.cloud.auth import create_token
from edgecascade.cloud.services import Services, open_services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import Inbound, decode_inbound
from edgecascade.shared.codec import encode
from edgecascade.shared.topics import Kind, Topic
from tests.utils.mqtt import wait_until


@pytest.fixture
def cloud_settings(database_url: str, tmp_path: Path) -> CloudSettings:
    """Cloud settings on the parametrised test database (SQLite file or PostgreSQL schema)."""
    return CloudSettings(database_url=database_url, data_dir=tmp_path / "cloud")


@pytest.fixture
def services(cloud_settings: CloudSettings) -> Iterator[Services]:
    """A migrated database and blob store, without ingest."""
    opened = open_services(cloud_settings, start_ingest=False)
    yield opened
    opened.close()


def inbound(
    site: str, device: str, kind: Kind, message: BaseModel, body: bytes | None = None
) -> Inbound:
    """A message as the ingest hands it to the store: through the real encoder and decoder."""
    topic = Topic(site, device, kind)
    return decode_inbound(topic, encode(message, body), time.time())


@contextmanager
def serving(app: FastAPI, timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` (lifespan included) under uvicorn in a thread; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout, step=0.01)
    if not server.started:
        server.should_exit = True
        raise RuntimeError("the test API server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


class ApiClient(httpx.Client):
    """An HTTP client of a served app, with the app's services at hand."""

    services: Services

    def token(self, role: str, name: str | None = None) -> str:
        """A new token of ``role``, straight into the app's database."""
        with self.services.sessions() as session:
            return create_token(session, name or f"test-{role}-{time.monotonic_ns()}", role)

    def as_role(self, role: str | None) -> dict[str, str]:
        """Headers of a fresh token of ``role`` (none for None)."""
        return {} if role is None else {"Authorization": f"Bearer {self.token(role)}"}


@pytest.fixture
def client(cloud_settings: CloudSettings) -> Iterator[ApiClient]:
    """The API served for real (no ingest), as a viewer: requests carry a viewer token."""
    app = create_app(cloud_settings, start_ingest=False)
    with serving(app) as base_url, ApiClient(base_url=base_url, timeout=10) as api:
        api.services = app.state.services
        api.headers.update(api.as_role("viewer"))
        yield api
