"""The ``ssd`` family on a real model: the committed SSD-format face detector
(``face_short_range_ssd.tflite``, MediaPipe's short-range BlazeFace with
``TFLite_Detection_PostProcess`` appended by ``modelzoo/faces_ssd.py``) against the
``anchors``-family model it was built from, on real photos.

Both read the same network output, so they must agree. With the anchors card set to hard NMS
(what the operator does) the two pipelines compute the same thing, the operator's in float32
C++ (sizes through LOG then EXP) and ours in numpy: the scores are the same float32 sigmoid of
the same logit and the boxes differ by float rounding only. With the card as MediaPipe ships it
(weighted NMS: the overlapping boxes averaged by score) the box moves a little, the score not
(weighted NMS keeps the best box's score).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.detect import Detection, iou
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detector import Detector
from tests.utils.paths import FACE_SHORT, FACE_SHORT_SSD, PHOTOS

# The astronaut's face, checked by eye on data/photos/astronaut.jpg (as in test_detector.py).
FACE_REGION = (190.0, 100.0, 260.0, 165.0)
# Scores: both are the float32 logistic of the same logit; 1e-6 is ~16 float32 steps at 0.9
# (measured: 0 or 1 step). Boxes with the same NMS: the operator's LOG/EXP round trip in float32
# moves a ~300 px coordinate by ~1e-4 px at most (measured: 3e-5 px); 1e-3 px leaves a margin.
SCORE_TOLERANCE = 1e-6
BOX_TOLERANCE_PX = 1e-3
# Weighted against hard NMS: the averaged box still overlaps the best one by IoU 0.93 to 0.96 on
# these frames (measured); 0.8 is the agreement the issue asks of a matched box.
MIN_IOU = 0.8


def _photo(name: str) -> np.ndarray:
    image = cv2.imread(str(PHOTOS / f"{name}.jpg"))
    assert image is not None
    return image


def _frames() -> dict[str, np.ndarray]:
    """The photos, and the astronaut cropped, shifted, mirrored and shrunk (letterboxed
    differently each time): one face each, and none in the coffee photo."""
    astronaut = _photo("astronaut")
    frames = {
        "astronaut": astronaut,
        "coffee": _photo("coffee"),
        "crop": astronaut[:300],
        "shifted": astronaut[60:, 100:],
        "mirrored": cv2.flip(astronaut, 1),
        "shrunk": cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA),
    }
    return {name: np.ascontiguousarray(frame) for name, frame in frames.items()}


def _anchors_detector(nms: str) -> Detector:
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    assert card.detection is not None
    spec = card.detection.model_copy(update={"nms": nms})
    return Detector.load(
        FACE_SHORT, card=card.model_copy(update={"detection": spec}), num_threads=1
    )


def _pairs(
    ssd: tuple[Detection, ...], anchors: tuple[Detection, ...]
) -> list[tuple[Detection, Detection, float]]:
    """Each SSD detection with the anchors detection it overlaps most, and their IoU."""
    assert len(ssd) == len(anchors), (ssd, anchors)
    boxes = np.asarray([d.box for d in anchors], dtype=np.float32).reshape(-1, 4)
    out = []
    for d in ssd:
        overlaps = iou(np.asarray(d.box, dtype=np.float32), boxes)
        best = int(np.argmax(overlaps))
        out.append((d, anchors[best], float(overlaps[best])))
    return out


def test_the_ssd_model_loads_as_the_ssd_family() -> None:
    detector = Detector.load(FACE_SHORT_SSD, num_threads=1)
    assert detector.spec.family == "ssd" and detector.card.labels == ["face"]
    shapes = [t.shape for t in detector._outputs]
    assert shapes == [(1, 100, 4), (1, 100), (1, 100), (1,)]  # boxes, classes, scores, count
    names = [t.name for t in detector._outputs]
    assert names == ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]


def test_finds_the_astronauts_face_and_nothing_in_the_coffee() -> None:
    detector = Detector.load(FACE_SHORT_SSD, num_threads=1)
    faces = detector.detect(_photo("astronaut")).detections
    assert len(faces) == 1 and faces[0].label == "face" and faces[0].score > 0.8, faces
    box = faces[0].box
    assert box[0] <= FACE_REGION[0] and box[1] <= FACE_REGION[1], box
    assert box[2] >= FACE_REGION[2] and box[3] >= FACE_REGION[3], box
    assert detector.detect(_photo("coffee")).detections == ()


@pytest.mark.parametrize("name", sorted(_frames()))
def test_same_as_the_anchors_model_with_the_same_nms(name: str) -> None:
    frame = _frames()[name]
    ssd = Detector.load(FACE_SHORT_SSD, num_threads=1).detect(frame)
    anchors = _anchors_detector("hard").detect(frame)
    assert len(ssd.detections) == (0 if name == "coffee" else 1)
    for d, a, _ in _pairs(ssd.detections, anchors.detections):
        assert d.label == a.label == "face"
        assert abs(d.score - a.score) <= SCORE_TOLERANCE, (d, a)
        assert np.abs(np.subtract(d.box, a.box)).max() <= BOX_TOLERANCE_PX, (d, a)
    assert ssd.faults == anchors.faults == OutputFaults()


@pytest.mark.parametrize("name", sorted(_frames()))
def test_matches_the_anchors_model_as_mediapipe_ships_it(name: str) -> None:
    frame = _frames()[name]
    ssd = Detector.load(FACE_SHORT_SSD, num_threads=1).detect(frame).detections
    weighted = Detector.load(FACE_SHORT, num_threads=1).detect(frame).detections
    for d, a, overlap in _pairs(ssd, weighted):
        assert overlap >= MIN_IOU, (d, a)
        assert abs(d.score - a.score) <= SCORE_TOLERANCE, (d, a)


def test_a_face_cut_by_the_frame_edge_is_clipped_and_counted() -> None:
    # The astronaut from y 90: the face's box (from y ~82) sticks out above the frame.
    frame = np.ascontiguousarray(_photo("astronaut")[90:, 150:])
    for detector in (Detector.load(FACE_SHORT_SSD, num_threads=1), _anchors_detector("weighted")):
        result = detector.detect(frame)
        assert len(result.detections) == 1 and result.detections[0].box[1] == 0.0, result
        assert result.faults == OutputFaults(clipped=1)
        assert detector.faults == OutputFaults(clipped=1)
