"""IoU and the greedy matching that scores edge boxes against the cloud's."""

from __future__ import annotations

import pytest

from edgecascade.shared.boxes import agreement, iou, match
from edgecascade.shared.fields import DetectedObject


def box(
    x0: float, y0: float, x1: float, y1: float, label: str = "face", score: float = 0.9
) -> DetectedObject:
    return DetectedObject(label=label, score=score, box=(x0, y0, x1, y1))


def test_iou_of_known_overlaps() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0  # two empty boxes


def test_each_reference_takes_the_best_unmatched_candidate_of_its_label() -> None:
    cloud = [box(0, 0, 10, 10, score=0.95), box(100, 100, 120, 120, score=0.6)]
    edge = [box(1, 0, 11, 10), box(0, 0, 10, 10, label="person"), box(50, 50, 60, 60)]
    assert [(c, r) for c, r, _ in match(edge, cloud)] == [(0, 0)]
    result = agreement(edge, cloud)
    assert (result.matched, result.edge_only, result.cloud_only) == (1, 2, 1)
    assert result.precision == pytest.approx(1 / 3) and result.recall == 0.5
    assert result.mean_iou == pytest.approx(iou((1, 0, 11, 10), (0, 0, 10, 10)))


def test_a_candidate_is_matched_once() -> None:
    edge = [box(0, 0, 10, 10)]
    cloud = [box(0, 0, 10, 10, score=0.9), box(1, 1, 10, 10, score=0.8)]
    assert agreement(edge, cloud).matched == 1


def test_nothing_on_either_side_agrees_fully() -> None:
    result = agreement([], [])
    assert (result.precision, result.recall, result.matched) == (1.0, 1.0, 0)
    assert agreement([box(0, 0, 5, 5)], []).precision == 0.0
    assert agreement([], [box(0, 0, 5, 5)]).recall == 0.0


def test_a_reversed_box_is_refused() -> None:
    with pytest.raises(ValueError, match="x0<=x1"):
        box(10, 0, 0, 10)
