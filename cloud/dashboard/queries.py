"""The SQL behind the dashboard's summaries: the fleet at a glance and cascade health over time.

Cascade health compares what the fleet uplinked with what sending every frame would have cost.
Neither figure is on the wire any more, so both come from what is stored: a result's size is its
message re-encoded with the wire codec from the stored row; an escalation's is its frame file in
the blob store plus its header, re-encoded the same way. Sending every frame is each result's
frame at the mean size of the frames that were escalated (the same cameras, the same encoding).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from edgecascade.cloud.blobs import BlobNotFound, BlobStore
from edgecascade.cloud.dashboard.boxes import edge_boxes
from edgecascade.cloud.dashboard.buckets import bucket_index
from edgecascade.cloud.db.models import Device, Escalation, Result, Telemetry, Verdict
from edgecascade.shared.codec import encode
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction, ResultMessage

SIZE_SAMPLE = 200  # newest rows re-encoded to size a message
FRAME_HEADER = 8  # the frame codec's magic and header length


def fleet(
    session: Session, window_s: float, only: tuple[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every device (or ``only`` this site and device) with its newest telemetry sample and its
    escalation rate over ``window_s``."""
    samples = _newest_telemetry(session, only)
    recent = _recent_results(session, time.time() - window_s, only)
    devices = select(Device).where(*_one(Device.site_id, Device.device_id, only))
    return [
        _fleet_item(
            device,
            samples.get((device.site_id, device.device_id)),
            recent.get((device.site_id, device.device_id), (0, 0)),
        )
        for device in session.scalars(devices.order_by(Device.site_id, Device.device_id))
    ]


def _newest_telemetry(
    session: Session, only: tuple[str, str] | None
) -> dict[tuple[str, str], Telemetry]:
    """Each device's newest telemetry sample, by (site, device)."""
    newest = (
        select(Telemetry.site_id, Telemetry.device_id, func.max(Telemetry.ts).label("ts"))
        .where(*_one(Telemetry.site_id, Telemetry.device_id, only))
        .group_by(Telemetry.site_id, Telemetry.device_id)
        .subquery()
    )
    rows = session.scalars(
        select(Telemetry).join(
            newest,
            (newest.c.site_id == Telemetry.site_id)
            & (newest.c.device_id == Telemetry.device_id)
            & (newest.c.ts == Telemetry.ts),
        )
    )
    return {(row.site_id, row.device_id): row for row in rows}


def _recent_results(
    session: Session, since: float, only: tuple[str, str] | None
) -> dict[tuple[str, str], tuple[int, int]]:
    """(results, escalated) per (site, device) since ``since``."""
    rows = session.execute(
        select(
            Result.site_id,
            Result.device_id,
            func.count(),
            func.sum(case((Result.escalated.is_(True), 1), else_=0)),
        )
        .where(Result.received_at >= since, *_one(Result.site_id, Result.device_id, only))
        .group_by(Result.site_id, Result.device_id)
    )
    return {(site, device): (int(n), int(escalated or 0)) for site, device, n, escalated in rows}


def _fleet_item(
    device: Device, sample: Telemetry | None, recent: tuple[int, int]
) -> dict[str, Any]:
    n, escalated = recent
    return {
        "site": device.site_id,
        "device": device.device_id,
        "role": device.role,
        "status": device.status,
        "last_seen": device.last_seen,
        "model_name": device.model_name,
        "model_version": device.model_version,
        "fps": sample.fps if sample is not None else None,
        "cpu_percent": sample.cpu_percent if sample is not None else None,
        "memory_percent": sample.memory_percent if sample is not None else None,
        "temperature_c": sample.temperature_c if sample is not None else None,
        "telemetry_at": sample.ts if sample is not None else None,
        "outbox_depth": _queued(sample.payload if sample is not None else {}),
        "results_recent": n,
        "escalation_rate": escalated / n if n else None,
    }


def _one(
    site: InstrumentedAttribute[str],
    device: InstrumentedAttribute[str],
    only: tuple[str, str] | None,
) -> list[ColumnElement[bool]]:
    return [] if only is None else [site == only[0], device == only[1]]


def _queued(payload: dict[str, Any]) -> int | None:
    queues = payload.get("queues")
    if not isinstance(queues, dict):
        return None
    return sum(int(v) for k, v in queues.items() if k.startswith("outbox.") and _is_int(v))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Sizes:
    """Bytes of one result message and of one escalation (frame + header), on average."""

    result: float | None
    escalation: float | None
    frame_bytes: dict[str, int]  # escalation id -> wire bytes, for the escalations sized


def message_sizes(session: Session, blobs: BlobStore, escalation_ids: list[str]) -> Sizes:
    """Mean wire sizes, from the newest stored rows; the listed escalations sized one by one."""
    results = session.scalars(
        select(Result).order_by(Result.received_at.desc()).limit(SIZE_SAMPLE)
    ).all()
    boxes = edge_boxes(session, [row.msg_id for row in results if row.task == "detection"])
    result_sizes = [len(encode(_result_message(row, boxes.get(row.msg_id, [])))) for row in results]
    rows = session.scalars(select(Escalation).where(Escalation.msg_id.in_(escalation_ids))).all()
    sample = session.scalars(
        select(Escalation).order_by(Escalation.received_at.desc()).limit(SIZE_SAMPLE)
    ).all()
    sized = {row.msg_id: _escalation_bytes(row, blobs) for row in {*rows, *sample}}
    known = [size for size in sized.values() if size is not None]
    return Sizes(
        result=sum(result_sizes) / len(result_sizes) if result_sizes else None,
        escalation=sum(known) / len(known) if known else None,
        frame_bytes={k: v for k, v in sized.items() if v is not None},
    )


def _result_message(row: Result, boxes: list[DetectedObject]) -> ResultMessage:
    detection = row.task == "detection"
    return ResultMessage(
        task="detection" if detection else "classification",
        detections=boxes,
        msg_id=row.msg_id,
        ts=row.captured_at,
        frame_id=row.frame_id,
        captured_at=row.captured_at,
        model=ModelRef(name=row.model_name, version=row.model_version),
        top=[Prediction.model_validate(p) for p in row.top],
        latency_ms=row.latency,
        escalated=row.escalated,
        ground_truth=row.ground_truth,
    )


def _escalation_bytes(row: Escalation, blobs: BlobStore) -> int | None:
    try:
        frame = blobs.size(row.blob_path)
    except (BlobNotFound, OSError):
        return None  # a frame cleaned up since; it is left out of the mean, not guessed
    header = EscalationHeader(
        msg_id=row.msg_id,
        ts=row.captured_at,
        result_id=row.result_id,
        frame_id=row.frame_id,
        captured_at=row.captured_at,
        model=ModelRef(name=row.model_name, version=row.model_version),
        top=[Prediction(index=0, label=row.edge_label, score=row.edge_score)]
        if row.task != "detection"
        else [],
        task="detection" if row.task == "detection" else "classification",
        detections=[DetectedObject.model_validate(d) for d in row.detections or []],
        reason=row.reason,
        content_type="image/png" if row.content_type == "image/png" else "image/jpeg",
        width=row.width,
        height=row.height,
        roi=tuple(row.roi) if row.roi else None,
        ground_truth=row.ground_truth,
    )
    return FRAME_HEADER + len(encode(header)) + frame


def health(
    session: Session, blobs: BlobStore, since: float, until: float, bucket_s: float
) -> dict[str, Any]:
    """Escalation rate, disagreement and bytes per time bucket in ``[since, until)``."""
    escalations = session.execute(
        select(Escalation.msg_id, Escalation.received_at).where(
            Escalation.received_at >= since, Escalation.received_at < until
        )
    ).all()
    sizes = message_sizes(session, blobs, [msg_id for msg_id, _ in escalations])
    count = max(1, int((until - since) // bucket_s) + (1 if (until - since) % bucket_s else 0))
    points = [_empty_point(since + i * bucket_s) for i in range(count)]
    for index, n, escalated in _result_buckets(session, since, until, bucket_s):
        point = points[min(index, count - 1)]
        point["results"] += n
        point["escalated"] += escalated
    for index, n, disagreed, boxed, precision, recall in _verdict_buckets(
        session, since, until, bucket_s
    ):
        point = points[min(index, count - 1)]
        point["verdicts"] += n
        point["disagreed"] += disagreed
        point["detection_verdicts"] += boxed
        point["precision_sum"] += precision
        point["recall_sum"] += recall
    for msg_id, received_at in escalations:
        index = min(int((received_at - since) // bucket_s), count - 1)
        points[index]["escalation_bytes"] += sizes.frame_bytes.get(msg_id, 0)
    for point in points:
        _finish_point(point, sizes)
    return {
        "since": since,
        "until": until,
        "bucket_s": bucket_s,
        "result_bytes": sizes.result,
        "escalation_bytes": sizes.escalation,
        "points": points,
        "totals": _totals(points),
    }


def _empty_point(start: float) -> dict[str, Any]:
    return {
        "start": start,
        "results": 0,
        "escalated": 0,
        "verdicts": 0,
        "disagreed": 0,
        "escalation_bytes": 0,
        "detection_verdicts": 0,
        "precision_sum": 0.0,
        "recall_sum": 0.0,
    }


def _result_buckets(
    session: Session, since: float, until: float, bucket_s: float
) -> list[tuple[int, int, int]]:
    """(bucket index, results, escalated) of the results received in ``[since, until)``."""
    bucket = bucket_index(session, Result.received_at, since, bucket_s)
    rows = session.execute(
        select(bucket, func.count(), func.sum(case((Result.escalated.is_(True), 1), else_=0)))
        .where(Result.received_at >= since, Result.received_at < until)
        .group_by(bucket)
    ).all()
    return [(int(index), int(n), int(escalated or 0)) for index, n, escalated in rows]


def _verdict_buckets(
    session: Session, since: float, until: float, bucket_s: float
) -> list[tuple[int, int, int, int, float, float]]:
    """(bucket index, verdicts, disagreed, detection verdicts, sum of the edge's precision, of
    its recall) of the verdicts on escalations (audit samples left out) made in
    ``[since, until)``: biased, as only unsure frames are escalated; the unbiased figure is
    :mod:`cloud.accuracy`'s. A detection verdict disagrees unless every box matched both ways."""
    bucket = bucket_index(session, Verdict.created_at, since, bucket_s)
    detection = Verdict.task == "detection"
    rows = session.execute(
        select(
            bucket,
            func.count(),
            func.sum(case((Verdict.agrees.is_(False), 1), else_=0)),
            func.sum(case((detection, 1), else_=0)),
            func.sum(case((detection, Verdict.edge_precision), else_=0.0)),
            func.sum(case((detection, Verdict.edge_recall), else_=0.0)),
        )
        .where(Verdict.created_at >= since, Verdict.created_at < until, Verdict.audit.is_(False))
        .group_by(bucket)
    ).all()
    return [
        (int(index), int(n), int(disagreed or 0), int(boxed or 0), float(p or 0), float(r or 0))
        for index, n, disagreed, boxed, p, r in rows
    ]


def _totals(points: list[dict[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {
        key: sum(p[key] for p in points)
        for key in (
            "results",
            "escalated",
            "verdicts",
            "disagreed",
            "uplink_bytes",
            "detection_verdicts",
            "precision_sum",
            "recall_sum",
        )
    }
    every = [p["every_frame_bytes"] for p in points if p["every_frame_bytes"] is not None]
    totals["every_frame_bytes"] = sum(every) if every else None
    return {
        **totals,
        "escalation_rate": _share(totals["escalated"], totals["results"]),
        "disagreement": _share(totals["disagreed"], totals["verdicts"]),
        "uplink_ratio": _share(totals["uplink_bytes"], totals["every_frame_bytes"]),
        "edge_precision": _share(totals["precision_sum"], totals["detection_verdicts"]),
        "edge_recall": _share(totals["recall_sum"], totals["detection_verdicts"]),
    }


def _finish_point(point: dict[str, Any], sizes: Sizes) -> None:
    results = point["results"]
    point["escalation_rate"] = _share(point["escalated"], results)
    point["disagreement"] = _share(point["disagreed"], point["verdicts"])
    point["edge_precision"] = _share(point["precision_sum"], point["detection_verdicts"])
    point["edge_recall"] = _share(point["recall_sum"], point["detection_verdicts"])
    point["uplink_bytes"] = round(results * (sizes.result or 0)) + point["escalation_bytes"]
    point["every_frame_bytes"] = (
        round(results * sizes.escalation) if sizes.escalation is not None else None
    )


def _share(part: float, whole: float | None) -> float | None:
    return part / whole if whole else None
