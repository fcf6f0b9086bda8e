"""A fake camera's film: images -> a Y4M file chromium plays as the camera
(``--use-file-for-fake-video-capture``), looping.

Y4M is raw 4:2:0 frames after a one-line header, so every image is resized (letterboxed, aspect
kept) to one size; each image is held for ``hold`` frames so that a page sampling a few frames a
second sees each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgecascade.shared.errors import EdgeCascadeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def images_in(folder: Path, limit: int = 40) -> list[Path]:
    """At most ``limit`` images under ``folder`` (recursively), evenly spread over them in name
    order (so every class folder of a labelled set is in the film); each costs 115 KB of film."""
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise EdgeCascadeError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    step = max(1, -(-len(found) // limit))
    return found[::step]


def write_y4m(
    images: Sequence[Path],
    out: Path,
    size: tuple[int, int] = (320, 240),
    fps: int = 10,
    hold: int = 5,
) -> Path:
    """Write ``images`` as a Y4M film of ``size`` (width, height) at ``fps``; returns ``out``."""
    import cv2
    import numpy as np

    width, height = size
    with open(out, "wb") as film:
        film.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for path in images:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise EdgeCascadeError(f"{path} is not an image OpenCV can read")
            scale = min(width / image.shape[1], height / image.shape[0])
            w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
            canvas = np.zeros((height, width, 3), dtype=np.uint8)
            top, left = (height - h) // 2, (width - w) // 2
            canvas[top : top + h, left : left + w] = cv2.resize(image, (w, h))
            planes = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
            for _ in range(hold):
                film.write(b"FRAME\n" + planes)
    return out
