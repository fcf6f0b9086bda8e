"""Escalation payloads: the frame as the cloud will see it (ROI crop, downscale, JPEG quality)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecascade.edge_agent.settings import EscalationSettings
from edgecascade.shared.codec import encode
from edgecascade.shared.messages import EscalationHeader, ResultMessage

if TYPE_CHECKING:
    import numpy.typing as npt


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
    image: npt.NDArray[np.uint8],
    result: ResultMessage,
    reason: str,
    settings: EscalationSettings,
    *,
    audit: bool = False,
) -> tuple[EscalationHeader, bytes]:
    """The header and the frame-codec payload of one escalation (or audit sample)."""
    jpeg, width, height, roi = prepare_frame(image, settings)
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
    )
    return header, encode(header, jpeg)
