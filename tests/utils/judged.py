"""Escalations the cloud has judged, stored for tests: ``store_judged``.

The edge's result and its escalation go through the real store writer (so the frame lands in the
blob store and the result's top-k names the edge model's labels); the verdict is a row as a
worker would write it.
"""

from __future__ import annotations

import time
from typing import Any

from edgecascade.cloud.db.models import Verdict
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.messages import EscalationHeader
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import inbound
from tests.utils.factories import LABELS, make_escalation, make_result


def store_judged(
    services: Services,
    site: str = "s1",
    device: str = "cam-1",
    *,
    edge: str = "cat",
    cloud: str | None = "dog",
    captured_at: float | None = None,
    **verdict: Any,
) -> EscalationHeader:
    """An escalation of ``edge`` with the cloud's verdict ``cloud`` (None: not judged yet)."""
    result = make_result(
        site, device, label=edge, score=0.4, captured_at=captured_at or time.time()
    )
    header, jpeg = make_escalation(site, device, result=result)
    StoreWriter(services.engine, services.blobs).write(
        [
            inbound(site, device, Kind.RESULT, result),
            inbound(site, device, Kind.ESCALATION, header, jpeg),
        ]
    )
    if cloud is None:
        return header
    row = verdict_row(
        header.msg_id, result.msg_id, site=site, device=device, edge=edge, cloud=cloud, **verdict
    )
    with services.sessions() as session:
        session.add(row)
        session.commit()
    return header


def verdict_row(
    escalation_id: str,
    result_id: str,
    *,
    site: str = "s1",
    device: str = "cam-1",
    edge: str = "cat",
    cloud: str = "dog",
    **overrides: Any,
) -> Verdict:
    """A worker's verdict row on an escalation of ``edge``: the cloud says ``cloud``."""
    index = LABELS.index(cloud) if cloud in LABELS else 0
    fields: dict[str, Any] = {
        "escalation_id": escalation_id,
        "msg_id": make_result().msg_id,
        "result_id": result_id,
        "site_id": site,
        "device_id": device,
        "created_at": time.time(),
        "worker_id": "w1",
        "model_name": "cloud",
        "model_version": "2",
        "model_sha256": "0" * 64,
        "label": cloud,
        "label_index": index,
        "score": 0.9,
        "top": [{"index": index, "label": cloud, "score": 0.9}],
        "edge_model_name": "mobilenet_v2",
        "edge_model_version": "1.0.0",
        "edge_label": edge,
        "edge_score": 0.4,
        "agrees": edge == cloud,
        "inference_ms": 3.0,
    }
    fields.update(overrides)
    return Verdict(**fields)
