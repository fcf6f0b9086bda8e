"""Messages to table rows: plain dicts for Core ``INSERT``s, one function per message kind."""

from __future__ import annotations

from typing import Any

from edgecascade.shared import dicts
from edgecascade.shared.messages import (
    EscalationHeader,
    ModelAckMessage,
    StateMessage,
    TelemetryMessage,
)

Row = dict[str, Any]


def result_row(site: str, device: str, result: dicts.ResultMessage, received_at: float) -> Row:
    """A ``results`` row from a result decoded to a dict (:func:`shared.codec.decode_results`)."""
    top = result["top"]
    best, model = top[0], result["model"]
    return {
        "msg_id": result["msg_id"],
        "site_id": site,
        "device_id": device,
        "frame_id": result["frame_id"],
        "captured_at": result["captured_at"],
        "received_at": received_at,
        "model_name": model["name"],
        "model_version": model["version"],
        "label": best["label"],
        "label_index": best["index"],
        "score": best["score"],
        "top": top,  # validated dicts of exactly index, label and score: the column's JSON
        "latency": result.get("latency_ms", {}),
        "escalated": result.get("escalated", False),
        "ground_truth": result.get("ground_truth"),
    }


def escalation_row(
    site: str, device: str, msg: EscalationHeader, received_at: float, blob_path: str
) -> Row:
    best = msg.top[0]
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
        "edge_label": best.label,
        "edge_score": best.score,
        "reason": msg.reason,
        "blob_path": blob_path,
        "content_type": msg.content_type,
        "width": msg.width,
        "height": msg.height,
        "roi": list(msg.roi) if msg.roi is not None else None,
        "ground_truth": msg.ground_truth,
        "audit": msg.audit,
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


def state_row(site: str, device: str, msg: StateMessage) -> Row:
    """A full ``devices`` row from a state message."""
    return {
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
