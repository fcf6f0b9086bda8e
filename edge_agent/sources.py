"""Frame sources behind one small interface.

A source yields :class:`Frame` objects until it is exhausted (``read()`` returns None). The image
folder replay lives here; cameras, streams and video files in :mod:`edge_agent.capture`, behind the
same ``FrameSource`` protocol.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edgecascade.edge_agent.decode import Planner, decode_frame
from edgecascade.edge_agent.errors import SourceError
from edgecascade.edge_agent.settings import SourceSettings

if TYPE_CHECKING:
    import numpy.typing as npt

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: ``image`` is uint8 HxW (gray) or HxWx3 (BGR), as OpenCV gives it.

    ``encoded`` holds the file's bytes when ``image`` is a reduced decode of them, made for the
    model (:mod:`edge_agent.decode`); an escalation decodes them again at its own size."""

    frame_id: str
    image: npt.NDArray[np.uint8]
    captured_at: float
    ground_truth: str | None = None
    encoded: bytes | None = None


class FrameSource(Protocol):
    """What the agent reads from a source: frames, and two facts it reports in its telemetry."""

    @property
    def status(self) -> str:
        """``ok``, or why no frame comes (``reconnecting: <reason>``); in the retained state."""

    @property
    def skipped(self) -> int:
        """Frames the source could not decode and passed over (``frames_skipped``)."""

    def read(self) -> Frame | None:
        """The next frame, or None when the source is exhausted."""

    def close(self) -> None: ...


@dataclass
class FolderSource:
    """Replays the images of a folder in sorted order, or in a seeded random order.

    In an ImageFolder layout (``<root>/<label>/<image>``) the folder name is the frame's ground
    truth, so labelled test sets can measure accuracy. Files that are not decodable images are
    skipped and counted in ``skipped``, never fatal. With ``plan`` (the model's
    :meth:`~edgecascade.shared.runtime.runtime.ModelRuntime.decode_plan`), JPEGs are decoded at
    the smallest scale that serves the model (:mod:`edge_agent.decode`).
    """

    root: Path
    loop: bool = False
    shuffle_seed: int | None = None
    plan: Planner | None = None
    files: list[Path] = field(init=False)
    status: str = field(default="ok", init=False)
    skipped: int = field(default=0, init=False)
    _index: int = field(default=0, init=False)
    _round: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise SourceError(f"frame folder {self.root} does not exist or is not a directory")
        self.files = sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise SourceError(
                f"frame folder {self.root} holds no images ({sorted(IMAGE_SUFFIXES)})"
            )
        if self.shuffle_seed is not None:
            random.Random(self.shuffle_seed).shuffle(self.files)
        logger.info("replaying %d images from %s", len(self.files), self.root)

    def read(self) -> Frame | None:
        while True:
            if self._index >= len(self.files):
                if not self.loop:
                    return None
                self._index = 0
                self._round += 1
            path = self.files[self._index]
            self._index += 1
            try:
                data = path.read_bytes()
            except OSError:
                data = b""
            image, reduced = decode_frame(data, self.plan)
            if image is None:
                self.skipped += 1
                logger.warning("skipped unreadable image %s", path)
                continue
            relative = path.relative_to(self.root)
            frame_id = (
                relative.as_posix() if self._round == 0 else f"{relative.as_posix()}#{self._round}"
            )
            label = relative.parts[0] if len(relative.parts) > 1 else None
            encoded = data if reduced else None
            return Frame(frame_id, image, time.time(), label, encoded)

    def close(self) -> None:
        """Nothing to release for a folder."""


def open_source(settings: SourceSettings, plan: Planner | None = None) -> tuple[FrameSource, bool]:
    """The configured source and whether it is live (frames may be dropped, newest wins).
    ``plan`` says how small a folder's JPEGs may be decoded for the model (see
    :mod:`edge_agent.decode`); video files and cameras are decoded by their codec at full size."""
    from edgecascade.edge_agent.capture import CaptureSource, PicameraSource

    backoff = settings.backoff_max_s
    if settings.kind == "folder":
        source = FolderSource(settings.path, settings.loop, settings.shuffle_seed, plan)
        return source, False
    if settings.kind == "video":
        if not settings.path.is_file():
            raise SourceError(f"video file {settings.path} does not exist")
        return CaptureSource(
            str(settings.path), live=False, loop=settings.loop, backoff_max=backoff
        ), False
    if settings.kind == "camera":
        return CaptureSource(settings.index, live=True, backoff_max=backoff), True
    if settings.kind == "stream":
        assert settings.url is not None
        return CaptureSource(settings.url, live=True, backoff_max=backoff), True
    try:
        return PicameraSource(), True
    except ImportError:
        raise SourceError("source.kind 'picamera2' needs the picamera2 package") from None
