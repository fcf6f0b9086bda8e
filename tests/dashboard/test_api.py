"""The dashboard's read endpoints and its event stream, on the served API (SQLite and
PostgreSQL): what they report is checked against what was stored."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from edgecascade.cloud.dashboard.events import stream
from edgecascade.cloud.db.models import Verdict
from edgecascade.cloud.store import Inbound, StoreWriter
from edgecascade.shared.codec import encode
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import ApiClient, inbound
from tests.utils.factories import make_escalation, make_result, make_state, make_telemetry


def store(client: ApiClient, *items: Inbound) -> None:
    services = client.services
    StoreWriter(services.engine, services.blobs).write(list(items))


def add_verdict(client: ApiClient, escalation_id: str, result_id: str, agrees: bool) -> None:
    with client.services.sessions() as session:
        session.add(
            Verdict(
                escalation_id=escalation_id,
                msg_id=make_result().msg_id,
                result_id=result_id,
                site_id="s1",
                device_id="cam-1",
                created_at=time.time(),
                worker_id="w1",
                model_name="cloud",
                model_version="2",
                model_sha256="0" * 64,
                label="cat" if agrees else "dog",
                label_index=0,
                score=0.97,
                top=[{"index": 0, "label": "cat", "score": 0.97}],
                edge_model_name="edge",
                edge_model_version="1",
                edge_label="cat",
                edge_score=0.4,
                agrees=agrees,
                inference_ms=3.5,
            )
        )
        session.commit()


def test_whoami_and_the_fleet_from_state_telemetry_and_results(client: ApiClient) -> None:
    assert client.get("/api/dashboard/whoami").json()["role"] == "viewer"
    assert client.get("/api/dashboard/fleet", headers={"Authorization": ""}).status_code == 401
    telemetry = make_telemetry(fps=7.5, queues={"outbox.result": 3, "outbox.escalation": 1})
    results = [make_result("s1", "cam-1", escalated=i == 0) for i in range(4)]
    store(
        client,
        inbound("s1", "cam-1", Kind.STATE, make_state()),
        inbound("s1", "cam-1", Kind.TELEMETRY, telemetry),
        *(inbound("s1", "cam-1", Kind.RESULT, r) for r in results),
        inbound("s1", "cam-2", Kind.STATE, make_state(status="offline")),
    )
    items = {d["device"]: d for d in client.get("/api/dashboard/fleet").json()["items"]}
    cam1, cam2 = items["cam-1"], items["cam-2"]
    assert cam1["status"] == "online" and cam2["status"] == "offline"
    assert cam1["fps"] == 7.5 and cam1["outbox_depth"] == 4
    assert cam1["results_recent"] == 4 and cam1["escalation_rate"] == 0.25
    assert cam1["model_name"] == "mobilenet_v2" and cam1["model_version"] == "1.0.0"
    assert cam2["fps"] is None and cam2["escalation_rate"] is None

    detail = client.get("/api/dashboard/devices/s1/cam-1").json()
    assert detail["device"]["device"] == "cam-1"
    assert detail["telemetry"]["queues"] == {"outbox.result": 3, "outbox.escalation": 1}
    missing = client.get("/api/dashboard/devices/s1/nope")
    assert missing.status_code == 404 and "'nope'" in missing.json()["detail"]


def test_cascade_health_counts_rates_and_bytes(client: ApiClient) -> None:
    results = [make_result("s1", "cam-1", escalated=i < 2) for i in range(10)]
    escalations = [make_escalation("s1", "cam-1", result=r) for r in results[:2]]
    store(
        client,
        *(inbound("s1", "cam-1", Kind.RESULT, r) for r in results),
        *(inbound("s1", "cam-1", Kind.ESCALATION, h, jpeg) for h, jpeg in escalations),
    )
    add_verdict(client, escalations[0][0].msg_id, results[0].msg_id, agrees=True)
    add_verdict(client, escalations[1][0].msg_id, results[1].msg_id, agrees=False)

    body = client.get("/api/dashboard/health", params={"window_s": 600, "bucket_s": 10}).json()
    totals = body["totals"]
    assert len(body["points"]) == 60
    assert (totals["results"], totals["escalated"]) == (10, 2)
    assert (totals["verdicts"], totals["disagreed"]) == (2, 1)
    assert totals["escalation_rate"] == 0.2 and totals["disagreement"] == 0.5
    # Sizes: the messages as the devices sent them (the stored row lacks the model's sha256,
    # so a re-encoded result is that much shorter).
    sent_result = len(encode(results[0]))
    assert sent_result - 100 < body["result_bytes"] <= sent_result
    wire = [len(encode(header, jpeg)) for header, jpeg in escalations]
    for got, sent in zip(sorted([body["escalation_bytes"]] * 2), sorted(wire), strict=True):
        assert abs(got - sent) < 200  # the row keeps the edge's top-1, not its top-k
    frames = sum(len(jpeg) for _, jpeg in escalations)
    assert totals["uplink_bytes"] >= 10 * (sent_result - 100) + frames
    assert totals["every_frame_bytes"] == pytest.approx(10 * body["escalation_bytes"], abs=10)
    assert totals["uplink_ratio"] == pytest.approx(
        totals["uplink_bytes"] / totals["every_frame_bytes"]
    )

    refused = client.get("/api/dashboard/health", params={"window_s": 86400, "bucket_s": 1})
    assert refused.status_code == 422
    assert "86400" in refused.json()["detail"] and "bucket_s 1" in refused.json()["detail"]


def test_the_event_stream_sends_a_change_when_the_store_moves(client: ApiClient) -> None:
    assert client.get("/api/events", headers={"Authorization": ""}).status_code == 401
    snapshots: list[dict[str, object]] = []
    with client.stream("GET", "/api/events", timeout=httpx.Timeout(10)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            snapshots.append(json.loads(line[5:]))
            if len(snapshots) == 1:
                store(client, inbound("s1", "cam-1", Kind.RESULT, make_result("s1", "cam-1")))
            else:
                break
    first, second = snapshots
    assert first["results"] == 0 and second["results"] == 1


def test_a_stream_ends_soon_after_the_server_starts_stopping(client: ApiClient) -> None:
    flag = {"stopping": False}

    async def read() -> list[str]:
        chunks = []
        async for chunk in stream(client.services.sessions, lambda: flag["stopping"], 0.05):
            chunks.append(chunk)
            flag["stopping"] = True  # uvicorn's should_exit, as `edgecascade cloud` wires it
        return chunks

    started = time.monotonic()
    chunks = asyncio.run(read())
    assert time.monotonic() - started < 5  # not the 30 s a stream lasts otherwise
    assert chunks[0].startswith("retry:") and len(chunks) <= 2
