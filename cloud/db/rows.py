"""Messages to table rows: plain dicts for Core ``INSERT``s, one function per message kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgecascade.shared import dicts
from edgecascade.shared.messages import EscalationHeader, StateMessage, TelemetryMessage
from edgecascade.shared.model_messages import ModelAckMessage

Row = dict[str, Any]


def result_row(site: str, device: str, result: dicts.ResultMessage, received_at: float) -> Row:
    """A ``results`` row from a result decoded to a dict (:func:`shared.codec.decode_results`).

    A detection result's label, index and score are its best box's (the label's place in its
    per-label summary, -1 when the summary leaves it out); empty, -1 and 0 without boxes. Its
    boxes are :func:`detection_rows`."""
    top, model = result["top"], result["model"]
    task = result.get("task", "classification")
    if task == "classification":
        best = top[0]
        label, index, score = best["label"], best["index"], best["score"]
    else:
        found = result.get("detections", [])
        label = found[0]["label"] if found else ""
        score = found[0]["score"] if found else 0.0
        index = next((p["index"] for p in top if p["label"] == label), -1) if found else -1
    return {
        "msg_id": result["msg_id"],
        "site_id": site,
        "device_id": device,
        "frame_id": result["frame_id"],
        "captured_at": result["captured_at"],
        "received_at": received_at,
        "model_name": model["name"],
        "model_version": model["version"],
        "model_sha256": model.get("sha256", ""),
        "policy": result.get("policy"),
        "label": label,
        "label_index": index,
        "score": score,
        "top": top,  # validated dicts of exactly index, label and score: the column's JSON
        "latency": result.get("latency_ms", {}),
        "escalated": result.get("escalated", False),
        "ground_truth": result.get("ground_truth"),
        "task": task,
    }


def detection_rows(site: str, device: str, result: dicts.ResultMessage) -> list[Row]:
    """The ``detections`` rows (source ``edge``) of a detection result, best box first."""
    size = result.get("frame_size")
    model = result["model"]
    return [
        box_row(
            result["msg_id"],
            "edge",
            position,
            found,
            site=site,
            device=device,
            captured_at=result["captured_at"],
            model=(model["name"], model["version"]),
            frame=size,
        )
        for position, found in enumerate(result.get("detections", []))
    ]


def box_key(row: Row) -> tuple[str, str, int]:
    """A ``detections`` row's primary key: result, source, position."""
    return (row["result_id"], row["source"], row["position"])


def box_row(
    result_id: str,
    source: str,
    position: int,
    found: Mapping[str, Any],
    *,
    site: str,
    device: str,
    captured_at: float,
    model: tuple[str, str],
    frame: Sequence[int] | None,
    escalation_id: str | None = None,
) -> Row:
    """One ``detections`` row: a box (a :class:`~shared.messages.DetectedObject` as a dict)."""
    x0, y0, x1, y1 = found["box"]
    return {
        "result_id": result_id,
        "source": source,
        "position": position,
        "escalation_id": escalation_id,
        "site_id": site,
        "device_id": device,
        "captured_at": captured_at,
        "model_name": model[0],
        "model_version": model[1],
        "label": found["label"],
        "score": found["score"],
        "x0": x0,
        "y0": y0,
        "x1": x1,
        "y1": y1,
        "zone": found.get("zone"),
        "frame_width": frame[0] if frame else None,
        "frame_height": frame[1] if frame else None,
    }


def escalation_row(
    site: str, device: str, msg: EscalationHeader, received_at: float, blob_path: str
) -> Row:
    # A detection escalation's is its best box's, as a detection result's row has it.
    if msg.task == "detection":
        best = msg.detections[0] if msg.detections else None
        edge_label, edge_score = (best.label, best.score) if best else ("", 0.0)
    else:
        edge_label, edge_score = msg.top[0].label, msg.top[0].score
    return {
        "msg_id": msg.msg_id,
        "result_id": msg.result_id,
        "site_id": site,
        "device_id": device,
        "frame_id": msg.frame_id,
        "captured_at": msg.captured_at,
        "received_at": received_at,
        "model_name": msg.model.name,
        "model_version": msg.model.version,
        "edge_label": edge_label,
        "edge_score": edge_score,
        "reason": msg.reason,
        "blob_path": blob_path,
        "content_type": msg.content_type,
        "width": msg.width,
        "height": msg.height,
        "roi": list(msg.roi) if msg.roi is not None else None,
        "ground_truth": msg.ground_truth,
        "audit": msg.audit,
        "task": msg.task,
        "detections": [d.model_dump(mode="json") for d in msg.detections]
        if msg.task == "detection"
        else None,
    }


def telemetry_row(site: str, device: str, msg: TelemetryMessage, received_at: float) -> Row:
    return {
        "msg_id": msg.msg_id,
        "site_id": site,
        "device_id": device,
        "ts": msg.ts,
        "received_at": received_at,
        "cpu_percent": msg.cpu_percent,
        "memory_percent": msg.memory_percent,
        "temperature_c": msg.temperature_c,
        "fps": msg.fps,
        "frames": msg.frames,
        "payload": msg.model_dump(mode="json"),
    }


def state_row(site: str, device: str, msg: StateMessage, received_at: float | None = None) -> Row:
    """A full ``devices`` row from a state message; with ``received_at``, the device clock's
    skew as this message shows it (the cloud's receive time minus the device's send time)."""
    return {
        "clock_skew_s": None if received_at is None else received_at - msg.ts,
        "site_id": site,
        "device_id": device,
        "status": msg.status,
        "session": msg.session,
        "role": msg.role,
        "model_name": msg.model.name if msg.model else None,
        "model_version": msg.model.version if msg.model else None,
        "model_sha256": (msg.model.sha256 or None) if msg.model else None,
        "software": msg.software or None,
        "first_seen": msg.ts,
        "last_seen": msg.ts,
        "last_state_at": msg.ts,
        "config_version": msg.config_version,
    }


def model_ack_row(site: str, device: str, msg: ModelAckMessage, received_at: float) -> Row:
    return {
        "msg_id": msg.msg_id,
        "site_id": site,
        "device_id": device,
        "rollout_id": msg.rollout_id,
        "version": msg.version,
        "sha256": msg.sha256,
        "status": msg.status,
        "detail": msg.detail,
        "ts": msg.ts,
        "received_at": received_at,
    }
