"""The offline evaluator of ``bench detect``, part one: both detectors run once over the
labelled set, and the figures of a policy's answers (the policies are simulated in
:mod:`.detect_policies`), to choose and sanity-check policies before (and apart from) a run
through the real topology.

Per frame: the edge detector (``--edge-model``, by default the full-range one) on the whole
frame, its card's score threshold lowered to the lowest band's ``low`` (what a deployment would
do to let the band see faces below the card's 0.5); the cloud detector (full-range) on the
whole frame and on overlapping tiles (:func:`~edgecascade.shared.runtime.tiles.detect_sliced`,
what the cloud worker runs); the frame's JPEG size; and its 32x32 gray thumbnail for the scene
gate.

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

EDGE_THRESHOLD = 0.5  # the face cards' score threshold: what the edge reports as found


@dataclass(frozen=True)
class FrameRun:
    """What the two detectors found on one frame, and what the policies need of it."""

    camera: str
    index: int
    truth: list[Truth]
    edge: list[Found]  # down to the floor run_detectors was given
    cloud: list[Found]
    jpeg_bytes: int
    thumbnail: npt.NDArray[np.uint8]


def thumbnail(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The scene gate's 32x32 gray thumbnail (``SceneGate`` computes the same; fed back to it,
    its resize of a 32x32 image is the identity)."""
    import cv2
    import numpy as np

    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def result_bytes(camera: str, index: int, edge: list[Found]) -> int:
    """Size of the JSON result the agent would send with these edge boxes."""
    from edgecascade.shared.fields import DetectedObject
    from edgecascade.shared.messages import ModelRef, ResultMessage

    boxes = [DetectedObject(label=d.label, score=round(d.score, 4), box=d.box) for d in edge][:100]
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
                index=frame["index"],
                truth=[Truth(o["label"], tuple(o["box"])) for o in frame["objects"]],
                edge=edge_found,
                cloud=_found(detect_sliced(cloud, image, Slicing(tile=auto_tile(h, w, side)))),
                jpeg_bytes=len(data),
                thumbnail=thumbnail(image),
            )
        )
    return runs


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
