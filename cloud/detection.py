"""The cloud's second opinion on a detection escalation: its boxes, and how the edge's compare.

:class:`CloudDetector` runs the cloud detector (``worker.detection``) on the escalated frame at
the resolution it arrived in, on the whole frame and, where the model's input is small against
the frame, on overlapping tiles (:func:`shared.runtime.tiles.detect_sliced`), so the small, far
objects an edge model shrinking the frame cannot see are found. Its boxes become contract
objects, clipped to the frame (a box the model put partly outside it) and counted when they
cannot be one (a non-finite coordinate or score); the edge's boxes from the escalation header are
then scored against them (:func:`shared.boxes.agreement`). :func:`verdict_fields` turns that into
the columns of a ``verdicts`` row and :func:`cloud_box_rows` into ``detections`` rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgecascade.cloud.db.rows import Row, box_row
from edgecascade.cloud.settings import DetectionSection
from edgecascade.shared.boxes import agreement
from edgecascade.shared.errors import ModelError
from edgecascade.shared.fields import MAX_DETECTIONS, DetectedObject, DetectionAgreement
from edgecascade.shared.messages import EscalationHeader, ModelRef, Prediction
from edgecascade.shared.runtime.card import ModelCard, card_path_for
from edgecascade.shared.runtime.detect import Detection
from edgecascade.shared.runtime.detect_faults import OutputFaults
from edgecascade.shared.runtime.detector import Detector
from edgecascade.shared.runtime.preprocess import Image
from edgecascade.shared.runtime.tiles import Slicing, auto_tile, detect_sliced

SUMMARY_SIZE = 10  # labels in a verdict's per-label summary (``top`` holds at most 10)


@dataclass(frozen=True, slots=True)
class Judgement:
    """The cloud's boxes on one frame and the edge's scored against them."""

    detections: list[DetectedObject]
    agreement: DetectionAgreement
    dropped: int  # boxes the model gave that are not boxes (non-finite, outside the frame)
    tiles: int
    inference_ms: float
    faults: OutputFaults = field(default_factory=OutputFaults)  # what the decoding dropped


class CloudDetector:
    """The worker's detection model with how to slice frames and match boxes."""

    def __init__(self, detector: Detector, options: DetectionSection) -> None:
        self.detector = detector
        self.options = options
        card = detector.card
        self.model = ModelRef(name=card.name, version=card.version, sha256=detector.sha256)
        self.input_side = max(detector.input_spec.height, detector.input_spec.width)

    @classmethod
    def load(cls, options: DetectionSection, num_threads: int = 1) -> CloudDetector:
        """The configured model with its card; the card's score threshold replaced by the
        setting's when one is given."""
        if options.model is None:
            raise ModelError("worker.detection.model is not set: no detector to load")
        card = None
        if options.score_threshold is not None:
            path = card_path_for(options.model)
            if not path.exists():
                raise ModelError(f"{options.model}: a detection model needs a card ({path.name})")
            card = _with_threshold(ModelCard.load(path), options.score_threshold)
        return cls(Detector.load(options.model, num_threads=num_threads, card=card), options)

    def slicing(self, height: int, width: int) -> Slicing:
        tile = self.options.tile
        if tile is None:
            tile = auto_tile(height, width, self.input_side)
        return Slicing(tile=tile, overlap=self.options.overlap)

    def judge(self, header: EscalationHeader, image: Image) -> Judgement:
        start = time.perf_counter()
        height, width = image.shape[:2]
        result = detect_sliced(
            self.detector, image, self.slicing(height, width), limit=MAX_DETECTIONS
        )
        found, dropped = to_objects(result.detections, width, height)
        scored = agreement(header.detections, found, self.options.iou_threshold)
        return Judgement(
            detections=found,
            agreement=scored,
            dropped=dropped,
            tiles=int(result.timings_ms.get("tiles", 0)),
            inference_ms=(time.perf_counter() - start) * 1000,
            faults=result.faults,
        )


def _with_threshold(card: ModelCard, threshold: float) -> ModelCard:
    if card.detection is None:
        return card  # the detector refuses it with its own message
    spec = card.detection.model_copy(update={"score_threshold": threshold})
    return card.model_copy(update={"detection": spec})


def to_objects(
    found: Sequence[Detection], width: int, height: int
) -> tuple[list[DetectedObject], int]:
    """Detections as contract objects clipped to the ``width`` x ``height`` frame, best first;
    and how many were dropped (a non-finite score or coordinate, nothing left after clipping).
    The detector screens its outputs already; this is the contract's last word."""
    out: list[DetectedObject] = []
    dropped = 0
    for d in found:
        values = (d.score, *d.box)
        if not all(math.isfinite(v) for v in values):
            dropped += 1
            continue
        x0, x1 = sorted((min(max(d.box[0], 0.0), width), min(max(d.box[2], 0.0), width)))
        y0, y1 = sorted((min(max(d.box[1], 0.0), height), min(max(d.box[3], 0.0), height)))
        if x1 <= x0 or y1 <= y0:  # wholly outside the frame, or no area: not a box
            dropped += 1
            continue
        score = min(max(d.score, 0.0), 1.0)
        out.append(DetectedObject(label=d.label, score=score, box=(x0, y0, x1, y1)))
    out.sort(key=lambda o: -o.score)
    return out[:MAX_DETECTIONS], dropped


def label_summary(objects: Sequence[DetectedObject], labels: Sequence[str]) -> list[Prediction]:
    """Each label found with its best score, best first (a detection answer's ``top``);
    ``index`` is the label's place in the model's labels (a class id for an unlisted one)."""
    best: dict[str, float] = {}
    for o in objects:
        best[o.label] = max(best.get(o.label, 0.0), o.score)
    order = sorted(best.items(), key=lambda item: -item[1])[:SUMMARY_SIZE]
    return [Prediction(index=_index(label, labels), label=label, score=s) for label, s in order]


def _index(label: str, labels: Sequence[str]) -> int:
    if label in labels:
        return list(labels).index(label)
    return int(label) if label.isdigit() else 0


def verdict_fields(
    header: EscalationHeader, judgement: Judgement, labels: Sequence[str]
) -> dict[str, Any]:
    """The columns of a detection verdict's row that differ from a classification one's."""
    found, scored = judgement.detections, judgement.agreement
    summary = label_summary(found, labels)
    best = found[0] if found else None
    edge = header.detections[0] if header.detections else None
    return {
        "task": "detection",
        "label": best.label if best else "",
        "label_index": summary[0].index if summary else -1,
        "score": best.score if best else 0.0,
        "top": [p.model_dump() for p in summary],
        "edge_label": edge.label if edge else "",
        "edge_score": edge.score if edge else 0.0,
        "agrees": scored.precision == 1.0 and scored.recall == 1.0,
        "agreement": scored.model_dump(),
        "edge_precision": scored.precision,
        "edge_recall": scored.recall,
        "probs": None,
    }


def cloud_box_rows(
    site: str, device: str, header: EscalationHeader, model: ModelRef, found: list[DetectedObject]
) -> list[Row]:
    """The ``detections`` rows (source ``cloud``) of a verdict on ``header``'s frame."""
    return [
        box_row(
            header.result_id,
            "cloud",
            position,
            d.model_dump(),
            site=site,
            device=device,
            captured_at=header.captured_at,
            model=(model.name, model.version),
            frame=(header.width, header.height),
            escalation_id=header.msg_id,
        )
        for position, d in enumerate(found)
    ]
