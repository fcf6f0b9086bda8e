"""A leaked viewer token: what it opens and what it does not, for every operation of the API.

The operations come from the app's own OpenAPI schema, so an endpoint added later is covered without
editing this test: every read answers a viewer, every write refuses it with 403 and changes
nothing (the tables hold the same rows before and after); the token list is not for viewers
either.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, inspect, select, table

from edgecascade.cloud.app import create_app
from edgecascade.cloud.services import Services
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter, decode_inbound
from edgecascade.shared.codec import encode
from edgecascade.shared.manifest import generate_keys
from edgecascade.shared.topics import Kind, Topic
from tests.cloud.conftest import ApiClient, serving
from tests.utils.factories import make_escalation, make_result, make_state

ADMIN_READS = {"/api/tokens"}  # who holds which token is not a viewer's business
PATH_VALUES = {
    "msg_id": "01234567-89ab-7def-8123-456789abcdef",
    "name": "fashion-cloud",
    "version": "1.0.0",
    "rollout_id": "ro-0123456789ab",
    "run_id": "tr-0123456789ab",
    "site": "site1",
    "device": "cam1",
    "alert_id": "01234567-89ab-7def-8123-456789abcdee",
}


def _row_counts(services: Services) -> dict[str, int]:
    with services.engine.connect() as conn:
        names = inspect(conn).get_table_names()
        return {
            name: int(conn.scalar(select(func.count()).select_from(table(name))) or 0)
            for name in names
        }


def _seed(services: Services) -> str:
    topic = Topic("site1", "cam1", Kind.ESCALATION)
    header, jpeg = make_escalation()
    items = [decode_inbound(topic, encode(header, jpeg), 1.0)]
    for kind, message in ((Kind.STATE, make_state()), (Kind.RESULT, make_result())):
        wire = Topic("site1", "cam1", kind)
        items.append(decode_inbound(wire, encode(message), 1.0))
    StoreWriter(services.engine, services.blobs).write(items)
    return header.msg_id


def test_a_viewer_token_reads_everything_and_changes_nothing(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path / "cloud")
    generate_keys(settings.signing_key_path.parent)
    app = create_app(settings, start_ingest=False)
    with serving(app) as base, ApiClient(base_url=base, timeout=30) as client:
        client.services = app.state.services
        escalation = _seed(client.services)
        viewer = client.as_role("viewer")
        before = _row_counts(client.services)
        reads = writes = 0
        values = {**PATH_VALUES, "msg_id": escalation}
        for template, operations in app.openapi()["paths"].items():
            if not template.startswith("/api"):
                continue
            path = template.format(**values)
            for method, operation in operations.items():
                ok = operation.get("responses", {}).get("200", {}).get("content", {})
                if "text/event-stream" in ok:  # never ends: only whether it opens for a viewer
                    with client.stream(method.upper(), path, headers=viewer) as stream:
                        assert stream.status_code == 200, (method, path)
                    reads += 1
                    continue
                response = client.request(method.upper(), path, headers=viewer, json={})
                if method == "get" and template not in ADMIN_READS:
                    reads += 1
                    # Read, or not found / not given enough parameters: never "not allowed".
                    assert response.status_code in (200, 404, 422), (method, path, response.text)
                else:
                    writes += 1
                    assert response.status_code == 403, (method, path, response.text)
                    assert "has role viewer" in response.json()["detail"]
        # What a viewer reads includes the frames and the model files: say so, and check it.
        frame = client.get(f"/api/escalations/{escalation}/frame", headers=viewer)
        assert frame.status_code == 200 and frame.content.startswith(b"\xff\xd8")
        assert client.get("/api/models/signing-key", headers=viewer).status_code == 200
        after = _row_counts(client.services)
        # Only the viewer token's own last-used time may have been written.
        assert after == before
    assert reads >= 10 and writes >= 6, (reads, writes)
