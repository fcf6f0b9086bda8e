"""Detection post-processing on arrays: one seam each (anchors, NMS, SSD outputs, frame pixels).

The ``ssd`` family is tested here on the arrays such a model returns, through the real
:class:`Detector` decode path of a loaded model; on a real SSD-format model in test_ssd_model.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecascade.shared.runtime.card import ModelCard, Preprocess
from edgecascade.shared.runtime.detect import iou, nms, ssd_anchors, to_frame
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detection_card import DetectionSpec, SsdAnchors
from edgecascade.shared.runtime.detector import Detector, _decode_ssd
from tests.utils.paths import FACE_SHORT


def test_anchors_as_mediapipe_lays_them_out() -> None:
    short = SsdAnchors(
        num_layers=4,
        input_size_width=128,
        input_size_height=128,
        strides=[8, 16, 16, 16],
        fixed_anchor_size=True,
    )
    anchors = ssd_anchors(short)
    assert anchors.shape == (896, 4)  # 16x16 cells x 2 + 8x8 cells x 6
    assert anchors[0].tolist() == [0.5 / 16, 0.5 / 16, 1.0, 1.0]
    assert anchors[1].tolist() == anchors[0].tolist()  # the interpolated anchor, same centre
    assert anchors[512].tolist() == [0.5 / 8, 0.5 / 8, 1.0, 1.0]
    sized = ssd_anchors(short.model_copy(update={"fixed_anchor_size": False}))
    # layer 0 scale 0.1484375, its interpolated anchor sqrt(0.1484375 * next scale)
    assert sized[0, 2] == pytest.approx(0.1484375)
    next_scale = 0.1484375 + (0.75 - 0.1484375) / 3
    assert sized[1, 2] == pytest.approx(np.sqrt(0.1484375 * next_scale))


def test_weighted_nms_averages_overlaps_and_hard_keeps_the_best() -> None:
    boxes = np.array(
        [[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [2.0, 2.0, 3.0, 3.0]], dtype=np.float32
    )
    scores = np.array([0.9, 0.3, 0.5], dtype=np.float32)
    weighted = nms(boxes, scores, 0.3, 10, weighted=True)
    assert [i for i, _ in weighted] == [0, 2]
    assert weighted[0][1][0] == pytest.approx(0.3 * 0.1 / 1.2)  # x0 pulled towards box 1
    hard = nms(boxes, scores, 0.3, 10, weighted=False)
    assert [i for i, _ in hard] == [0, 2] and hard[0][1].tolist() == boxes[0].tolist()
    assert len(nms(boxes, scores, 0.3, 1, weighted=True)) == 1
    assert iou(boxes[0], boxes[2:]).tolist() == [0.0]


def test_letterbox_and_crop_are_undone() -> None:
    # A 200x100 (h x w) frame letterboxed into 100x100: scale 0.5, 50x100 -> left pad 25.
    box = np.array([[0.25, 0.0, 0.75, 1.0]], dtype=np.float32)  # the whole picture
    out = to_frame(box, 200, 100, (100, 100), Preprocess(resize="letterbox"))
    assert out.tolist() == [[0.0, 0.0, 100.0, 200.0]]
    crop = Preprocess(resize="center_crop", crop_ratio=0.5)  # 100x100 square at (75, 25)
    out = to_frame(np.array([[0, 0, 1, 1]], np.float32), 250, 200, (10, 10), crop)
    assert out.tolist() == [[50.0, 75.0, 150.0, 175.0]]
    outside = np.array([[-0.5, -0.5, 2.0, 2.0]], dtype=np.float32)  # clipped to the frame
    assert to_frame(outside, 10, 20, (5, 5), Preprocess()).tolist() == [[0, 0, 20, 10]]


def _ssd_outputs() -> list[np.ndarray]:
    boxes = np.array(
        [[[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.4, 0.4]]], dtype=np.float32
    )
    classes = np.array([[1.0, 0.0, 2.0]], dtype=np.float32)
    scores = np.array([[0.9, np.nan, 0.2]], dtype=np.float32)
    return [boxes, classes, scores, np.array([2.0], dtype=np.float32)]


def test_ssd_outputs_decode_to_labelled_frame_boxes() -> None:
    boxes, scores, ids, faults = _decode_ssd(_ssd_outputs(), threshold=0.5)
    np.testing.assert_allclose(boxes, [[0.2, 0.1, 0.6, 0.5]])  # count 2: the third is padding
    assert ids.tolist() == [1] and scores.tolist() == pytest.approx([0.9])
    assert faults == OutputFaults(nan_scores=1)  # the NaN score dropped and counted
    card = ModelCard.load(FACE_SHORT.with_suffix(".json"))
    ssd = DetectionSpec(family="ssd", label_offset=1, score_threshold=0.5)
    detector = Detector.load(FACE_SHORT, card=card)  # a loaded model, its decode swapped to ssd
    detector.card = card.model_copy(
        update={"labels": ["???", "person", "car"], "preprocess": Preprocess(resize="stretch")}
    )
    detector.spec, detector._anchors = ssd, None
    found = detector.decode(_ssd_outputs(), 100, 200)
    assert [d.label for d in found] == ["car"] and found[0].score == pytest.approx(0.9)
    assert found[0].box == pytest.approx((40.0, 10.0, 120.0, 50.0))
