"""Sliced inference: a small face in a 1280x720 frame, missed whole, found on tiles."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from edgecascade.shared.runtime.detect import Detection, DetectionResult
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.runtime.preprocess import Image
from edgecascade.shared.runtime.tiles import Slicing, auto_tile, detect_sliced, merge, tile_origins
from tests.utils.paths import FACE_FULL, PHOTOS

# The astronaut's head (data/photos/astronaut.jpg), pasted at 0.35 scale: a face about 32 pixels
# wide in a 1280x720 frame, 6 pixels at the full-range detector's 192x192 input.
HEAD = (130, 60, 330, 260)
AT = (900, 400)


def _frame_with_small_face() -> tuple[Image, tuple[float, float, float, float]]:
    astronaut = cv2.imread(str(PHOTOS / "astronaut.jpg"))
    coffee = cv2.imread(str(PHOTOS / "coffee.jpg"))
    assert astronaut is not None and coffee is not None
    frame: Image = np.asarray(cv2.resize(coffee, (1280, 720)), dtype=np.uint8)
    x0, y0, x1, y1 = HEAD
    head = cv2.resize(astronaut[y0:y1, x0:x1], None, fx=0.35, fy=0.35)
    h, w = head.shape[:2]
    frame[AT[1] : AT[1] + h, AT[0] : AT[0] + w] = head
    return frame, (float(AT[0]), float(AT[1]), float(AT[0] + w), float(AT[1] + h))


def test_tiles_cover_the_frame_with_the_overlap() -> None:
    assert tile_origins(1280, 384, 0.25) == [0, 224, 448, 672, 896]
    assert tile_origins(720, 384, 0.25) == [0, 168, 336]
    assert tile_origins(300, 384, 0.25) == [0]
    origins = tile_origins(1000, 300, 0.5)
    assert origins[-1] + 300 == 1000
    assert all(b - a <= 150 for a, b in itertools.pairwise(origins))
    assert auto_tile(720, 1280, 192) == 384
    assert auto_tile(400, 600, 192) == 0  # a small frame needs no tiles


def test_a_small_face_is_found_on_tiles_only() -> None:
    detector = Detector.load(FACE_FULL, num_threads=1)
    frame, head = _frame_with_small_face()
    assert detector.detect(frame).detections == ()
    result = detect_sliced(detector, frame, Slicing(tile=auto_tile(720, 1280, 192)))
    assert len(result.detections) == 1
    x0, y0, x1, y1 = result.detections[0].box
    assert head[0] <= x0 < x1 <= head[2] and head[1] <= y0 < y1 <= head[3]
    assert result.timings_ms["tiles"] == 15.0


def test_a_box_cut_by_a_tile_border_merges_into_the_whole_one() -> None:
    whole = Detection("face", 0.9, (100.0, 100.0, 200.0, 200.0))
    half = Detection("face", 0.95, (100.0, 100.0, 150.0, 200.0))
    other = Detection("person", 0.5, (100.0, 100.0, 150.0, 200.0))
    assert merge([whole, half, other], 0.6, 10) == [half, other]  # best score kept
    assert merge([whole, half], 0.6, 1) == [half]


class _Counting:
    """A detector that finds one box in every image it sees, at its top-left corner."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: Image) -> DetectionResult:
        self.calls += 1
        return DetectionResult((Detection("x", 0.5, (0.0, 0.0, 4.0, 4.0)),), {"invoke": 1.0})


def test_every_tile_is_run_and_its_boxes_moved_into_the_frame() -> None:
    detector = _Counting()
    frame = np.zeros((720, 1280, 3), np.uint8)
    result = detect_sliced(detector, frame, Slicing(tile=384))
    assert detector.calls == 1 + 15
    assert result.timings_ms["invoke"] == 16.0
    corners = sorted({d.box[:2] for d in result.detections})
    assert (896.0, 336.0) in corners and len(corners) == 15  # the tile at (0, 0) merges


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"tile": -1}, "negative"), ({"overlap": 1.0}, "overlap"), ({"merge_overlap": 0}, "merge")],
)
def test_bad_slicing_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Slicing(**kwargs)  # type: ignore[arg-type]
