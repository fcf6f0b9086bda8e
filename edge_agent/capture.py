"""Live and file sources through OpenCV (``cv2.VideoCapture``), and Picamera2 when installed.

A USB/V4L2 camera (by index), an RTSP/HTTP stream (by URL) or a video file. A source that fails
to open or stops delivering is reopened with exponential backoff (``backoff_min`` doubling up to
``backoff_max``); its ``status`` says ``ok`` or ``reconnecting: <reason>`` so the agent can report
it in its retained state. A lost camera is never a crash loop. ``close()`` interrupts a backoff;
a capture is only ever released by the thread reading it (OpenCV is not safe otherwise).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from edgecascade.edge_agent.sources import Frame

logger = logging.getLogger(__name__)


class CaptureSource:
    """Frames from ``cv2.VideoCapture(target)``; ``live`` sources may drop frames, files not."""

    def __init__(
        self,
        target: int | str,
        *,
        live: bool,
        loop: bool = False,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.target = target
        self.live = live
        self.loop = loop
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.status = "starting"
        self.skipped = 0  # a frame OpenCV gives is always used
        self.reconnects = 0
        self._cap: Any = None
        self._closed = threading.Event()
        self._reading = threading.Lock()
        self._index = 0

    def _open(self) -> bool:
        import cv2

        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        return True

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _backoff(self, delay: float, reason: str) -> float:
        if self.status == "ok" or self.status == "starting":
            logger.warning("source %s: %s; reconnecting", self.target, reason)
        self.status = f"reconnecting: {reason}"
        self._closed.wait(delay)
        return min(self.backoff_max, delay * 2)

    def read(self) -> Frame | None:
        with self._reading:
            try:
                return self._read()
            finally:
                if self._closed.is_set():
                    self._release()  # only the reading thread may release the capture

    def _read(self) -> Frame | None:
        delay = self.backoff_min
        while not self._closed.is_set():
            if self._cap is None:
                if not self._open():
                    delay = self._backoff(delay, f"cannot open {self.target}")
                    continue
                if self.status != "starting":
                    self.reconnects += 1
                    logger.info("source %s: reopened", self.target)
            ok, image = self._cap.read()
            if ok and image is not None:
                self.status = "ok"
                self._index += 1
                return Frame(f"{self.target}#{self._index}", _as_uint8(image), time.time())
            self._release()
            if not self.live:
                if not self.loop:
                    self.status = "ended"
                    return None
                continue  # a file at its end: start again
            delay = self._backoff(delay, "no frame")
        return None

    def close(self) -> None:
        """Stop reading; the capture is released now, or by a read in progress when it returns."""
        self._closed.set()
        if self._reading.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._reading.release()


class PicameraSource:
    """A Raspberry Pi camera through Picamera2 (only when the ``picamera2`` module is installed)."""

    live = True

    def __init__(self) -> None:
        from picamera2 import Picamera2

        self._camera = Picamera2()
        self._camera.configure(self._camera.create_video_configuration(main={"format": "RGB888"}))
        self._camera.start()
        self.status = "ok"
        self.skipped = 0
        self._index = 0

    def read(self) -> Frame | None:
        image = self._camera.capture_array()
        self._index += 1
        return Frame(f"picamera2#{self._index}", _as_uint8(image), time.time())

    def close(self) -> None:
        self._camera.stop()


def _as_uint8(image: Any) -> Any:
    return np.asarray(image, dtype=np.uint8)
