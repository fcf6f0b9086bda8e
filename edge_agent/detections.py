"""A detector's output made into the contract's boxes, in pixels of the ORIGINAL frame.

The model may have seen a reduced decode of the frame (a JPEG decoded at 1/2, 1/4 or 1/8 scale
for a small input, :mod:`edge_agent.decode`): its boxes are in that image's pixels and are scaled
here to the frame the camera or the file holds, whose size the result carries (``frame_size``).
A box the message contract refuses (NaN or infinite score or corner) is dropped and counted, a
corner outside the frame clipped: a broken model output never stops the agent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import ValidationError

from edgecascade.edge_agent.decode import jpeg_size
from edgecascade.edge_agent.sources import Frame
from edgecascade.shared.fields import MAX_DETECTIONS, DetectedObject
from edgecascade.shared.runtime.detect import Detection

Size = tuple[int, int]  # (width, height)


def original_size(frame: Frame) -> Size:
    """(width, height) of the frame as captured: the JPEG's header for a reduced decode."""
    size = jpeg_size(frame.encoded) if frame.encoded is not None else None
    if size is not None:
        return size[1], size[0]
    return frame.image.shape[1], frame.image.shape[0]


def _clip(a: float, b: float, limit: int) -> tuple[float, float]:
    low, high = (a, b) if a <= b else (b, a)
    return min(max(low, 0.0), float(limit)), min(max(high, 0.0), float(limit))


def to_objects(
    detections: Sequence[Detection], seen: Size, original: Size
) -> tuple[list[DetectedObject], int]:
    """Boxes in pixels of the ``seen`` image -> objects in pixels of the ``original`` frame,
    best first, at most the contract's limit; and how many were refused (not finite)."""
    sx, sy = original[0] / seen[0], original[1] / seen[1]
    out: list[DetectedObject] = []
    invalid = 0
    for d in detections:
        if not all(math.isfinite(v) for v in (d.score, *d.box)):
            invalid += 1
            continue
        x0, x1 = _clip(d.box[0] * sx, d.box[2] * sx, original[0])
        y0, y1 = _clip(d.box[1] * sy, d.box[3] * sy, original[1])
        try:
            out.append(
                DetectedObject(
                    label=d.label, score=min(max(d.score, 0.0), 1.0), box=(x0, y0, x1, y1)
                )
            )
        except ValidationError:  # a label the contract refuses (empty, too long, NUL)
            invalid += 1
    out.sort(key=lambda o: -o.score)
    return out[:MAX_DETECTIONS], invalid


def rescale(objects: Sequence[DetectedObject], src: Size, dst: Size) -> list[DetectedObject]:
    """Objects in pixels of a ``src`` frame -> pixels of the same frame resized to ``dst``
    (an escalation downscaled to ``max_side``), clipped to it."""
    if src == dst:
        return list(objects)
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    out = []
    for o in objects:
        x0, x1 = _clip(o.box[0] * sx, o.box[2] * sx, dst[0])
        y0, y1 = _clip(o.box[1] * sy, o.box[3] * sy, dst[1])
        out.append(o.model_copy(update={"box": (x0, y0, x1, y1)}))
    return out
