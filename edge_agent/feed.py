"""Decouple capture from inference: a capture thread and a bounded queue, newest frame wins.

A live source keeps producing while the model works; when inference is slower than the camera the
queue is full and the *oldest* waiting frame is dropped (counted in ``dropped``), so the model
always sees the most recent scene and memory stays bounded. Replay sources (folders, files) are
read on demand instead: every frame is processed, none dropped.
"""

from __future__ import annotations

import queue
import threading

from edge_agent.sources import Frame, FrameSource


class LatestFrameFeed:
    def __init__(self, source: FrameSource, maxsize: int = 1) -> None:
        self.source = source
        self.dropped = 0
        self.ended = threading.Event()
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = self.source.read()
            if frame is None:
                self.ended.set()
                return
            while True:
                try:
                    self._queue.put_nowait(frame)
                    break
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def get(self, timeout: float) -> Frame | None:
        """The newest frame, or None if none arrived within ``timeout`` (or the source ended)."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        self.source.close()
        self._thread.join(timeout=5)
