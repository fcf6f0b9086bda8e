"""Boxes compared: IoU and the greedy matching that scores the edge's detections against the
cloud's (the detection counterpart of "the cloud's top-1 equals the edge's").

Plain Python on at most :data:`~edgecascade.shared.messages.MAX_DETECTIONS` boxes a side: the
gateway, the cloud and the agent use it without numpy. Matching is the one object detection
benchmarks use (PASCAL VOC, COCO): reference boxes by descending score, each takes the unmatched
candidate of the same label with the highest IoU at or above the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgecascade.shared.fields import DetectedObject, DetectionAgreement
from edgecascade.shared.messages import Prediction

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes; 0 when both are empty."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(
    candidates: Sequence[DetectedObject],
    references: Sequence[DetectedObject],
    iou_threshold: float = 0.5,
) -> list[tuple[int, int, float]]:
    """Pairs ``(candidate index, reference index, IoU)``: each reference, best score first,
    takes the unmatched candidate of its label with the highest IoU >= ``iou_threshold``."""
    taken: set[int] = set()
    pairs: list[tuple[int, int, float]] = []
    order = sorted(range(len(references)), key=lambda i: -references[i].score)
    for r in order:
        ref = references[r]
        best, best_iou = -1, iou_threshold
        for c, cand in enumerate(candidates):
            if c in taken or cand.label != ref.label:
                continue
            overlap = iou(cand.box, ref.box)
            if overlap >= best_iou:
                best, best_iou = c, overlap
        if best >= 0:
            taken.add(best)
            pairs.append((best, r, best_iou))
    return pairs


def agreement(
    edge: Sequence[DetectedObject], cloud: Sequence[DetectedObject], iou_threshold: float = 0.5
) -> DetectionAgreement:
    """The edge's boxes scored against the cloud's: precision (edge boxes the cloud confirms)
    and recall (cloud boxes the edge found), each 1.0 when its denominator is zero."""
    pairs = match(edge, cloud, iou_threshold)
    matched = len(pairs)
    return DetectionAgreement(
        iou_threshold=iou_threshold,
        matched=matched,
        edge_only=len(edge) - matched,
        cloud_only=len(cloud) - matched,
        precision=matched / len(edge) if edge else 1.0,
        recall=matched / len(cloud) if cloud else 1.0,
        mean_iou=min(1.0, sum(p[2] for p in pairs) / matched) if matched else 0.0,
    )


SUMMARY_SIZE = 10  # labels in a detection answer's ``top``: the contract's Predictions limit


def label_summary(objects: Sequence[DetectedObject], labels: Sequence[str]) -> list[Prediction]:
    """Each label found with its best score, best first (a detection answer's ``top``, on the
    edge's results and the cloud's verdicts); ``index`` is the label's place in the model's
    labels (a class id for an unlisted one)."""
    best: dict[str, float] = {}
    for o in objects:
        best[o.label] = max(best.get(o.label, 0.0), o.score)
    order = sorted(best.items(), key=lambda item: -item[1])[:SUMMARY_SIZE]
    return [Prediction(index=_index(label, labels), label=label, score=s) for label, s in order]


def _index(label: str, labels: Sequence[str]) -> int:
    if label in labels:
        return list(labels).index(label)
    return int(label) if label.isdigit() else 0
