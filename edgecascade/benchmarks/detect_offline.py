"""The offline evaluator of ``bench detect``: both detectors run once over the labelled set, then
each escalation policy is simulated on what they found, to choose and sanity-check policies
before (and apart from) a run through the real topology.

Per frame: the edge detector (short-range) on the whole frame, its score floor lowered to the
lowest band's ``low`` so the band can see unsure faces; the cloud detector (full-range) on the
whole frame and on overlapping tiles (:func:`~edgecascade.shared.runtime.tiles.detect_sliced`,
what the cloud worker runs); the frame's JPEG size; and its 32x32 gray thumbnail, which a
:class:`~edgecascade.edge_agent.gating.SceneGate` per camera compares (the agent's scene gate,
its mean absolute difference against the last frame that changed). A cascade policy escalates a
frame when an edge score lies in ``[low, high)``, or the count of edge detections scoring at
least ``high`` differs from the previous frame's, or the edge found nothing at or above ``high``
while the scene gate says the frame changed. An escalated frame's answer is the cloud's, any
other the edge's. A band may instead name the *local* change measure (``measure="max"``: the
largest absolute difference of one thumbnail cell, same reference rule), which is NOT what the
agent's gate computes: it is here to show what a far person does to each measure (a far person
moves the mean of 1024 cells about as much as an empty scene's noise and gain drift do).

**Bytes** are counted as the wire would carry them, uncompressed: every frame sends one result
(the JSON of a :class:`~edgecascade.shared.messages.ResultMessage` with the edge's boxes); an
escalated frame adds its JPEG and a header about as large as its result. Cloud-only escalates
every frame, so ``bytes_ratio`` = a policy's bytes / cloud-only's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecascade.benchmarks.detect_metrics import (
    Found,
    Truth,
    mean_average_precision,
    precision_recall_at,
    small_recall,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

EDGE_THRESHOLD = 0.5  # the short-range card's score threshold: what the edge reports as found


@dataclass(frozen=True)
class Band:
    """A cascade policy: the uncertainty band ``[low, high)`` and the scene gate's threshold
    on the absolute difference of 32x32 gray thumbnails (0-255), by ``measure``: ``mean`` over
    the cells (the agent's :class:`SceneGate`) or ``max`` (the most changed cell; not the
    agent's)."""

    low: float
    high: float
    gate: float
    measure: str = "mean"

    @property
    def name(self) -> str:
        gate = f"{self.gate:g}" if self.measure == "mean" else f"{self.measure}{self.gate:g}"
        return f"band-{self.low:.2f}-{self.high:.2f}@{gate}"


class LocalGate:
    """:class:`SceneGate`'s rule (compare with the last frame that changed) on the most changed
    thumbnail cell instead of the mean over cells."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: npt.NDArray[np.float32] | None = None

    def changed(self, thumb: npt.NDArray[np.uint8]) -> bool:
        import numpy as np

        cells = thumb.astype(np.float32)
        if self._last is not None and float(np.abs(cells - self._last).max()) < self.threshold:
            return False
        self._last = cells
        return True


DEFAULT_BANDS = (
    Band(0.5, 0.7, 2.0),
    Band(0.3, 0.8, 2.0),
    Band(0.3, 0.8, 0.5),
    Band(0.25, 0.8, 0.5),
    Band(0.2, 0.8, 2.0),
    Band(0.2, 0.8, 0.3),
    Band(0.3, 0.8, 8.0, "max"),
    Band(0.3, 0.8, 16.0, "max"),
)


@dataclass(frozen=True)
class FrameRun:
    """What the two detectors found on one frame, and what the policies need of it."""

    camera: str
    truth: list[Truth]
    edge: list[Found]
    cloud: list[Found]
    jpeg_bytes: int
    result_bytes: int
    thumbnail: npt.NDArray[np.uint8]


def thumbnail(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The scene gate's 32x32 gray thumbnail (``SceneGate`` computes the same; fed back to it,
    its resize of a 32x32 image is the identity)."""
    import cv2
    import numpy as np

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def result_bytes(camera: str, index: int, edge: list[Found]) -> int:
    """Size of the JSON result the agent would send for this frame's edge boxes."""
    from edgecascade.shared.messages import DetectedObject, ModelRef, ResultMessage

    boxes = [
        DetectedObject(label=d.label, score=round(d.score, 4), box=d.box)
        for d in edge
        if d.score >= EDGE_THRESHOLD
    ][:100]
    message = ResultMessage(
        frame_id=f"{camera}-{index:06d}",
        captured_at=0.0,
        model=ModelRef(name="face-short-range", version="0.10.14"),
        top=[],
        task="detection",
        detections=boxes,
        latency_ms={"preprocess": 1.0, "invoke": 1.0, "postprocess": 1.0},
        frame_size=(1280, 720),
    )
    return len(message.model_dump_json().encode())


def _found(result: Any) -> list[Found]:
    return [Found(d.label, d.score, d.box) for d in result.detections]


def run_detectors(
    labels: Path, edge_model: Path, cloud_model: Path, floor: float, threads: int = 1
) -> list[FrameRun]:
    """Both detectors over every frame of ``labels`` (see :mod:`.detect_scene`)."""
    import cv2
    import numpy as np

    from edgecascade.shared.runtime.card import load_card_for
    from edgecascade.shared.runtime.detector import Detector
    from edgecascade.shared.runtime.tiles import Slicing, auto_tile, detect_sliced

    card = load_card_for(edge_model)
    assert card.detection is not None
    low_floor = card.detection.model_copy(update={"score_threshold": floor})
    edge = Detector.load(
        edge_model, num_threads=threads, card=card.model_copy(update={"detection": low_floor})
    )
    cloud = Detector.load(cloud_model, num_threads=threads)
    document = json.loads(labels.read_text())
    runs: list[FrameRun] = []
    for frame in document["frames"]:
        path = labels.parent / frame["file"]
        data = path.read_bytes()
        read = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if read is None:
            raise ValueError(f"{path}: not a readable image")
        image = np.asarray(read, dtype=np.uint8)
        h, w = image.shape[:2]
        side = cloud.input_spec.width
        edge_found = _found(edge.detect(image))
        runs.append(
            FrameRun(
                camera=frame["camera"],
                truth=[Truth(o["label"], tuple(o["box"])) for o in frame["objects"]],
                edge=edge_found,
                cloud=_found(detect_sliced(cloud, image, Slicing(tile=auto_tile(h, w, side)))),
                jpeg_bytes=len(data),
                result_bytes=result_bytes(frame["camera"], frame["index"], edge_found),
                thumbnail=thumbnail(image),
            )
        )
    return runs


def escalations(runs: list[FrameRun], band: Band) -> list[str | None]:
    """Per frame, why the cascade at ``band`` escalates it (None: it does not)."""
    from edgecascade.edge_agent.gating import SceneGate

    gates: dict[str, SceneGate | LocalGate] = {}
    counts: dict[str, int] = {}
    reasons: list[str | None] = []
    for run in runs:
        if run.camera not in gates:
            kind = SceneGate if band.measure == "mean" else LocalGate
            gates[run.camera] = kind(band.gate)
        gate = gates[run.camera]
        changed = gate.changed(run.thumbnail)
        sure = sum(1 for d in run.edge if d.score >= band.high)
        previous = counts.get(run.camera)
        counts[run.camera] = sure
        reason = None
        if any(band.low <= d.score < band.high for d in run.edge):
            reason = "uncertain"
        elif previous is not None and sure != previous:
            reason = "count"
        elif sure == 0 and changed and previous is not None:
            reason = "changed"
        reasons.append(reason)
    return reasons


def figures(
    name: str,
    family: str,
    truth: list[list[Truth]],
    final: list[list[Found]],
    escalated: list[bool],
    uplink_bytes: int,
) -> dict[str, Any]:
    """One policy's figures from its final answers, however they were had (simulated here; read
    off the wire by the topology run): mAP@0.5, small-face recall and precision/recall at the
    edge's threshold, the escalated fraction and the bytes sent up."""
    precision, recall = precision_recall_at(final, truth, EDGE_THRESHOLD)
    return {
        "policy": name,
        "family": family,
        "frames": len(truth),
        "map50": mean_average_precision(final, truth),
        "small_recall": small_recall(final, truth, min_score=EDGE_THRESHOLD),
        "precision": precision,
        "recall": recall,
        "escalated_fraction": sum(escalated) / len(truth) if truth else None,
        "uplink_bytes": uplink_bytes,
    }


def add_ratios(policies: list[dict[str, Any]]) -> None:
    """Bytes as a fraction of cloud-only's and mAP@0.5 in points against cloud-only's."""
    cloud = next(p for p in policies if p["family"] == "cloud-only")
    for entry in policies:
        entry["bytes_ratio"] = (
            entry["uplink_bytes"] / cloud["uplink_bytes"] if cloud["uplink_bytes"] else None
        )
        entry["map50_vs_cloud_points"] = (
            None
            if entry["map50"] is None or cloud["map50"] is None
            else 100 * (entry["map50"] - cloud["map50"])
        )


def score_policy(
    runs: list[FrameRun], name: str, family: str, escalated: list[bool]
) -> dict[str, Any]:
    """A simulated policy: final answers are the cloud's where escalated, else the edge's."""
    final = [r.cloud if up else r.edge for r, up in zip(runs, escalated, strict=True)]
    sent = sum(
        r.result_bytes + (r.jpeg_bytes + r.result_bytes if up else 0)
        for r, up in zip(runs, escalated, strict=True)
    )
    return figures(name, family, [r.truth for r in runs], final, escalated, sent)


def evaluate(runs: list[FrameRun], bands: tuple[Band, ...]) -> list[dict[str, Any]]:
    """Edge-only, cloud-only and the cascade at each band, with ratios to cloud-only."""
    policies = [
        score_policy(runs, "edge-only", "edge-only", [False] * len(runs)),
        score_policy(runs, "cloud-only", "cloud-only", [True] * len(runs)),
    ]
    for band in bands:
        reasons = escalations(runs, band)
        entry = score_policy(runs, band.name, "cascade", [r is not None for r in reasons])
        entry["band"] = [band.low, band.high]
        entry["gate_threshold"] = band.gate
        entry["gate_measure"] = band.measure
        entry["reasons"] = {
            why: sum(1 for r in reasons if r == why) for why in ("uncertain", "count", "changed")
        }
        policies.append(entry)
    add_ratios(policies)
    return policies
