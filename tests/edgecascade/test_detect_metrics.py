"""Detection metrics on hand-made sets whose figures are worked out in the comments."""

from __future__ import annotations

import pytest

from edgecascade.benchmarks.detect_metrics import (
    SMALL_AREA,
    Found,
    Truth,
    average_precision,
    mean_average_precision,
    precision_recall_at,
    small_recall,
)

A = (0.0, 0.0, 10.0, 10.0)
B = (20.0, 20.0, 30.0, 30.0)
BIG = (0.0, 0.0, 100.0, 100.0)

# Frame 0 has faces A and B, frame 1 a face at A and a person (100x100, not small).
TRUTH = [
    [Truth("face", A), Truth("face", B)],
    [Truth("face", A), Truth("person", BIG)],
]
# Ranked by score: 0.9 TP (A, frame 0); 0.8 FP (a duplicate of the taken A, IoU 0.82);
# 0.7 FP (nothing there); 0.6 TP (A, frame 1); 0.5 TP (B).
FOUND = [
    [
        Found("face", 0.9, A),
        Found("face", 0.8, (1.0, 0.0, 11.0, 10.0)),
        Found("face", 0.5, B),
    ],
    [
        Found("face", 0.7, (50.0, 50.0, 60.0, 60.0)),
        Found("face", 0.6, A),
        Found("person", 0.95, (0.0, 0.0, 100.0, 40.0)),  # IoU 0.4 with the person: FP
    ],
]


def test_average_precision_by_hand() -> None:
    # precision/recall after each: (1, 1/3) (1/2, 1/3) (1/3, 1/3) (1/2, 2/3) (3/5, 1);
    # the envelope from the right gives 1 up to recall 1/3, then 3/5 up to 1:
    # AP = 1/3 * 1 + 1/3 * 3/5 + 1/3 * 3/5 = 0.7333...
    assert average_precision(FOUND, TRUTH, "face") == pytest.approx(1 / 3 + 0.4)
    assert average_precision(FOUND, TRUTH, "person") == 0.0
    assert average_precision(FOUND, TRUTH, "car") is None
    # the mean over the labels with ground truth: (0.7333 + 0) / 2
    assert mean_average_precision(FOUND, TRUTH) == pytest.approx((1 / 3 + 0.4) / 2)
    # at IoU 0.3 the person box counts, and AP of person is 1
    assert average_precision(FOUND, TRUTH, "person", iou_threshold=0.3) == 1.0


def test_perfect_and_empty_answers() -> None:
    perfect = [[Found(t.label, 1.0, t.box) for t in frame] for frame in TRUTH]
    assert mean_average_precision(perfect, TRUTH) == 1.0
    assert mean_average_precision([[], []], TRUTH) == 0.0
    assert mean_average_precision([[], []], [[], []]) is None
    with pytest.raises(ValueError, match="2 frames of detections but 1"):
        average_precision(FOUND, TRUTH[:1], "face")


def test_small_objects_recall() -> None:
    assert SMALL_AREA == 1024
    # three small faces (100 px each), all found; the person is not small
    assert small_recall(FOUND, TRUTH) == 1.0
    # at score >= 0.65 only the 0.9 detection of A in frame 0 is kept: 1 of 3
    assert small_recall(FOUND, TRUTH, min_score=0.65) == pytest.approx(1 / 3)
    assert small_recall(FOUND, [[Truth("person", BIG)], []]) is None


def test_precision_recall_at_a_threshold() -> None:
    # >= 0.65: 0.9 TP, 0.8 FP, 0.7 FP, person 0.95 FP -> 1 of 4 claimed, 1 of 4 objects
    assert precision_recall_at(FOUND, TRUTH, 0.65) == (0.25, 0.25)
    # >= 0: 3 faces right of 6 claimed, 3 of 4 objects
    assert precision_recall_at(FOUND, TRUTH, 0.0) == (0.5, 0.75)
    assert precision_recall_at([[], []], TRUTH, 0.5) == (1.0, 0.0)
