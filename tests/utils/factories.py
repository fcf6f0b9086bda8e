"""Valid messages for tests: ``make_result``, ``make_state``, ``make_escalation``, ...

Every factory takes keyword overrides for any field of the message; ``site`` and ``device`` are
topic levels (not message fields) and only shape the default ``frame_id``. Pair a message with its
topic through :func:`shared.topics.topic` and its payload through :func:`shared.codec.encode`.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from edgecascade.shared.messages import (
    BatchedResult,
    EscalationHeader,
    ModelRef,
    Prediction,
    ResultBatchMessage,
    ResultMessage,
    StateMessage,
    TelemetryMessage,
)

MODEL = ModelRef(name="mobilenet_v2", version="1.0.0", sha256="ab" * 32)
LABELS = ("cat", "dog", "bird")
_frames = itertools.count(1)


def predictions(label: str = "cat", score: float = 0.9) -> list[Prediction]:
    """A top-k list whose best entry is ``label`` with ``score``."""
    others = [name for name in LABELS if name != label]
    rest = (1.0 - score) / max(1, len(others))
    top = [
        Prediction(index=LABELS.index(label) if label in LABELS else 0, label=label, score=score)
    ]
    top += [Prediction(index=LABELS.index(name), label=name, score=rest) for name in others]
    return top


def make_result(site: str = "site-1", device: str = "cam-1", **overrides: Any) -> ResultMessage:
    """A device result; ``label``/``score`` shape the top-1 unless ``top`` is given."""
    label = overrides.pop("label", "cat")
    score = overrides.pop("score", 0.9)
    fields: dict[str, Any] = {
        "frame_id": f"{site}-{device}-{next(_frames)}",
        "captured_at": time.time(),
        "model": MODEL,
        "top": predictions(label, score),
        "latency_ms": {"preprocess": 1.5, "invoke": 12.0, "postprocess": 0.3},
    }
    fields.update(overrides)
    return ResultMessage.model_validate(fields)


def make_batch(site: str, results: list[tuple[str, ResultMessage]]) -> ResultBatchMessage:
    """A gateway batch of ``(device, result)`` pairs of one site."""
    del site  # the site is the topic level of the batch
    return ResultBatchMessage(
        results=[BatchedResult(device=device, result=result) for device, result in results]
    )


def make_state(site: str = "site-1", device: str = "cam-1", **overrides: Any) -> StateMessage:
    """An ``online`` agent state with the default model; override ``status`` etc."""
    del site, device
    fields: dict[str, Any] = {
        "status": "online",
        "session": int(time.time() * 1000),
        "role": "agent",
        "model": MODEL,
        "capabilities": ["classify"],
        "software": "edgecascade 0.1.0",
    }
    fields.update(overrides)
    return StateMessage.model_validate(fields)


def make_telemetry(
    site: str = "site-1", device: str = "cam-1", **overrides: Any
) -> TelemetryMessage:
    del site, device
    fields: dict[str, Any] = {
        "cpu_percent": 42.0,
        "memory_percent": 31.5,
        "memory_rss_mb": 120.0,
        "temperature_c": 51.0,
        "fps": 14.5,
        "frames": 1000,
    }
    fields.update(overrides)
    return TelemetryMessage.model_validate(fields)


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    """A real JPEG of a colour gradient, encoded with OpenCV."""
    import cv2
    import numpy as np

    xs = np.linspace(0, 255, width, dtype=np.uint8)
    ys = np.linspace(0, 255, height, dtype=np.uint8)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = xs[np.newaxis, :]
    image[..., 1] = ys[:, np.newaxis]
    image[..., 2] = 128
    ok, buffer = cv2.imencode(".jpg", image)
    assert ok, "cv2.imencode failed"
    return bytes(buffer.tobytes())


def make_escalation(
    site: str = "site-1",
    device: str = "cam-1",
    *,
    result: ResultMessage | None = None,
    width: int = 64,
    height: int = 48,
    **overrides: Any,
) -> tuple[EscalationHeader, bytes]:
    """An escalation header for ``result`` (a fresh one by default) and its JPEG frame."""
    base = result if result is not None else make_result(site, device, score=0.4)
    fields: dict[str, Any] = {
        "result_id": base.msg_id,
        "frame_id": base.frame_id,
        "captured_at": base.captured_at,
        "model": base.model,
        "top": base.top,
        "reason": "low_confidence",
        "width": width,
        "height": height,
    }
    fields.update(overrides)
    return EscalationHeader.model_validate(fields), jpeg_bytes(width, height)
