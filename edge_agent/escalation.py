"""Escalation payloads: the frame as the cloud will see it (ROI crop, downscale, JPEG quality).

The frame the model saw may be a reduced decode made for a small input (:mod:`edge_agent.decode`).
The escalation's size is its own setting, not the model's: :func:`escalation_image` uses the
model's frame only when it is in colour and at least ``max_side`` large; otherwise it decodes the
frame's bytes again at the smallest JPEG scale that still gives ``max_side`` (full size when
``max_side`` is unset or an ``roi`` is set, whose coordinates are in full-frame pixels).

A detection result's escalation carries the whole frame (no ``roi``: the cloud looks for what the
edge missed anywhere) and the edge's boxes, scaled from the original frame's pixels to the
escalated frame's (:func:`~edgecascade.edge_agent.detections.rescale`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecascade.edge_agent.decode import decode_jpeg, jpeg_size
from edgecascade.edge_agent.detections import rescale
from edgecascade.edge_agent.settings import EscalationSettings
from edgecascade.edge_agent.sources import Frame
from edgecascade.shared.codec import encode
from edgecascade.shared.fields import DetectedObject
from edgecascade.shared.messages import EscalationHeader, ResultMessage

if TYPE_CHECKING:
    import numpy.typing as npt


def escalation_image(frame: Frame, settings: EscalationSettings) -> npt.NDArray[np.uint8]:
    """The frame at the escalation's configured size (before :func:`prepare_frame`)."""
    image = frame.image
    size = jpeg_size(frame.encoded) if frame.encoded is not None else None
    if frame.encoded is None or size is None:
        return image  # not reduced: the frame as decoded
    max_side = settings.max_side
    if max_side is not None and settings.roi is None:
        if image.ndim == 3 and max(image.shape[:2]) >= max_side:
            return image  # the model's frame is in colour and big enough
        longest = max(size)
        reduction = next((r for r in (8, 4, 2) if -(-longest // r) >= max_side), 1)
    else:
        reduction = 1
    full = decode_jpeg(frame.encoded, reduction, gray=False)
    return image if full is None else full


def prepare_frame(
    image: npt.NDArray[np.uint8], settings: EscalationSettings
) -> tuple[bytes, int, int, tuple[int, int, int, int] | None]:
    """JPEG bytes, width, height and the ROI actually applied (clipped to the frame)."""
    import cv2

    roi = None
    if settings.roi is not None:
        x, y, w, h = settings.roi
        height, width = image.shape[:2]
        x, y = min(x, width - 1), min(y, height - 1)
        w, h = min(w, width - x), min(h, height - y)
        image = image[y : y + h, x : x + w]
        roi = (x, y, w, h)
    height, width = image.shape[:2]
    if settings.max_side is not None and max(height, width) > settings.max_side:
        scale = settings.max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        height, width = image.shape[:2]
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return jpeg.tobytes(), width, height, roi


def escalation_payload(
    frame: Frame,
    result: ResultMessage,
    reason: str,
    settings: EscalationSettings,
    *,
    audit: bool = False,
) -> tuple[EscalationHeader, bytes]:
    """The header and the frame-codec payload of one escalation (or audit sample)."""
    detections: list[DetectedObject] = []
    if result.task == "detection":
        settings = settings.model_copy(update={"roi": None})
    jpeg, width, height, roi = prepare_frame(escalation_image(frame, settings), settings)
    if result.task == "detection" and result.frame_size is not None:
        detections = rescale(result.detections, result.frame_size, (width, height))
    header = EscalationHeader(
        result_id=result.msg_id,
        frame_id=result.frame_id,
        captured_at=result.captured_at,
        model=result.model,
        top=result.top,
        reason=reason,
        width=width,
        height=height,
        roi=roi,
        ground_truth=result.ground_truth,
        audit=audit,
        task=result.task,
        detections=detections,
    )
    return header, encode(header, jpeg)
