"""Bad detection outputs (issue 19, "Bad input"): clipped or dropped and counted, never a crash;
and the models that cannot be read as detectors refused at load.

The outputs are written by hand into the real decode path of the committed face detectors (the
``anchors`` short-range model and its SSD-format twin), as a model gone wrong would return them.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.shared.errors import ModelError
from edgecascade.shared.runtime.card import ModelCard
from edgecascade.shared.runtime.detect_faults import OutputFaults, clip, screen
from edgecascade.shared.runtime.detector import Detector
from tests.utils.paths import EDGE_MODEL, FACE_SHORT, FACE_SHORT_SSD

SIZE = 128  # the short-range model's input; a 128x128 frame maps 1 input pixel to 1 frame pixel


def _cell(row: int, column: int) -> int:
    """The first anchor of a cell of the 16x16 layer (two anchors per cell)."""
    return (row * 16 + column) * 2


def _anchor_outputs() -> tuple[list[np.ndarray], dict[str, int]]:
    """Raw short-range outputs: every anchor a sure background (logit -10) except five, whose
    regressors (x, y, w, h in input pixels from the anchor centre) are one of each case."""
    regressors = np.zeros((1, 896, 16), dtype=np.float32)
    logits = np.full((1, 896, 1), -10.0, dtype=np.float32)
    rows = {
        "good": _cell(8, 8),  # centre (68, 68), 20x20: inside
        "edge": _cell(0, 0),  # centre (4, 4), 24x24: past the top-left corner
        "outside": _cell(0, 15),  # pushed 200 px right: wholly outside
        "inverted": _cell(4, 12),  # negative width: x0 > x1
        "nan": _cell(12, 3),
    }
    for name, size, dx, logit in (
        ("good", 20, 0, 3.0),
        ("edge", 24, 0, 2.0),
        ("outside", 20, 200, 4.0),
        ("inverted", -20, 0, 8.0),  # the best score: it must not lead the weighted NMS
        ("nan", 20, 0, np.nan),
    ):
        regressors[0, rows[name], :4] = [dx, 0, size, size]
        logits[0, rows[name], 0] = logit
    return [regressors, logits], rows


def test_anchor_outputs_gone_wrong_are_dropped_clipped_and_counted() -> None:
    detector = Detector.load(FACE_SHORT)
    raw, _ = _anchor_outputs()
    found, faults = detector.decode_counted(raw, SIZE, SIZE)
    assert faults == OutputFaults(nan_scores=1, degenerate=1, clipped=1, outside=1)
    boxes = [d.box for d in found]
    assert boxes == [pytest.approx((58.0, 58.0, 78.0, 78.0)), pytest.approx((0.0, 0.0, 16.0, 16.0))]
    assert all(np.isfinite(d.score) for d in found)
    detector.decode(raw, SIZE, SIZE)  # the public decode counts too, on the detector
    assert detector.faults == OutputFaults(nan_scores=2, degenerate=2, clipped=2, outside=2)


def test_all_nan_outputs_give_no_detections() -> None:
    detector = Detector.load(FACE_SHORT)
    raw = [np.full((1, 896, 16), np.nan, np.float32), np.full((1, 896, 1), np.nan, np.float32)]
    found, faults = detector.decode_counted(raw, 720, 1280)
    assert found == () and faults == OutputFaults(nan_scores=896)
    # NaN boxes with sure scores: every one a degenerate box, none a detection.
    raw[1] = np.full((1, 896, 1), 5.0, np.float32)
    assert detector.decode_counted(raw, 720, 1280) == ((), OutputFaults(degenerate=896))


def _ssd_outputs() -> list[np.ndarray]:
    """The operator's outputs (ymin, xmin, ymax, xmax in 0..1), count 5 of 100 rows; the NaN
    box is what LOG of a negative raw size gives in the SSD model."""
    boxes = np.zeros((1, 100, 4), dtype=np.float32)
    scores = np.zeros((1, 100), dtype=np.float32)
    rows = [
        ((0.4, 0.4, 0.6, 0.6), 0.95),  # good
        ((np.nan, 0.1, np.nan, 0.3), 0.9),  # degenerate regressors through LOG
        ((-0.2, 0.7, 0.1, 0.9), 0.8),  # past the top edge
        ((0.5, 0.3, 0.7, 0.1), np.nan),  # NaN score (its box inverted as well)
        ((0.1, 0.6, 0.3, 0.4), 0.7),  # xmin > xmax
    ]
    for i, (box, score) in enumerate(rows):
        boxes[0, i], scores[0, i] = box, score
    return [boxes, np.zeros((1, 100), np.float32), scores, np.array([5.0], np.float32)]


def test_ssd_outputs_gone_wrong_are_dropped_clipped_and_counted() -> None:
    detector = Detector.load(FACE_SHORT_SSD)
    found, faults = detector.decode_counted(_ssd_outputs(), SIZE, SIZE)
    assert faults == OutputFaults(nan_scores=1, degenerate=2, clipped=1)
    assert [d.score for d in found] == pytest.approx([0.95, 0.8])
    assert found[0].box == pytest.approx((51.2, 51.2, 76.8, 76.8))
    assert found[1].box == pytest.approx((89.6, 0.0, 115.2, 12.8))
    assert all(d.label == "face" for d in found)


def test_a_nan_count_reads_as_no_detections() -> None:
    raw = _ssd_outputs()
    raw[3] = np.array([np.nan], np.float32)
    assert Detector.load(FACE_SHORT_SSD).decode_counted(raw, SIZE, SIZE) == ((), OutputFaults())


def test_screen_and_clip_on_arrays() -> None:
    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 0, 0, 1], [0, 0, 1, 1]], np.float32)
    scores = np.array([0.9, np.inf, 0.9, 0.1], np.float32)
    keep, faults = screen(boxes, scores, 0.5)
    assert keep.tolist() == [True, False, False, False]
    assert faults == OutputFaults(nan_scores=1, degenerate=1)
    # Past the edge by less than half a pixel is on the edge: clipped, not counted.
    pixels = np.array([[-0.3, 0, 10, 10], [-5, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    clipped, inside, faults = clip(pixels, 10, 15)
    assert clipped.tolist() == [[0, 0, 10, 10], [0, 0, 10, 10], [15, 0, 15, 10]]
    assert inside.tolist() == [True, True, False]
    assert faults == OutputFaults(clipped=1, outside=1)
    assert faults + faults == OutputFaults(clipped=2, outside=2) and not OutputFaults()


@pytest.mark.parametrize("family", ["anchors", "ssd"])
def test_a_detection_card_on_a_one_output_model_is_refused_at_load(family: str) -> None:
    """The fashion classifier (one output [1, 10]) with each family's face card."""
    model = FACE_SHORT if family == "anchors" else FACE_SHORT_SSD
    card = ModelCard.load(model.with_suffix(".json"))
    with pytest.raises(
        ModelError,
        match=rf"fashion_edge_int8.tflite: the card's detection family '{family}' needs "
        r".*the model has 1: \[\(1, 10\)\]",
    ):
        Detector.load(EDGE_MODEL, card=card)


def test_an_ssd_card_on_the_raw_model_and_back_is_refused() -> None:
    ssd_card = ModelCard.load(FACE_SHORT_SSD.with_suffix(".json"))
    with pytest.raises(ModelError, match=r"face_short_range.tflite.*'ssd' needs the four outputs"):
        Detector.load(FACE_SHORT, card=ssd_card)
    anchors_card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    with pytest.raises(ModelError, match=r"face_short_range_ssd.tflite.*'anchors' needs two"):
        Detector.load(FACE_SHORT_SSD, card=anchors_card)
