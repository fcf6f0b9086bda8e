"""Detection metrics of ``bench detect``: mAP@0.5, recall of small objects, precision and recall
at a score threshold. Plain Python (a few hundred frames of a few boxes each need no numpy).

Matching is PASCAL VOC's: per label, every detection of the whole set ranked by score (best
first); each takes the ground-truth box of its frame and label with the highest IoU; it is a true
positive when that IoU is at least the threshold and that box is not yet taken, else a false
positive (a second detection of a taken box is a duplicate, hence false). AP is the all-point
interpolated area under the precision/recall curve (VOC 2010 on): precision made monotone from
the right, summed over the recall steps. mAP is the mean over the labels that have ground truth.

*Small* objects are ground-truth boxes of area below :data:`SMALL_AREA` (32 x 32 pixels, the
COCO definition), in frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgecascade.shared.boxes import Box, iou

SMALL_AREA = 32 * 32


@dataclass(frozen=True, slots=True)
class Found:
    """One detection on a frame."""

    label: str
    score: float
    box: Box


@dataclass(frozen=True, slots=True)
class Truth:
    """One ground-truth object on a frame."""

    label: str
    box: Box

    @property
    def small(self) -> bool:
        return area(self.box) < SMALL_AREA


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _matches(
    found: Sequence[Sequence[Found]],
    truth: Sequence[Sequence[Truth]],
    label: str,
    iou_threshold: float,
) -> tuple[list[tuple[float, bool]], set[tuple[int, int]]]:
    """Per detection of ``label``, best score first: (score, true positive); and the
    (frame, truth index) pairs that a true positive took."""
    if len(found) != len(truth):
        raise ValueError(f"{len(found)} frames of detections but {len(truth)} of ground truth")
    ranked = sorted(
        ((d.score, f, d.box) for f, frame in enumerate(found) for d in frame if d.label == label),
        key=lambda item: -item[0],
    )
    taken: set[tuple[int, int]] = set()
    outcome: list[tuple[float, bool]] = []
    for score, f, box in ranked:
        best, best_iou = -1, 0.0
        for t, obj in enumerate(truth[f]):
            if obj.label == label and (overlap := iou(box, obj.box)) > best_iou:
                best, best_iou = t, overlap
        hit = best >= 0 and best_iou >= iou_threshold and (f, best) not in taken
        if hit:
            taken.add((f, best))
        outcome.append((score, hit))
    return outcome, taken


def average_precision(
    found: Sequence[Sequence[Found]],
    truth: Sequence[Sequence[Truth]],
    label: str,
    iou_threshold: float = 0.5,
) -> float | None:
    """All-point interpolated AP of ``label`` over the set; None when it has no ground truth."""
    positives = sum(1 for frame in truth for obj in frame if obj.label == label)
    if positives == 0:
        return None
    outcome, _ = _matches(found, truth, label, iou_threshold)
    recall: list[float] = [0.0]
    precision: list[float] = [1.0]
    tp = 0
    for n, (_, hit) in enumerate(outcome, start=1):
        tp += hit
        recall.append(tp / positives)
        precision.append(tp / n)
    for i in range(len(precision) - 2, -1, -1):  # the envelope: best precision to the right
        precision[i] = max(precision[i], precision[i + 1])
    return sum((recall[i] - recall[i - 1]) * precision[i] for i in range(1, len(recall)))


def mean_average_precision(
    found: Sequence[Sequence[Found]],
    truth: Sequence[Sequence[Truth]],
    iou_threshold: float = 0.5,
) -> float | None:
    """The mean of :func:`average_precision` over the labels with ground truth (None if none)."""
    labels = sorted({obj.label for frame in truth for obj in frame})
    values = [average_precision(found, truth, label, iou_threshold) for label in labels]
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def small_recall(
    found: Sequence[Sequence[Found]],
    truth: Sequence[Sequence[Truth]],
    iou_threshold: float = 0.5,
    min_score: float = 0.0,
) -> float | None:
    """The share of small ground-truth boxes that a detection scoring at least ``min_score``
    matches (VOC matching, per label); None when the set has no small box."""
    small = {(f, t) for f, frame in enumerate(truth) for t, obj in enumerate(frame) if obj.small}
    if not small:
        return None
    kept = [[d for d in frame if d.score >= min_score] for frame in found]
    taken: set[tuple[int, int]] = set()
    for label in sorted({obj.label for frame in truth for obj in frame}):
        taken |= _matches(kept, truth, label, iou_threshold)[1]
    return len(small & taken) / len(small)


def precision_recall_at(
    found: Sequence[Sequence[Found]],
    truth: Sequence[Sequence[Truth]],
    threshold: float,
    iou_threshold: float = 0.5,
) -> tuple[float, float]:
    """(precision, recall) of the detections scoring at least ``threshold``: each 1.0 when its
    denominator is zero (nothing claimed, nothing to find)."""
    kept = [[d for d in frame if d.score >= threshold] for frame in found]
    claimed = sum(len(frame) for frame in kept)
    positives = sum(len(frame) for frame in truth)
    taken = 0
    for label in sorted({d.label for frame in kept for d in frame}):
        taken += len(_matches(kept, truth, label, iou_threshold)[1])
    return (taken / claimed if claimed else 1.0, taken / positives if positives else 1.0)
