"""API fuzzing from the app's own OpenAPI schema (schemathesis), in-process over ASGI.

Every operation gets requests that fit its schema and requests that do not (negative mode), as an
admin (so the handlers run, not only the authentication), on SQLite and PostgreSQL, with the
ingest and rollout link on a real broker, stored results and escalations and a signing key, so
that the queries return rows and rollouts can start. The one assertion is the
issue's: no response is a 5xx. A 4xx is the API saying what is wrong with the request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import get_client, shutdown_lifespans

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.auth import create_token
from edgecascade.cloud.services import Services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter, decode_inbound
from edgecascade.shared.codec import encode
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.topics import Kind, Topic
from tests.fuzz.strategies import SCALE
from tests.utils.detections import box, store_detection_judged
from tests.utils.factories import make_escalation, make_result, make_state

# The statuses that report a device or gateway beyond the cloud (the fleet's commands): a 5xx
# the operation documents is its answer about the device, not a failure of the server.
GATEWAY = (502, 503, 504)
EXAMPLES = 25  # per operation and mode: some 40 operations x 2 modes x 2 databases in ~1 min


def _seed(services: Services) -> None:
    """A few rows of every kind, so list endpoints serialise real rows."""
    writer = StoreWriter(services.engine, services.blobs)
    items = []
    for device in ("cam1", "cam2"):
        for kind, message, body in (
            (Kind.STATE, make_state(), None),
            (Kind.RESULT, make_result(device=device), None),
            (Kind.ESCALATION, *make_escalation(device=device)),
        ):
            topic = Topic("site1", device, kind)
            items.append(decode_inbound(topic, encode(message, body), 1.0))
    writer.write(items)
    # Detection answers: boxes of the edge (a result) and of the cloud (a verdict) to list,
    # count and draw.
    face, person = box("face", 0.8, 4, 4), box("person", 0.6, 20, 10)
    store_detection_judged(services, [face], [face, person], "site1", "cam1", captured_at=1.0)
    store_detection_judged(services, [person], None, "site1", "cam2", captured_at=2.0)


@pytest.fixture
def app(
    database_url: str, tmp_path: Path, broker: MosquittoBroker
) -> Iterator[tuple[FastAPI, str]]:
    settings = CloudSettings(
        database_url=database_url,
        data_dir=tmp_path / "cloud",
        mqtt=broker.settings,
        # Diagnostics of the fuzzer's made-up devices: nobody answers, a 504 soon.
        fleet={"command_timeout_s": 0.05},
    )
    generate_keys(settings.signing_key_path.parent)
    application = create_app(settings)  # with its ingest and rollout link on a real broker
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", application)  # starts lifespan
        services: Services = application.state.services
        _seed(services)
        with services.sessions() as session:
            token = create_token(session, "fuzzer", "admin")
        application.state.schema = schema
        yield application, token
    finally:
        shutdown_lifespans()  # closes the services (database, blob store) of the app


def _streams(definition: dict[str, Any]) -> bool:
    ok = definition.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


def test_no_request_gets_a_server_error(app: tuple[FastAPI, str]) -> None:
    application, token = app
    schema = application.state.schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    labels = {op.label for op in operations}
    assert {"GET /api/alerts", "PUT /api/alerts/rules", "GET /api/alerts/{alert_id}"} <= labels
    headers = {"Authorization": f"Bearer {token}"}
    for operation in operations:
        if _streams(operation.definition.raw):
            continue  # server-sent events never end: nothing to answer, and no input to fuzz
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            raw = operation.definition.raw
            if mode is GenerationMode.NEGATIVE and not (
                raw.get("parameters") or "requestBody" in raw
            ):
                continue  # nothing to make invalid

            @settings(
                max_examples=EXAMPLES * SCALE,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode), auth=st.booleans())
            def fuzz(case: schemathesis.Case[Any], auth: bool) -> None:
                # Mostly as an admin; sometimes with the token the case itself generated.
                response = case.call(headers=headers if auth or case.headers is None else None)
                documented = case.operation.definition.raw.get("responses", {})
                if response.status_code in GATEWAY and str(response.status_code) in documented:
                    return  # a device that does not answer: documented, not a server error
                case.validate_response(response, checks=[not_a_server_error])

            fuzz()


def test_a_value_the_database_refuses_is_a_422_that_says_why(app: tuple[FastAPI, str]) -> None:
    """The net under every endpoint: a path parameter without a pattern (here the rollout id)
    carrying NUL reaches the query; PostgreSQL refuses it, and the answer is the request's fault."""
    application, token = app
    headers = {"Authorization": f"Bearer {token}"}
    with get_client(cast(Any, application)) as client:  # its ASGI type is narrower than ours
        response = client.get("/api/rollouts/ro-%00x", headers=headers)
    if application.state.services.engine.dialect.name == "postgresql":
        assert response.status_code == 422, response.text
        assert "NUL" in response.json()["detail"]
    else:  # SQLite stores and compares NUL like any character: simply not found
        assert response.status_code == 404, response.text
