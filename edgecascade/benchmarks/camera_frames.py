"""Camera-sized frames for ``bench edge``, made from what the repository holds.

A V4L2 USB camera or a Raspberry Pi camera (Picamera2) delivers 1280x720 at 30 frames/s as MJPEG
(a JPEG per frame) or YUYV; that is the size the agent must read and shrink for a model of 28 to
260 pixels, so it is the size the benchmark measures. The repository holds no camera footage:
each frame is one of the committed Fashion-MNIST eval images (28x28 gray, data/fashion-mnist-eval)
upscaled to 1280x720 (bicubic), in colour, with seeded Gaussian sensor-like noise (sigma 4) so the
JPEG carries a camera frame's detail rather than a smooth blow-up, encoded at JPEG quality 90. The
same seed gives the same files. They are not photographs: they measure the cost of reading,
decoding and shrinking a camera-sized frame, not a model's accuracy on real scenes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CAMERA_SIZE = (1280, 720)  # width, height
JPEG_QUALITY = 90
NOISE_SIGMA = 4.0


def write_camera_frames(
    source: Path, out: Path, count: int, *, size: tuple[int, int] = CAMERA_SIZE, seed: int = 0
) -> Path:
    """Write ``count`` JPEG frames of ``size`` (width, height) into ``out/<label>/``, made from
    the first images of the ImageFolder ``source`` in sorted order; returns ``out``."""
    import cv2

    files = sorted(p for p in source.rglob("*.png") if p.is_file())[:count]
    if not files:
        raise ValueError(f"{source} holds no PNG images to make camera frames from")
    width, height = size
    # One noise field, shifted per frame: generating it per frame would cost more than the rest.
    noise = np.random.default_rng(seed).normal(0.0, NOISE_SIGMA, (height, width, 3))
    noise = noise.astype(np.float32)
    for i, path in enumerate(files):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        scene = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        scene += np.roll(noise, (97 * i, 131 * i), axis=(0, 1))
        pixels = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
        label = path.parent.name if path.parent != source else "frames"
        target = out / label / f"{path.stem}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError(f"OpenCV could not encode {path} as JPEG")
        target.write_bytes(jpeg.tobytes())
    return out
