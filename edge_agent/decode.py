"""Frame files decoded at the cheapest scale that still serves the model.

A camera-sized JPEG (1280x720, what a V4L2 camera's MJPEG mode or a folder of photos holds) is
decoded by libjpeg at 1/2, 1/4 or 1/8 scale inside its inverse DCT (``cv2.IMREAD_REDUCED_*``),
and in gray when the model reads one channel: a fraction of a full decode. The scale comes from
the model (:func:`~edgecascade.shared.runtime.preprocess.decode_plan`): the reduced frame is never
smaller than what the model's resize takes from it, so the model sees no upscaled pixel.

A reduced frame keeps its encoded bytes (``Frame.encoded``): an escalation decodes them again at
the scale *its* settings need (:func:`edge_agent.escalation.escalation_image`), so the cloud gets
the configured escalation size, never the model's small copy. Other formats (PNG, BMP...) are
decoded as they are, at full size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgecascade.shared.runtime.preprocess import DecodePlan

if TYPE_CHECKING:
    import numpy.typing as npt

Planner = Callable[[int, int], DecodePlan]  # (height, width) of the encoded frame -> plan
# Start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC): they carry the frame's size.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame header; None when ``data`` is no JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return (height, width) if height and width else None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _flag(reduction: int, gray: bool) -> int:
    import cv2

    flags = {
        (1, False): cv2.IMREAD_COLOR,
        (1, True): cv2.IMREAD_GRAYSCALE,
        (2, False): cv2.IMREAD_REDUCED_COLOR_2,
        (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
        (4, False): cv2.IMREAD_REDUCED_COLOR_4,
        (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4,
        (8, False): cv2.IMREAD_REDUCED_COLOR_8,
        (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    }
    # EXIF orientation is not applied, as with IMREAD_UNCHANGED: the header's size stays true.
    return int(flags[reduction, gray] | cv2.IMREAD_IGNORE_ORIENTATION)


def decode_jpeg(data: bytes, reduction: int, gray: bool) -> npt.NDArray[np.uint8] | None:
    """A JPEG decoded at 1/``reduction`` scale (1, 2, 4, 8), gray or BGR; None if undecodable."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), _flag(reduction, gray))
    return None if image is None else np.asarray(image, dtype=np.uint8)


def decode_frame(data: bytes, plan: Planner | None) -> tuple[npt.NDArray[np.uint8] | None, bool]:
    """The decoded image (None if undecodable) and whether it is reduced: smaller or grayer
    than the file, so an escalation must decode the file again."""
    import cv2

    size = jpeg_size(data) if plan is not None else None
    if plan is not None and size is not None:
        wanted = plan(*size)
        return decode_jpeg(data, wanted.reduction, wanted.gray), wanted.reduction > 1 or wanted.gray
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint8:
        return None, False
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2BGR)
    return np.asarray(decoded, dtype=np.uint8), False
