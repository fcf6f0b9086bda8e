"""Detection answers for tests: ``make_detection_result`` and ``store_detection_judged``.

The edge's result and escalation go through the real store writer; the verdict and the cloud's
boxes are the rows the worker writes (:mod:`cloud.detection`'s functions on a real agreement),
stored with the worker's own box insert.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import insert

from edgecascade.cloud.db.models import Verdict
from edgecascade.cloud.db.upsert import insert_boxes
from edgecascade.cloud.detection import Judgement, cloud_box_rows, label_summary, verdict_fields
from edgecascade.cloud.services import Services
from edgecascade.cloud.store import StoreWriter
from edgecascade.shared.boxes import agreement
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.ids import new_message_id
from edgecascade.shared.messages import EscalationHeader, ModelRef, ResultMessage
from edgecascade.shared.topics import Kind
from tests.cloud.conftest import inbound
from tests.utils.factories import jpeg_bytes

EDGE = ModelRef(name="face-short-range", version="1.0.0")
CLOUD = ModelRef(name="face-full-range", version="1.0.0", sha256="c" * 64)
LABELS = ("face", "person")


def box(
    label: str, score: float, x0: float, y0: float, side: float = 20.0, **kw: Any
) -> DetectedObject:
    return DetectedObject(label=label, score=score, box=(x0, y0, x0 + side, y0 + side), **kw)


def make_detection_result(
    boxes: list[DetectedObject], *, captured_at: float | None = None, **overrides: Any
) -> ResultMessage:
    """A detection result with these boxes (best first) in a 64x48 frame."""
    found = sorted(boxes, key=lambda b: -b.score)
    fields: dict[str, Any] = {
        "task": "detection",
        "detections": found,
        "top": label_summary(found, LABELS),
        "frame_id": f"det-{new_message_id()}",
        "captured_at": time.time() if captured_at is None else captured_at,
        "model": EDGE,
        "frame_size": (64, 48),
    }
    fields.update(overrides)
    return ResultMessage.model_validate(fields)


def store_detection_judged(
    services: Services,
    edge: list[DetectedObject],
    cloud: list[DetectedObject] | None,
    site: str = "s1",
    device: str = "cam-1",
    *,
    captured_at: float | None = None,
    audit: bool = False,
) -> EscalationHeader:
    """A detection result with ``edge`` boxes, its escalation, and (unless ``cloud`` is None)
    the cloud's verdict with ``cloud`` boxes."""
    result = make_detection_result(edge, captured_at=captured_at)
    header = EscalationHeader(
        task="detection",
        result_id=result.msg_id,
        frame_id=result.frame_id,
        captured_at=result.captured_at,
        model=EDGE,
        top=result.top,
        detections=result.detections,
        reason="uncertain",
        width=64,
        height=48,
        audit=audit,
    )
    StoreWriter(services.engine, services.blobs).write(
        [
            inbound(site, device, Kind.RESULT, result),
            inbound(site, device, Kind.ESCALATION, header, jpeg_bytes(64, 48)),
        ]
    )
    if cloud is None:
        return header
    found = sorted(cloud, key=lambda b: -b.score)
    judgement = Judgement(found, agreement(header.detections, found), 0, 0, 5.0)
    row = {
        "escalation_id": header.msg_id,
        "msg_id": new_message_id(),
        "result_id": header.result_id,
        "site_id": site,
        "device_id": device,
        "created_at": time.time(),
        "worker_id": "w1",
        "model_name": CLOUD.name,
        "model_version": CLOUD.version,
        "model_sha256": CLOUD.sha256,
        "edge_model_name": EDGE.name,
        "edge_model_version": EDGE.version,
        "inference_ms": 5.0,
        "audit": audit,
        **verdict_fields(header, judgement, LABELS),
    }
    with services.engine.begin() as conn:
        conn.execute(insert(Verdict), [row])
        insert_boxes(conn, cloud_box_rows(site, device, header, CLOUD, found))
    return header
