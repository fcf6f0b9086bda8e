"""Frames with faces made from the committed photos, for detection tests."""

from __future__ import annotations

import cv2
import numpy as np

from edgecascade.shared.runtime.preprocess import Image
from tests.utils.paths import PHOTOS

# The astronaut's head (data/photos/astronaut.jpg), pasted at 0.35 scale onto the coffee photo
# (no face) resized to 1280x720: a face about 32 pixels wide, 6 pixels at the full-range
# detector's 192x192 input, found only on tiles (tests/runtime/test_tiles.py).
HEAD = (130, 60, 330, 260)
AT = (900, 400)

Box = tuple[float, float, float, float]


def frame_with_small_face() -> tuple[Image, Box]:
    """A 1280x720 BGR frame and where the pasted head is in it."""
    astronaut = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    coffee = cv2.imread(str(PHOTOS / "coffee.jpg"))
    assert astronaut is not None and coffee is not None
    frame: Image = np.asarray(cv2.resize(coffee, (1280, 720)), dtype=np.uint8)
    x0, y0, x1, y1 = HEAD
    head = cv2.resize(astronaut[y0:y1, x0:x1], None, fx=0.35, fy=0.35)
    h, w = head.shape[:2]
    frame[AT[1] : AT[1] + h, AT[0] : AT[0] + w] = head
    return frame, (float(AT[0]), float(AT[1]), float(AT[0] + w), float(AT[1] + h))


def jpeg(image: Image, quality: int = 95) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(data.tobytes())
