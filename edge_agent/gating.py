"""Scene-change gating: skip inference on frames that barely differ from the last processed one.

Like motion gating in camera NVRs: each frame is shrunk to 32x32 gray and compared with the last
frame that went through the model; below ``threshold`` (0-255) the frame is skipped and counted.
Off by default. The difference is measured (``measure``) as the mean absolute difference over
the 1024 cells (``mean``: how much of the scene changed; a far person, a few cells, barely moves
it, about as much as sensor noise and gain drift do) or as the largest absolute difference of one
cell (``max_cell``: a small local change such as a far person passes; so does a flicker in one
cell). A frame that passes because it differs from its reference
(not the first one, which has none) is *changed*: the detection policy's ``empty`` rule escalates
a changed frame in which the model found nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


MEASURES = ("mean", "max_cell")


class SceneGate:
    def __init__(self, threshold: float, measure: str = "mean") -> None:
        if measure not in MEASURES:
            raise ValueError(f"scene gate measure {measure!r} is not one of {MEASURES}")
        self.threshold = threshold
        self.measure = measure
        self.skipped = 0
        self.compared = False  # the last frame that passed was compared with a reference
        self._last: npt.NDArray[np.float32] | None = None

    @staticmethod
    def _thumbnail(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        import cv2

        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA)
        return np.asarray(small, dtype=np.float32)

    def changed(self, image: npt.NDArray[np.uint8]) -> bool:
        """True if the frame should be processed (and becomes the new reference)."""
        thumb = self._thumbnail(image)
        if self._last is not None and self.difference(thumb, self._last) < self.threshold:
            self.skipped += 1
            return False
        self.compared = self._last is not None
        self._last = thumb
        return True

    def difference(self, thumb: npt.NDArray[np.float32], last: npt.NDArray[np.float32]) -> float:
        """Two thumbnails' difference by this gate's measure."""
        cells = np.abs(thumb - last)
        return float(cells.mean() if self.measure == "mean" else cells.max())
