"""The detection runtime on MediaPipe's real face detectors and real photos, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.detect import ssd_anchors
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.runtime.runtime import ModelRuntime
from tests.utils.paths import EDGE_MODEL, FACE_FULL, FACE_SHORT, PHOTOS

# The astronaut's face (eyes to chin, cheek to cheek), checked by eye on data/photos/astronaut.jpg.
FACE_REGION = (190.0, 100.0, 260.0, 165.0)


def _holds(box: tuple[float, ...], region: tuple[float, ...]) -> bool:
    """The box holds the region and is at most 4 times its area (a face box, not the frame)."""
    inside = box[0] <= region[0] and box[1] <= region[1]
    inside = inside and box[2] >= region[2] and box[3] >= region[3]
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inside and area <= 4 * (region[2] - region[0]) * (region[3] - region[1])


def _photo(name: str) -> np.ndarray:
    image = cv2.imread(str(PHOTOS / f"{name}.jpg"))
    assert image is not None
    return image


@pytest.mark.parametrize("model", [FACE_SHORT, FACE_FULL], ids=["short", "full"])
def test_finds_the_astronauts_face_in_frame_pixels(model: Path) -> None:
    detector = Detector.load(model, num_threads=1)
    image = _photo("astronaut")
    found = detector.detect(image).detections
    assert len(found) == 1, found
    face = found[0]
    assert face.label == "face" and face.score > 0.8
    assert _holds(face.box, FACE_REGION), face.box
    # A wide crop is letterboxed: the box comes back in the crop's own pixels.
    crop = detector.detect(np.ascontiguousarray(image[:300])).detections
    assert len(crop) == 1 and _holds(crop[0].box, FACE_REGION), crop
    shifted = detector.detect(np.ascontiguousarray(image[60:, 100:])).detections
    moved = tuple(v - d for v, d in zip(FACE_REGION, (100, 60, 100, 60), strict=True))
    assert len(shifted) == 1 and _holds(shifted[0].box, moved), shifted


@pytest.mark.parametrize("model", [FACE_SHORT, FACE_FULL], ids=["short", "full"])
def test_no_face_in_the_coffee_photo(model: Path) -> None:
    assert Detector.load(model, num_threads=1).detect(_photo("coffee")).detections == ()


@pytest.mark.parametrize("model", [FACE_SHORT, FACE_FULL], ids=["short", "full"])
def test_card_anchors_number_the_models_output_rows(model: Path) -> None:
    card = ModelCard.load(model.with_suffix(".json"))
    assert card.detection is not None and card.detection.anchors is not None
    expected = {"face_short_range": 896, "face_full_range": 2304}[model.stem]
    assert len(ssd_anchors(card.detection.anchors)) == expected
    detector = Detector.load(model)
    assert [t.shape for t in detector._outputs] == [(1, expected, 16), (1, expected, 1)]


def test_anchors_that_do_not_fit_the_model_are_refused() -> None:
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    assert card.detection is not None and card.detection.anchors is not None
    anchors = card.detection.anchors.model_copy(update={"strides": [8, 16, 16, 32]})
    wrong = card.model_copy(
        update={"detection": card.detection.model_copy(update={"anchors": anchors})}
    )
    with pytest.raises(ModelError, match=r"face_short_range.tflite.*896 rows.*anchors number 800"):
        Detector.load(FACE_SHORT, card=wrong)


def test_family_that_does_not_match_the_outputs_is_refused() -> None:
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    assert card.detection is not None
    ssd = card.detection.model_copy(update={"family": "ssd", "anchors": None})
    with pytest.raises(ModelError, match=r"face_short_range.tflite.*'ssd' needs the four outputs"):
        Detector.load(FACE_SHORT, card=card.model_copy(update={"detection": ssd}))
    classifier_card = card.model_copy(
        update={"name": "fashion", "detection": card.detection, "labels": []}
    )
    with pytest.raises(ModelError, match=r"fashion_edge_int8.tflite.*'anchors' needs two outputs"):
        Detector.load(EDGE_MODEL, card=classifier_card)


def test_a_detector_is_not_a_classifier_and_back(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"face_short_range.tflite.*task 'detection'.*Detector"):
        ModelRuntime.load(FACE_SHORT)
    with pytest.raises(ModelError, match=r"fashion_edge_int8.tflite.*'classification', not"):
        Detector.load(EDGE_MODEL)
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(FACE_SHORT.read_bytes())
    with pytest.raises(ModelError, match=r"bare.tflite: a detection model needs a card"):
        Detector.load(bare)


def test_card_refuses_detection_without_its_section(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{"name": "m", "task": "detection"}')
    with pytest.raises(ModelError, match=r"(?s)m.json.*needs a detection section"):
        ModelCard.load(path)
    path.write_text('{"name": "m", "task": "detection", "detection": {"family": "anchors"}}')
    with pytest.raises(ModelError, match=r"(?s)m.json.*.anchors. needs detection.anchors"):
        ModelCard.load(path)


def test_card_refuses_classifier_calibration_on_a_detector(tmp_path: Path) -> None:
    card = json.loads(FACE_SHORT.with_suffix(".json").read_text())
    path = tmp_path / "m.json"
    for setting in ({"temperature": 1.5}, {"output": "logits"}):
        path.write_text(json.dumps({**card, **setting}))
        with pytest.raises(ModelError, match=r"(?s)m.json.*calibrate a classifier's scores"):
            ModelCard.load(path)
    path.write_text(json.dumps(card))  # the shipped card: the defaults, as written by the build
    assert ModelCard.load(path).task == "detection"
