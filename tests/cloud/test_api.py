"""The HTTP API served for real: tokens and roles, escalations with verdicts and frames, metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from edgecascade.brokers import MosquittoBroker
from edgecascade.cloud.app import create_app
from edgecascade.cloud.db.models import ApiToken, LabelOverride, Verdict
from edgecascade.cloud.settings import CloudSettings
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.codec import encode
from edgecascade.shared.mqtt import Outgoing
from edgecascade.shared.topics import Kind, topic
from tests.cloud.conftest import ApiClient, inbound, serving
from tests.utils.factories import MODEL, make_escalation, make_result
from tests.utils.mqtt import publish_all, wait_until


def test_every_api_call_needs_a_token_with_the_role(client: ApiClient) -> None:
    anonymous = {"Authorization": ""}
    response = client.get("/api/results", headers=anonymous)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "API token is required" in response.json()["detail"]
    bad = client.get("/api/results", headers={"Authorization": "Bearer ec_not-a-token"})
    assert bad.status_code == 401 and "not valid or was revoked" in bad.json()["detail"]
    assert client.get("/healthz", headers=anonymous).status_code == 200  # probes need none
    assert client.get("/api/results").status_code == 200  # the client's viewer token

    # A viewer may not manage tokens; the refusal names the token's role and the one needed.
    refused = client.get("/api/tokens")
    assert refused.status_code == 403 and "has role viewer; this needs admin" in refused.text
    operator = client.get("/api/tokens", headers=client.as_role("operator"))
    assert operator.status_code == 403

    # An admin creates a token over the API; it works at once and is stored only hashed.
    admin = client.as_role("admin")
    created = client.post("/api/tokens", json={"name": "grafana", "role": "viewer"}, headers=admin)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    grafana = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/devices", headers=grafana).status_code == 200
    again = client.post("/api/tokens", json={"name": "grafana", "role": "admin"}, headers=admin)
    assert again.status_code == 409 and "exists" in again.json()["detail"]
    invalid = client.post("/api/tokens", json={"name": "x/y", "role": "root"}, headers=admin)
    assert invalid.status_code == 422
    listed = client.get("/api/tokens", headers=admin).json()["items"]
    assert "grafana" in [t["name"] for t in listed]
    assert all("token" not in t and "token_sha256" not in t for t in listed)
    with client.services.sessions() as session:
        rows = session.scalars(select(ApiToken)).all()
    assert all(token not in (row.token_sha256, row.name) for row in rows)
    assert any(row.name == "grafana" and row.last_used_at is not None for row in rows)

    # Revoked: refused from the next request on.
    assert client.delete("/api/tokens/grafana", headers=admin).status_code == 204
    assert client.get("/api/devices", headers=grafana).status_code == 401
    assert client.delete("/api/tokens/nobody", headers=admin).status_code == 404


def test_anonymous_read_opens_reads_only(cloud_settings: CloudSettings) -> None:
    settings = CloudSettings.model_validate(
        {**cloud_settings.model_dump(), "api": {"anonymous_read": True}}
    )
    with (
        serving(create_app(settings, start_ingest=False)) as base,
        httpx.Client(base_url=base) as c,
    ):
        assert c.get("/api/results").status_code == 200
        assert c.get("/api/tokens").status_code == 401  # admin reads still need a token
        created = c.post("/api/tokens", json={"name": "x", "role": "admin"})
        assert created.status_code == 401


def test_escalations_come_with_their_verdict_and_frame(client: ApiClient) -> None:
    services = client.services
    judged_result = make_result("s1", "cam-1", score=0.4, label="cat")
    open_result = make_result("s1", "cam-2", score=0.3, label="dog")
    judged, judged_jpeg = make_escalation("s1", "cam-1", result=judged_result)
    waiting, waiting_jpeg = make_escalation("s1", "cam-2", result=open_result)
    StoreWriter(services.engine, services.blobs).write(
        [
            inbound("s1", "cam-1", Kind.ESCALATION, judged, judged_jpeg),
            inbound("s1", "cam-2", Kind.ESCALATION, waiting, waiting_jpeg),
        ]
    )
    with services.sessions() as session:
        session.add(
            Verdict(
                escalation_id=judged.msg_id,
                msg_id=make_result().msg_id,
                result_id=judged.result_id,
                site_id="s1",
                device_id="cam-1",
                created_at=time.time(),
                worker_id="w1",
                model_name="cloud",
                model_version="2",
                model_sha256="0" * 64,
                label="dog",
                label_index=1,
                score=0.97,
                top=[{"index": 1, "label": "dog", "score": 0.97}],
                edge_model_name="edge",
                edge_model_version="1",
                edge_label="cat",
                edge_score=0.4,
                agrees=False,
                inference_ms=3.5,
            )
        )
        session.commit()

    body = client.get("/api/escalations").json()
    assert body["total"] == 2
    by_id = {item["msg_id"]: item for item in body["items"]}
    verdict = by_id[judged.msg_id]["verdict"]
    assert verdict["label"] == "dog" and verdict["agrees"] is False
    assert by_id[waiting.msg_id]["verdict"] is None
    assert by_id[judged.msg_id]["edge_label"] == "cat"

    def ids(**params: str | bool) -> list[str]:
        items = client.get("/api/escalations", params=params).json()["items"]
        return [item["msg_id"] for item in items]

    assert ids(judged=True) == [judged.msg_id]
    assert ids(judged=False) == [waiting.msg_id]
    assert ids(agrees=False) == [judged.msg_id]
    assert ids(device="cam-2") == [waiting.msg_id]

    frame = client.get(by_id[judged.msg_id]["frame_url"])
    assert frame.status_code == 200 and frame.content == judged_jpeg
    assert frame.headers["content-type"] == "image/jpeg"
    unknown = "01234567-89ab-7def-8123-456789abcdef"
    assert client.get(f"/api/escalations/{unknown}/frame").status_code == 404
    assert client.get("/api/escalations/nope/frame").status_code == 422  # not a message id
    assert (
        client.get(by_id[judged.msg_id]["frame_url"], headers={"Authorization": ""}).status_code
        == 401
    )


def test_metrics_count_requests_and_the_ingest(
    cloud_settings: CloudSettings, broker: MosquittoBroker, tmp_path: Path
) -> None:
    settings = CloudSettings.model_validate(
        {**cloud_settings.model_dump(), "mqtt": broker.settings.model_dump()}
    )
    app = create_app(settings)
    with serving(app) as base, httpx.Client(base_url=base) as c:
        services = app.state.services
        assert services.ingestor.wait_connected(10)
        message = make_result("s1", "cam-1")
        publish_all(broker.settings, [Outgoing(topic("s1", "cam-1", Kind.RESULT), encode(message))])
        assert wait_until(lambda: services.ingestor.stats().stored == 1)
        assert c.get("/api/results").status_code == 401
        text = c.get("/metrics").text
    assert "edgecascade_ingest_rows_stored_total 1.0" in text
    assert "edgecascade_ingest_connected 1.0" in text
    assert (
        'edgecascade_http_requests_total{method="GET",route="/api/results",status="401"} 1.0'
        in text
    )


def test_sites_and_a_telemetry_series(client: ApiClient) -> None:
    from edgecascade.shared.messages import Percentiles
    from tests.utils.factories import make_state, make_telemetry

    services = client.services
    samples = [
        make_telemetry(
            "s1",
            "cam-1",
            ts=100.0 + i,
            cpu_percent=10.0 * i,
            queues={"outbox.result": i},
            latency_ms={"invoke": Percentiles(p50=1.0 + i, p95=2.0, p99=3.0)},
        )
        for i in range(5)
    ]
    StoreWriter(services.engine, services.blobs).write(
        [
            inbound("s1", "cam-1", Kind.STATE, make_state("s1", "cam-1")),
            inbound("s1", "cam-2", Kind.STATE, make_state("s1", "cam-2", status="offline")),
            inbound("s2", "cam-9", Kind.RESULT, make_result("s2", "cam-9")),
            *(inbound("s1", "cam-1", Kind.TELEMETRY, sample) for sample in samples),
        ]
    )
    sites = {s["site"]: s for s in client.get("/api/sites").json()["items"]}
    assert (sites["s1"]["devices"], sites["s1"]["online"], sites["s1"]["results"]) == (2, 1, 0)
    assert (sites["s2"]["devices"], sites["s2"]["results"]) == (1, 1)

    params: dict[str, Any] = {
        "site": "s1",
        "device": "cam-1",
        "since": 101,
        "until": 104,
        "field": ["queues.outbox.result", "latency_ms.invoke.p50", "nope.x"],
    }
    series = client.get("/api/telemetry", params=params).json()
    assert [p["ts"] for p in series["points"]] == [101.0, 102.0, 103.0]
    assert [p["cpu_percent"] for p in series["points"]] == [10.0, 20.0, 30.0]
    assert series["points"][0]["fields"] == {
        "queues.outbox.result": 1.0,
        "latency_ms.invoke.p50": 2.0,
        "nope.x": None,
    }
    latest = client.get("/api/telemetry", params={"site": "s1", "device": "cam-1", "limit": 2})
    assert [p["ts"] for p in latest.json()["points"]] == [103.0, 104.0]
    assert client.get("/api/telemetry", params={"site": "s1"}).status_code == 422


def _verdict(result_id: str, escalation_id: str, label: str) -> Verdict:
    return Verdict(
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
        label=label,
        label_index=1,
        score=0.97,
        top=[{"index": 1, "label": label, "score": 0.97}],
        edge_model_name="edge",
        edge_model_version="1",
        edge_label="cat",
        edge_score=0.4,
        agrees=label == "cat",
        inference_ms=3.5,
    )


def test_results_carry_their_provenance_and_the_answer_that_stands(client: ApiClient) -> None:
    """The model's sha256 and the policy in force, stored with each result; the final answer
    beside the edge's: a person's label over the cloud's, the cloud's over the edge's."""
    services = client.services
    sha = MODEL.sha256
    plain, judged, corrected = (
        make_result("s1", "cam-1", label="cat", policy="p-0123456789ab", model=MODEL)
        for _ in range(3)
    )
    StoreWriter(services.engine, services.blobs).write(
        [inbound("s1", "cam-1", Kind.RESULT, r) for r in (plain, judged, corrected)]
    )
    with services.sessions() as session:
        session.add(_verdict(judged.msg_id, judged.msg_id, "dog"))
        session.add(_verdict(corrected.msg_id, corrected.msg_id, "dog"))
        session.add(
            LabelOverride(
                escalation_id=corrected.msg_id,
                label="bird",
                created_by="ops",
                created_at=time.time(),
                note="",
            )
        )
        session.commit()
    items = {i["msg_id"]: i for i in client.get("/api/results").json()["items"]}
    answers = {k: (i["label"], i["final_label"], i["final_source"]) for k, i in items.items()}
    assert answers == {
        plain.msg_id: ("cat", "cat", "edge"),
        judged.msg_id: ("cat", "dog", "cloud"),
        corrected.msg_id: ("cat", "bird", "person"),
    }
    assert {(i["model_sha256"], i["policy"]) for i in items.values()} == {(sha, "p-0123456789ab")}
